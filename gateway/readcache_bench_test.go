package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// BenchmarkReadCacheHit: one client read of the latest version of a secret
// of two keys answered by the cache (lock, unseal, decode, copies), from
// 2 goroutines per core.
func BenchmarkReadCacheHit(b *testing.B) {
	c, err := newReadCache("be", cacheSettings{ttl: time.Hour, maxBytes: 64 << 20, staleIfError: time.Hour}, &cacheStats{}, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	cb := cachedBackend{Backend: newMemBackend(), c: c}
	_, err = cb.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: "db", Mode: sdk.WriteUpsert,
		Data: map[string]string{"username": "app", "password": "bench-value-0123456789"}})
	if err != nil {
		b.Fatal(err)
	}
	ref := sdk.Ref{Project: "p", Name: "db"}
	b.ReportAllocs()
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.WithValue(context.Background(), cacheNoteKey{}, &cacheNote{})
		for pb.Next() {
			if _, err := cb.Read(ctx, ref); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if c.stats.misses.Load() != 0 {
		b.Fatalf("%d misses", c.stats.misses.Load())
	}
}
