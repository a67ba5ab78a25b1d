package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// gatedAuditor opens an auditor at path whose fsyncs go through a new
// syncGate, its first sync failing with firstErr when that is not nil.
// Both are closed when the test ends, the gate first, so that no writer is
// left blocked.
func gatedAuditor(t *testing.T, path string, firstErr error) (*FileAuditor, *syncGate) {
	t.Helper()
	a, err := openFileAuditor(path, FsyncMutations, time.Hour)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	g := newSyncGate()
	g.firstErr = firstErr
	t.Cleanup(g.open)
	a.mu.Lock()
	a.syncFile = g.sync
	a.mu.Unlock()
	return a, g
}

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

// queuedRecords is how many records wait in a's queue.
func queuedRecords(a *FileAuditor) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queue.records
}

// ids is r0 ... r(n-1).
func ids(from, n int) []string {
	out := make([]string, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprint("r", i))
	}
	return out
}

// Records of mutations handed in while an fsync runs are held, then written
// in the order they came and all synced by one fsync; no Write returns
// before an fsync that started after its record was written has returned,
// whatever happens while the first fsync runs: nothing, its failure, a
// rotation, a record that is not synced, or Close.
func TestAuditGroupCommit(t *testing.T) {
	const writers = 32
	errSync := errors.New("fsync failed (test)")
	tests := []struct {
		name     string
		firstErr error
		// during runs while the first sync is held and every later record
		// is queued; it releases the sync with release.
		during func(t *testing.T, a *FileAuditor, path, rotated string, release func())
		// Every writer succeeds but the first when firstErr is set: the
		// queued records were not in the file when that sync failed;
		// unless allFail: they were written while it ran.
		allFail  bool
		syncs    int      // when every writer returned
		first    string   // the file r0 is in: "path" or "rotated"
		rest     []string // the ids of the file the queued records went to, in order
		restIn   string
		afterErr string
	}{
		{
			name: "nothing", syncs: 2, first: "path", restIn: "path", rest: append([]string{"r0"}, ids(1, writers-1)...),
			during: func(_ *testing.T, _ *FileAuditor, _, _ string, release func()) { release() },
		},
		{
			name: "the sync fails", firstErr: errSync, syncs: 2, first: "path", restIn: "path", rest: append([]string{"r0"}, ids(1, writers-1)...),
			during: func(_ *testing.T, _ *FileAuditor, _, _ string, release func()) { release() },
		},
		{
			// Held records written (by a read record) while the sync runs
			// fail with it: a failed fsync may have dropped their pages,
			// and a later fsync that succeeds would not prove them.
			name: "the sync fails after a read record wrote the held ones", firstErr: errSync, allFail: true, syncs: 1,
			first: "path", restIn: "path", rest: append(append([]string{"r0"}, ids(1, writers-1)...), "read"),
			during: func(t *testing.T, a *FileAuditor, _, _ string, release func()) {
				require.NoError(t, a.Write(readRecord("read")))
				release()
			},
		},
		{
			// A record that is not synced is written before its Write
			// returns, after the queued records: lines stay in the order
			// records came. The queued ones then ride with it: the next
			// sync covers them.
			name: "a read record comes", syncs: 2, first: "path", restIn: "path",
			rest: append(append([]string{"r0"}, ids(1, writers-1)...), "read"),
			during: func(t *testing.T, a *FileAuditor, path, _ string, release func()) {
				require.NoError(t, a.Write(readRecord("read")))
				require.Equal(t, append(append([]string{"r0"}, ids(1, writers-1)...), "read"), requestIDs(auditLines(t, path)))
				require.Zero(t, queuedRecords(a))
				release()
			},
		},
		{
			// The queued records go to the file the path names when they
			// are written.
			name: "rotated and reopened", syncs: 2, first: "rotated", restIn: "path", rest: ids(1, writers-1),
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
			// The write of the queue finds the file renamed and reopens it.
			name: "rotated, seen by the next record", syncs: 2, first: "rotated", restIn: "path",
			rest: append(ids(1, writers-1), "next"),
			during: func(t *testing.T, a *FileAuditor, path, rotated string, release func()) {
				require.NoError(t, os.Rename(path, rotated))
				next := make(chan error, 1)
				go func() { next <- a.Write(intentRecord("next")) }()
				require.Eventually(t, func() bool { return queuedRecords(a) == writers }, 10*time.Second, time.Millisecond)
				release()
				require.NoError(t, within(t, next, "the next record"))
			},
		},
		{
			name: "closed", syncs: 2, afterErr: "closed", first: "path", restIn: "path", rest: append([]string{"r0"}, ids(1, writers-1)...),
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
			files := map[string]string{"path": path, "rotated": rotated}
			a, g := gatedAuditor(t, path, tc.firstErr)

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
			// One at a time, so that the queue's order is known.
			for i := 1; i < writers; i++ {
				write(i)
				require.Eventually(t, func() bool { return queuedRecords(a) == i }, 10*time.Second, time.Millisecond)
			}
			require.Equal(t, []string{"r0"}, requestIDs(auditLines(t, path)), "records to be synced that come while a sync runs wait in memory")
			tc.during(t, a, path, rotated, g.open)
			returned := make(chan struct{})
			go func() { wg.Wait(); close(returned) }()
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Fatal("writers still wait for their sync")
			}

			for i, err := range errs {
				if (i == 0 || tc.allFail) && tc.firstErr != nil {
					require.ErrorIs(t, err, tc.firstErr)
					continue
				}
				require.NoError(t, err, "writer %d", i)
				require.True(t, covered[i], "writer %d returned before a sync that started after its write returned", i)
			}
			require.Equal(t, tc.syncs, g.syncs(), "one sync for the first record, one for all handed in while it ran")
			require.Contains(t, requestIDs(auditLines(t, files[tc.first])), "r0")
			require.Equal(t, tc.rest, requestIDs(auditLines(t, files[tc.restIn])))

			err := a.Write(intentRecord("after"))
			if tc.afterErr != "" {
				require.ErrorContains(t, err, tc.afterErr)
				return
			}
			require.NoError(t, err, "a failed sync does not stop later records")
			require.True(t, g.coveredBySync("after"))
		})
	}
}

// When the queue cannot be written, its records fail, and only they: the
// log still ends on a complete record, and later records are written.
func TestAuditQueueWriteFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log", "audit.log")
	a, g := gatedAuditor(t, path, nil)

	first := make(chan error, 1)
	go func() { first <- a.Write(intentRecord("r0")) }()
	<-g.started
	queued := make(chan error, 1)
	go func() { queued <- a.Write(intentRecord("r1")) }()
	require.Eventually(t, func() bool { return queuedRecords(a) == 1 }, 10*time.Second, time.Millisecond)
	// The path can be neither found nor made again: the queue's write is
	// refused (fail closed), as a record's own would be.
	require.NoError(t, os.Rename(filepath.Join(dir, "log"), filepath.Join(dir, "moved")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "log"), nil, 0o600))
	g.open()
	require.NoError(t, within(t, first, "the first record"), "r0 was written and synced before the path went")
	require.ErrorContains(t, within(t, queued, "the queued record"), "record not written")
	require.Equal(t, []string{"r0"}, requestIDs(auditLines(t, filepath.Join(dir, "moved", "audit.log"))))

	require.NoError(t, os.Remove(filepath.Join(dir, "log")))
	require.NoError(t, a.Write(intentRecord("r2")), "the log recovers once its path can be opened again")
	require.Equal(t, []string{"r2"}, requestIDs(auditLines(t, path)))
}

// The queue's buffer is kept for the next burst, unless a burst made it
// larger than maxKeptQueueBuffer: then it goes, so that one burst does not
// pin its memory for good.
func TestAuditQueueBufferKeptUpToALimit(t *testing.T) {
	tests := []struct {
		name   string
		secret int  // bytes of each queued record's secret name
		kept   bool // the buffer is kept after the queue is written
	}{
		{"a small burst", 10, true},
		{"a burst past the limit", maxKeptQueueBuffer / 8, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), nil)

			var wg sync.WaitGroup
			wg.Go(func() { assert.NoError(t, a.Write(intentRecord("r0"))) })
			<-g.started
			const queued = 10
			for i := range queued {
				wg.Go(func() {
					rec := intentRecord(fmt.Sprint("q", i))
					rec.Secret = strings.Repeat("s", tc.secret)
					assert.NoError(t, a.Write(rec))
				})
			}
			require.Eventually(t, func() bool { return queuedRecords(a) == queued }, 10*time.Second, time.Millisecond)
			g.open()
			wg.Wait()
			a.mu.Lock()
			defer a.mu.Unlock()
			require.Equal(t, tc.kept, cap(a.queued) > 0)
			require.Empty(t, a.queued)
		})
	}
}
