package file

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/secretgate/secretgate/sdk"
)

// batchOp is one call of a batch: a write, a delete, or a function of the
// test's own that fails, so that bbolt rolls the batch back and runs the
// others again.
type batchOp struct {
	write *sdk.WriteRequest
	del   *sdk.Ref
	fail  bool
}

// committedTx is the id of the last committed write transaction.
func committedTx(t *testing.T, b *Backend) int {
	t.Helper()
	var id int
	require.NoError(t, b.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }))
	return id
}

// runOneBatch runs ops concurrently as one batch and returns each op's
// error, the write metas, the number of commits it took and how many times
// a function of the test's own, which joins the batch first and changes
// nothing, was run. The committer is held busy, as if a commit ran, until
// every op has joined the pending batch; then that batch is handed to one
// of its writers, as the end of a commit does.
func runOneBatch(t *testing.T, b *Backend, ops []batchOp) (errs []error, metas []sdk.Meta, commits int, runs int64) {
	t.Helper()
	before := committedTx(t, b)
	g := &b.group
	g.mu.Lock()
	require.False(t, g.busy)
	g.busy = true
	g.mu.Unlock()
	errs, metas = make([]error, len(ops)), make([]sdk.Meta, len(ops))
	var counted atomic.Int64
	var counterErr, noRefusal error
	var wg sync.WaitGroup
	wg.Go(func() {
		counterErr = g.commit(b.db, &noRefusal, func(*bolt.Tx) error { counted.Add(1); return nil })
	})
	require.Eventually(t, func() bool { return queued(g) == 1 }, 10*time.Second, time.Millisecond)
	ctx := context.Background()
	for i, op := range ops {
		wg.Go(func() {
			switch {
			case op.write != nil:
				metas[i], errs[i] = b.Write(ctx, *op.write)
			case op.del != nil:
				errs[i] = b.Delete(ctx, *op.del)
			case op.fail:
				var refused error
				errs[i] = g.commit(b.db, &refused, func(*bolt.Tx) error { return errors.New("failed by the test") })
			}
		})
	}
	handOff(t, g, len(ops)+1)
	wg.Wait()
	require.NoError(t, counterErr)
	g.mu.Lock()
	require.False(t, g.busy, "the committer is idle again")
	g.mu.Unlock()
	return errs, metas, committedTx(t, b) - before, counted.Load()
}

// queued is the number of writes in g's pending batch.
func queued(g *groupCommitter) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == nil {
		return 0
	}
	return len(g.pending.calls)
}

// handOff waits until n writes are queued in g's pending batch, then wakes
// one of its writers to take and commit it, as the end of a commit does.
func handOff(t *testing.T, g *groupCommitter, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return queued(g) == n }, 10*time.Second, time.Millisecond)
	g.mu.Lock()
	batch := g.pending
	g.mu.Unlock()
	batch.lead <- struct{}{}
}

// A commit that fails fails every write of its batch: none of them is
// acknowledged, whichever writer led the commit.
func TestFailedCommitFailsEveryWrite(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Close()) // so that the commit fails
	var g groupCommitter
	g.busy = true // as if a commit ran: the writes below queue in one batch
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			var refused error
			errs[i] = g.commit(db, &refused, func(*bolt.Tx) error { return nil })
		})
	}
	handOff(t, &g, writers)
	wg.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, berrors.ErrDatabaseNotOpen, "write %d", i)
	}
}

func upsert(name, v string) batchOp {
	return batchOp{write: &sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"k": v}, Mode: sdk.WriteUpsert}}
}

// Concurrent writes share one transaction, and check-and-set stays exact
// inside it: each write is checked after every earlier write of the batch,
// a refused write gets its own error and changes nothing, and it does not
// roll back the others (they are not run again, and commit once).
func TestBatchedWritesKeepCheckAndSetExact(t *testing.T) {
	creates := func(n int) []batchOp {
		var ops []batchOp
		for i := range n {
			ops = append(ops, batchOp{write: &sdk.WriteRequest{Project: "p", Name: "s", Data: map[string]string{"k": fmt.Sprint(i)}, Mode: sdk.WriteCreate}})
		}
		return ops
	}
	ifMatch1 := func(n int) []batchOp {
		var ops []batchOp
		for i := range n {
			ops = append(ops, batchOp{write: &sdk.WriteRequest{Project: "p", Name: "s", Data: map[string]string{"k": fmt.Sprint(i)}, Mode: sdk.WriteUpsert, ExpectedVersion: 1}})
		}
		return ops
	}
	tests := []struct {
		name  string
		setup []string // secrets of project p written (v1) before the batch
		ops   []batchOp
		// want[i]: the sentinel op i's error wraps, nil for success; with
		// winners > 0, ops wanting ErrAlreadyExists or ErrVersionMismatch
		// race and exactly winners of them succeed instead.
		want    []error
		winners int
		// The test's own function runs once: no refusal rolled the batch
		// back. Not so when the batch holds a failing function.
		oneRun bool
		check  func(t *testing.T, b *Backend, errs []error, metas []sdk.Meta)
	}{
		{
			name: "creates of one name: one wins", ops: creates(8), winners: 1, oneRun: true,
			want: repeat(sdk.ErrAlreadyExists, 8),
			check: func(t *testing.T, b *Backend, errs []error, metas []sdk.Meta) {
				i := winner(t, errs)
				require.Equal(t, int64(1), metas[i].Version)
				requireData(t, b, "s", 0, fmt.Sprint(i))
			},
		},
		{
			name: "If-Match on one version: one wins", setup: []string{"s"}, ops: ifMatch1(8), winners: 1, oneRun: true,
			want: repeat(sdk.ErrVersionMismatch, 8),
			check: func(t *testing.T, b *Backend, errs []error, metas []sdk.Meta) {
				i := winner(t, errs)
				require.Equal(t, int64(2), metas[i].Version)
				requireData(t, b, "s", 0, fmt.Sprint(i))
				requireVersion(t, b, "s", 2)
			},
		},
		{
			name: "refusals beside writes", setup: []string{"existing"}, oneRun: true,
			ops: []batchOp{
				{write: &sdk.WriteRequest{Project: "p", Name: "existing", Data: map[string]string{"k": "x"}, Mode: sdk.WriteCreate}},
				{write: &sdk.WriteRequest{Project: "p", Name: "missing", Data: map[string]string{"k": "x"}, Mode: sdk.WriteReplace}},
				{write: &sdk.WriteRequest{Project: "p", Name: "existing", Data: map[string]string{"k": "x"}, Mode: sdk.WriteUpsert, ExpectedVersion: 5}},
				{del: &sdk.Ref{Project: "p", Name: "missing"}},
				{del: &sdk.Ref{Project: "p", Name: "existing", Version: 9}},
				upsert("a", "a"), upsert("b", "b"), upsert("c", "c"),
			},
			want: []error{sdk.ErrAlreadyExists, sdk.ErrNotFound, sdk.ErrVersionMismatch, sdk.ErrNotFound, sdk.ErrVersionMismatch, nil, nil, nil},
			check: func(t *testing.T, b *Backend, _ []error, _ []sdk.Meta) {
				requireVersion(t, b, "existing", 1)
				requireData(t, b, "existing", 1, "setup")
				for _, n := range []string{"a", "b", "c"} {
					requireData(t, b, n, 1, n)
				}
				_, err := b.Describe(context.Background(), sdk.Ref{Project: "p", Name: "missing"})
				require.ErrorIs(t, err, sdk.ErrNotFound)
			},
		},
		{
			// The failing function rolls the batch back and bbolt runs the
			// others again: each write still lands once, with its own
			// version, and the new project's data key is the one stored.
			name: "a batch rolled back and run again",
			ops:  []batchOp{upsert("s", "0"), upsert("s", "1"), {fail: true}, upsert("s", "2"), upsert("s", "3"), upsert("t", "t")},
			want: []error{nil, nil, errors.New("failed by the test"), nil, nil, nil},
			check: func(t *testing.T, b *Backend, _ []error, metas []sdk.Meta) {
				var versions []int64
				for i := range 4 {
					j := i + i/2 // skip the failing op
					versions = append(versions, metas[j].Version)
					requireData(t, b, "s", metas[j].Version, fmt.Sprint(i))
				}
				require.ElementsMatch(t, []int64{1, 2, 3, 4}, versions)
				requireVersion(t, b, "s", 4)
				requireData(t, b, "t", 1, "t")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIFixture(t)
			b := iopen(t, f.settings(SettingMaxVersions, "0"))
			for _, n := range tc.setup {
				iwrite(t, b, "p", n, map[string]string{"k": "setup"})
			}
			errs, metas, commits, runs := runOneBatch(t, b, tc.ops)
			won := 0
			for i, want := range tc.want {
				switch {
				case want == nil:
					require.NoError(t, errs[i], "op %d", i)
				case tc.ops[i].fail:
					require.EqualError(t, errs[i], want.Error())
				case tc.winners > 0 && errs[i] == nil:
					won++
				default:
					require.ErrorIs(t, errs[i], want, "op %d", i)
				}
			}
			require.Equal(t, tc.winners, won)
			require.Equal(t, 1, commits, "the batch commits once")
			if tc.oneRun {
				require.Equal(t, int64(1), runs, "a refusal must not roll the batch back")
			}
			// Read back through a backend that has cached nothing.
			require.NoError(t, b.Close())
			fresh := iopen(t, f.settings(SettingMaxVersions, "0"))
			tc.check(t, fresh, errs, metas)
		})
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// winner returns the index of the one op that succeeded.
func winner(t *testing.T, errs []error) int {
	t.Helper()
	for i, err := range errs {
		if err == nil {
			return i
		}
	}
	t.Fatal("no op succeeded")
	return -1
}

func requireData(t *testing.T, b *Backend, name string, version int64, want string) {
	t.Helper()
	s, err := b.Read(context.Background(), sdk.Ref{Project: "p", Name: name, Version: version})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"k": want}, s.Data)
}

func requireVersion(t *testing.T, b *Backend, name string, want int64) {
	t.Helper()
	m, err := b.Describe(context.Background(), sdk.Ref{Project: "p", Name: name})
	require.NoError(t, err)
	require.Equal(t, want, m.Version)
}

// A write with no other in flight commits at once, in a transaction of its
// own, and one refused by its checks commits nothing.
func TestLoneWriteCommitsAtOnce(t *testing.T) {
	b := iopen(t, newIFixture(t).settings())
	iwrite(t, b, "p", "s", map[string]string{"k": "v1"})
	ctx := context.Background()
	before := committedTx(t, b)

	m, err := b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "s", Data: map[string]string{"k": "v2"}, Mode: sdk.WriteUpsert})
	require.NoError(t, err)
	require.Equal(t, int64(2), m.Version)
	require.Equal(t, before+1, committedTx(t, b))

	_, err = b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "s", Data: map[string]string{"k": "x"}, Mode: sdk.WriteCreate})
	require.ErrorIs(t, err, sdk.ErrAlreadyExists)
	require.ErrorIs(t, b.Delete(ctx, sdk.Ref{Project: "p", Name: "s", Version: 9}), sdk.ErrVersionMismatch)
	require.Equal(t, before+1, committedTx(t, b), "a refused write alone commits nothing")
	requireVersion(t, b, "s", 2)
}

// Concurrent writes share commits without waiting for a clock: a write that
// arrives while a commit runs waits for that commit and its own, not for
// bbolt's MaxBatchDelay (set to a minute here, so that a write held by
// bbolt's own batching would fail the test).
func TestConcurrentWritesShareCommitsWithoutADelay(t *testing.T) {
	b := iopen(t, newIFixture(t).settings())
	b.db.MaxBatchDelay = time.Minute
	const writers, each = 16, 10
	before := committedTx(t, b)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: fmt.Sprint("s", w),
					Data: map[string]string{"k": fmt.Sprint(i)}, Mode: sdk.WriteUpsert})
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	require.Less(t, time.Since(start), 30*time.Second, "writes must not wait for a batch timer")
	for _, err := range errs {
		require.NoError(t, err)
	}
	commits := committedTx(t, b) - before
	require.Less(t, commits, writers*each, "concurrent writes share commits")
	for w := range writers {
		requireVersion(t, b, fmt.Sprint("s", w), each)
	}
}
