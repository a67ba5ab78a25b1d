package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncGate is the audit's sync seam for the group commit tests: it holds
// the first sync until released, and records, for every sync that
// returned, the records that were in the file when it started.
type syncGate struct {
	started   chan struct{} // closed when the first sync starts
	release   chan struct{}
	releaseMu sync.Once
	firstErr  error // returned by the first sync instead of its result

	mu    sync.Mutex
	calls int
	done  []syncedRecords
}

type syncedRecords struct {
	err error
	ids map[string]bool
}

func newSyncGate() *syncGate {
	return &syncGate{started: make(chan struct{}), release: make(chan struct{})}
}

func (g *syncGate) open() { g.releaseMu.Do(func() { close(g.release) }) }

func (g *syncGate) sync(f *os.File) error {
	ids := recordIDs(f)
	g.mu.Lock()
	g.calls++
	first := g.calls == 1
	g.mu.Unlock()
	if first {
		close(g.started)
		<-g.release
	}
	err := f.Sync()
	if first && g.firstErr != nil {
		err = g.firstErr
	}
	g.mu.Lock()
	g.done = append(g.done, syncedRecords{err: err, ids: ids})
	g.mu.Unlock()
	return err
}

// recordIDs reads the request ids in f through f itself (it may have been
// renamed away).
func recordIDs(f *os.File) map[string]bool {
	ids := map[string]bool{}
	st, err := f.Stat()
	if err != nil {
		return ids
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		return ids
	}
	for line := range bytes.Lines(b) {
		if i := bytes.Index(line, []byte(`"request_id":"`)); i >= 0 {
			rest := line[i+len(`"request_id":"`):]
			ids[string(rest[:bytes.IndexByte(rest, '"')])] = true
		}
	}
	return ids
}

// coveredBySync says whether a sync that succeeded started after id was
// written, and returned.
func (g *syncGate) coveredBySync(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.done {
		if s.err == nil && s.ids[id] {
			return true
		}
	}
	return false
}

func (g *syncGate) syncs() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.done)
}

// within receives from ch, failing the test after 10 s.
func within(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

func intentRecord(id string) AuditRecord {
	return AuditRecord{RequestID: id, Subject: "alice", Project: "p", Action: ActionUpdate, Secret: "db", Phase: PhaseIntent, Backend: "local"}
}

// Records of mutations are written while an fsync runs, one fsync serves
// every record written meanwhile, and no Write returns before an fsync
// that started after its record was written has returned, whatever
// happens while the first fsync runs: nothing, its failure, a rotation or
// Close.
func TestAuditGroupCommit(t *testing.T) {
	const writers = 32
	errSync := errors.New("fsync failed (test)")
	tests := []struct {
		name     string
		firstErr error
		// during runs while the first sync is held and every record is
		// written; it releases the sync with release.
		during   func(t *testing.T, a *FileAuditor, path, rotated string, release func())
		wantErr  error // of every writer; nil: all succeed
		syncs    int   // when every writer returned
		rotated  bool  // the records are in the rotated file
		afterErr string
	}{
		{name: "nothing", during: func(_ *testing.T, _ *FileAuditor, _, _ string, release func()) { release() }, syncs: 2},
		{
			// The records written while a sync failed are failed too: a
			// later successful sync would not prove them on disk.
			name: "the sync fails", firstErr: errSync, wantErr: errSync, syncs: 1,
			during: func(_ *testing.T, _ *FileAuditor, _, _ string, release func()) { release() },
		},
		{
			name: "rotated and reopened", syncs: 2, rotated: true,
			during: func(t *testing.T, a *FileAuditor, path, rotated string, release func()) {
				require.NoError(t, os.Rename(path, rotated))
				reopened := make(chan error, 1)
				go func() { reopened <- a.Reopen() }()
				time.Sleep(20 * time.Millisecond) // let Reopen wait for the running sync
				release()
				require.NoError(t, within(t, reopened, "Reopen"))
			},
		},
		{
			// The next record finds the file renamed and reopens it; the
			// records of the old file get their sync first (2), "next" its own (3).
			name: "rotated, seen by the next record", syncs: 3, rotated: true,
			during: func(t *testing.T, a *FileAuditor, path, rotated string, release func()) {
				require.NoError(t, os.Rename(path, rotated))
				next := make(chan error, 1)
				go func() { next <- a.Write(intentRecord("next")) }()
				time.Sleep(20 * time.Millisecond)
				release()
				require.NoError(t, within(t, next, "the next record"))
				require.Equal(t, []string{"next"}, requestIDs(auditLines(t, path)))
			},
		},
		{
			name: "closed", syncs: 2, afterErr: "closed",
			during: func(t *testing.T, a *FileAuditor, _, _ string, release func()) {
				closed := make(chan error, 1)
				go func() { closed <- a.Close() }()
				time.Sleep(20 * time.Millisecond)
				release()
				require.NoError(t, within(t, closed, "Close"))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, rotated := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.1")
			a, err := openFileAuditor(path, FsyncMutations, time.Hour)
			require.NoError(t, err)
			t.Cleanup(func() { _ = a.Close() })
			g := newSyncGate()
			g.firstErr = tc.firstErr
			t.Cleanup(g.open) // never leave a writer blocked
			a.mu.Lock()
			a.syncFile = g.sync
			a.mu.Unlock()

			errs := make([]error, writers)
			covered := make([]bool, writers)
			var wg sync.WaitGroup
			write := func(i int) {
				wg.Go(func() {
					id := fmt.Sprint("r", i)
					errs[i] = a.Write(intentRecord(id))
					covered[i] = g.coveredBySync(id)
				})
			}
			write(0)
			select {
			case <-g.started:
			case <-time.After(10 * time.Second):
				t.Fatal("the first record's sync did not start")
			}
			for i := 1; i < writers; i++ {
				write(i)
			}
			require.Eventually(t, func() bool {
				f, err := os.Open(path)
				if err != nil {
					return false
				}
				defer f.Close()
				return len(recordIDs(f)) == writers
			}, 10*time.Second, time.Millisecond, "records must be written while a sync runs")
			tc.during(t, a, path, rotated, g.open)
			returned := make(chan struct{})
			go func() { wg.Wait(); close(returned) }()
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("writers still wait for their sync")
			}

			for i, err := range errs {
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr, "writer %d", i)
					continue
				}
				require.NoError(t, err, "writer %d", i)
				require.True(t, covered[i], "writer %d returned before a sync that started after its write returned", i)
			}
			require.Equal(t, tc.syncs, g.syncs(), "one sync for the first record, one for all written while it ran")
			file := path
			if tc.rotated {
				file = rotated
			}
			require.Len(t, auditLines(t, file), writers)

			err = a.Write(intentRecord("after"))
			if tc.afterErr != "" {
				require.ErrorContains(t, err, tc.afterErr)
				return
			}
			require.NoError(t, err, "a failed sync does not stop later records")
			require.True(t, g.coveredBySync("after"))
		})
	}
}
