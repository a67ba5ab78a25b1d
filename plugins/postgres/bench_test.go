package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// The benchmarks have the names and shapes of plugins/file's, so that one
// run of both packages compares them line by line. Each uses a database of
// its own on the package's PostgreSQL (fsync on, loopback TCP).

// benchData is a typical secret: a handful of keys, about 300 bytes.
var benchData = map[string]string{
	"host": "db.internal.example.com", "port": "5432", "user": "payments_app",
	"password": strings.Repeat("s3cr3t-", 20), "sslmode": "verify-full",
}

var benchModes = []string{"in-process", "plugin"}

func benchBackend(b *testing.B, mode string) sdk.Backend {
	b.Helper()
	settings := newFixture(b).settings()
	if mode == "plugin" {
		return plugintest.Start(b, settings)
	}
	return open(b, settings)
}

// BenchmarkRead: the latest version of one secret: one statement, one
// AES-GCM open.
func BenchmarkRead(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			be := benchBackend(b, mode)
			write(b, be, "bench", "db", benchData)
			ctx := context.Background()
			ref := sdk.Ref{Project: "bench", Name: "db"}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := be.Read(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite: new versions of one secret, one after another: each is a
// transaction committed (and fsync'd) before the next starts, pruning past
// max_versions (10) included.
func BenchmarkWrite(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			be := benchBackend(b, mode)
			ctx := context.Background()
			req := sdk.WriteRequest{Project: "bench", Name: "db", Data: benchData, Mode: sdk.WriteUpsert}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := be.Write(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteConcurrent: 32 writers, as a PUT load through the gateway
// makes them, each writing new versions of one of 100 secrets. ns/op is per
// write over all writers.
func BenchmarkWriteConcurrent(b *testing.B) {
	const writers, secrets = 32, 100
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			be := benchBackend(b, mode)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						req := sdk.WriteRequest{Project: "bench", Name: fmt.Sprintf("db-%d", i%secrets), Data: benchData, Mode: sdk.WriteUpsert}
						if _, err := be.Write(ctx, req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// BenchmarkList: one page of 100 secrets' metadata out of 250 in the
// project, from the middle (a page token), as the gateway's list calls do.
func BenchmarkList(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			be := benchBackend(b, mode)
			ctx := context.Background()
			for i := range 250 {
				write(b, be, "bench", fmt.Sprintf("svc-%03d", i), benchData)
			}
			first, err := be.List(ctx, sdk.ListRequest{Project: "bench", PageSize: 50})
			if err != nil {
				b.Fatal(err)
			}
			req := sdk.ListRequest{Project: "bench", PageSize: 100, PageToken: first.NextPageToken}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				page, err := be.List(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Secrets) != 100 {
					b.Fatalf("a page of %d secrets, want 100", len(page.Secrets))
				}
			}
		})
	}
}
