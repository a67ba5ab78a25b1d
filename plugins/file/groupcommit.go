package file

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit of writes, leader/follower, without a timer.
//
// bbolt's DB.Batch holds the first write of a batch for MaxBatchDelay so
// that others can join it. That wait is paid by every write under load,
// and a shorter one closes a batch before the writes of a burst arrived.
// Here a write joins the pending batch; when no commit runs it leads one at
// once, taking the pending batch; when one runs it waits, and the leader of
// the running commit, when it ends, wakes one writer of the pending batch,
// which yields the processor once and then takes the batch, with every write
// that joined it by then, to commit in one transaction. So a write alone
// commits at once, and under load a commit serves every write that arrived
// while the previous commit ran or before its successor started: its
// writers wait for at most that commit and their own, never for a clock.
// (Taking the batch when the woken writer runs, not when it is woken, lets
// a burst that arrives in between join: 6.6-7.0 → 7.0-7.9 writes per commit
// at 32 clients, so fewer fdatasyncs per write; docs/benchmarks.md.)

// commitBatch is the writes queued while a commit ran.
type commitBatch struct {
	calls []commitCall
	// lead wakes one writer of the batch to commit it (buffered: a
	// hand-off sent before the writer waits is not lost).
	lead chan struct{}
	done chan struct{} // closed once every call's err is set
}

type commitCall struct {
	fn      func(*bolt.Tx) error
	refused *error // set by fn when its own checks refuse the write
	err     error  // of the commit; errTrySolo: run fn again alone
}

// groupCommitter batches the writes of one database.
type groupCommitter struct {
	mu      sync.Mutex
	busy    bool         // a commit runs, or a batch was handed to a leader
	pending *commitBatch // writes waiting for the next commit; nil if none
}

// errTrySolo tells a writer whose function failed inside a batch to run it
// again in a transaction of its own (the batch was rolled back without it).
var errTrySolo = errors.New("file backend: write failed in a batch; run it alone")

// errAllRefused rolls back a transaction in which every write was refused:
// it changed nothing, and committing it would cost two fdatasync for
// nothing.
var errAllRefused = errors.New("file backend: every write of the batch was refused")

// commit runs fn in a transaction shared with the writes in flight and
// returns once that transaction is committed (and so synced) or rolled
// back. fn records a refusal in *refused instead of returning it (see
// write.go); an error it returns rolls back the transaction, and fn is then
// run again alone so that the others commit without it.
func (g *groupCommitter) commit(db *bolt.DB, refused *error, fn func(*bolt.Tx) error) error {
	g.mu.Lock()
	batch := g.pending
	if batch == nil {
		batch = &commitBatch{lead: make(chan struct{}, 1), done: make(chan struct{})}
		g.pending = batch
	}
	i := len(batch.calls)
	batch.calls = append(batch.calls, commitCall{fn: fn, refused: refused})
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		g.lead(db, batch)
	} else {
		g.mu.Unlock()
		select {
		case <-batch.done:
		case <-batch.lead:
			// The previous leader left busy set and this batch pending (no
			// one else takes a pending batch while busy is set).
			g.lead(db, batch)
		}
	}
	err := batch.calls[i].err
	if errors.Is(err, errTrySolo) {
		err = db.Update(func(tx *bolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return *refused // alone, a refusal commits nothing
		})
		if *refused != nil && err == *refused {
			err = nil // the caller reports the refusal itself
		}
	}
	return err
}

// lead takes the pending batch, which the caller leads (busy is set for
// it), and commits it. It yields the processor once first: writes that
// arrived with the caller's (the gateway sends them in bursts, as its own
// group commit releases them) are runnable now and join this commit
// instead of waiting for the next. Alone, nothing else runs and the commit
// starts at once.
func (g *groupCommitter) lead(db *bolt.DB, batch *commitBatch) {
	runtime.Gosched()
	g.mu.Lock()
	g.pending = nil
	g.mu.Unlock()
	g.run(db, batch)
}

// run commits batch, whose leader the caller is, then hands the batch that
// was written meanwhile to one of its writers.
func (g *groupCommitter) run(db *bolt.DB, batch *commitBatch) {
	calls := make([]*commitCall, len(batch.calls))
	for i := range batch.calls {
		calls[i] = &batch.calls[i]
	}
	for len(calls) > 0 {
		failed := -1
		err := db.Update(func(tx *bolt.Tx) error {
			changed := false
			for i, c := range calls {
				if err := callSafely(c.fn, tx); err != nil {
					failed = i
					return err
				}
				changed = changed || *c.refused == nil
			}
			if !changed {
				return errAllRefused
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].err = errTrySolo
			calls = append(calls[:failed], calls[failed+1:]...)
			continue
		}
		if errors.Is(err, errAllRefused) {
			err = nil
		}
		for _, c := range calls {
			c.err = err
		}
		break
	}

	g.mu.Lock()
	next := g.pending // busy stays set when there is one: it passes to next's leader
	if next == nil {
		g.busy = false
	}
	g.mu.Unlock()
	close(batch.done)
	if next != nil {
		next.lead <- struct{}{}
	}
}

// callSafely runs fn, turning a panic into an error of that write alone,
// as bbolt's Batch does: the others of its batch must not fail with it.
func callSafely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("file backend: write panicked: %v", p)
		}
	}()
	return fn(tx)
}
