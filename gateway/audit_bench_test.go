package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAuditConcurrentMutations: records that must be on disk before
// Write returns (the intent and outcome records of a mutation, under the
// default policy), from 1 and from 32 concurrent writers, as a PUT load
// makes them. ns/op is per record over all writers; fsyncs/record shows
// how many records each fsync served.
func BenchmarkAuditConcurrentMutations(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			// No background sync: only the syncs the records ask for.
			a, err := openFileAuditor(filepath.Join(b.TempDir(), "audit.log"), FsyncMutations, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = a.Close() })
			var syncs atomic.Int64
			a.mu.Lock()
			a.syncFile = func(f *os.File) error { syncs.Add(1); return f.Sync() }
			a.mu.Unlock()
			rec := AuditRecord{RequestID: "r", Subject: "alice", Project: "p", Action: ActionUpdate, Secret: "db", Phase: PhaseIntent, Backend: "local"}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := a.Write(rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/record")
		})
	}
}
