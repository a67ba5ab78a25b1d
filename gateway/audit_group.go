package gateway

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Group commit of the audit log's fsyncs, leader/follower.
//
// Records are appended under FileAuditor.mu into the pending batch. A
// writer whose record must be synced leads a sync when none is running: it
// takes the pending batch (under mu, so every record in it was written
// before) and fsyncs the file without holding mu. Records to be synced
// that come while the sync runs join the queue, in memory; other records
// are written at once, after the queue (so lines stay in the order records
// came). When the sync ends, its leader wakes one writer of the queue,
// which writes the whole queue in one write(2) with one check of the path
// and syncs it, with everything else written meanwhile, in one fsync. So a
// record that must be synced always waits for an fsync that started after
// its write, a writer alone writes and syncs at once on its own goroutine,
// and under load one write and one fsync serve every record handed in
// while the previous fsync ran: two syscalls for them all where each
// record cost a path check and a write of its own (docs/benchmarks.md,
// "PUT: where the latency goes": the gateway's syscalls per PUT went from
// 15.0 to 10.4).

// maxKeptQueueBuffer bounds the queue's buffer kept between syncs.
const maxKeptQueueBuffer = 64 << 10

// syncBatch is the records written to one file between two syncs.
type syncBatch struct {
	records int           // written into the batch; guarded by FileAuditor.mu
	done    chan struct{} // closed once the sync covering the batch returned
	err     error         // of that sync; set before done is closed
	// lead wakes a writer waiting in the batch to sync it (buffered: a
	// wake-up sent before the writer waits is not lost).
	lead chan struct{}
	// riders are queues written into this batch's file: they end with it.
	// host is the batch a written queue rides with. Both guarded by mu.
	riders []*syncBatch
	host   *syncBatch
}

func newSyncBatch() *syncBatch {
	return &syncBatch{done: make(chan struct{}), lead: make(chan struct{}, 1)}
}

// finish publishes the result of the sync that covered the batch, and
// its riders.
func (b *syncBatch) finish(err error) {
	for _, r := range b.riders {
		r.finish(err)
	}
	b.err = err
	close(b.done)
}

// ride makes the written queue q part of b: the sync of b covers it.
func (b *syncBatch) ride(q *syncBatch) {
	b.records += q.records
	b.riders = append(b.riders, q)
	q.host = b
}

// synced reports, without waiting, whether the sync covering b has
// returned, and its error.
func (b *syncBatch) synced() (done bool, err error) {
	select {
	case <-b.done:
		return true, b.err
	default:
		return false, nil
	}
}

// wake asks one writer waiting in b, if any, to lead the next sync.
func (b *syncBatch) wake() {
	select {
	case b.lead <- struct{}{}:
	default:
	}
}

// waitSynced returns once batch, which holds a record of the caller's, is
// on disk, leading the sync of it when no other sync runs.
func (a *FileAuditor) waitSynced(batch *syncBatch) error {
	yielded := false
	for {
		a.mu.Lock()
		select {
		case <-batch.done:
			a.mu.Unlock()
			return batch.err
		default:
		}
		syncs := batch // the batch whose sync covers the caller's record
		if batch.host != nil {
			syncs = batch.host
		}
		if !a.syncBusy && !a.closed && (syncs == a.pending || syncs == a.queue) {
			if !yielded {
				// Yield the processor once before leading: records of
				// requests that are runnable now (released together by
				// the previous sync or the backend's group commit) get
				// written and share this fsync instead of needing the
				// next one. An fsync costs this machine's CPU as much as
				// a tenth of a request. Alone, nothing runs meanwhile.
				yielded = true
				a.mu.Unlock()
				runtime.Gosched()
				continue
			}
			a.leadSync() // releases mu
			<-batch.done // the sync covered it, or the write of the queue failed
			return batch.err
		}
		// A sync runs (this batch's, or the previous one), or Close or a
		// rotation syncs this batch.
		a.mu.Unlock()
		select {
		case <-batch.done:
			return batch.err
		case <-batch.lead:
		}
	}
}

// leadSync writes the queue, takes the pending batch and fsyncs the file
// it was written to. The caller holds mu, and no sync runs; mu is released
// on return.
func (a *FileAuditor) leadSync() {
	if a.queue.records > 0 {
		// On failure the queue's records fail (writeLocked); whatever else
		// is pending is still synced.
		_ = a.writeLocked(nil)
	}
	if a.pending.records == 0 {
		a.mu.Unlock()
		return
	}
	batch, f, regular, syncFile := a.pending, a.f, a.regular, a.syncFile
	a.pending = newSyncBatch()
	a.syncBusy, a.running = true, batch
	// Taken before mu is let go, so that a rotation cannot close f first.
	a.syncing.Lock()
	a.mu.Unlock()
	err := syncRegular(syncFile, f, regular)
	a.syncing.Unlock()

	a.mu.Lock()
	a.syncBusy, a.running = false, nil
	if err != nil && !a.closed && a.f == f && a.pending.records > 0 {
		// The records written while the failed fsync ran fail too. A failed
		// fsync may have dropped the dirty pages that held them, and the
		// kernel reports that error once only: a later fsync that succeeds
		// would not prove them on disk. (Closed or rotated: Close or the
		// rotation synced that batch itself.)
		failed := a.pending
		a.pending = newSyncBatch()
		failed.finish(err)
	}
	// Records handed in while this sync ran may be waiting: one of their
	// writers leads the next sync. They are queued, or were written by a
	// record that was not to be synced (riders of the pending batch).
	wake := []*syncBatch{a.queue}
	if a.queue.records == 0 {
		wake = append(append(wake[:0], a.pending), a.pending.riders...)
	}
	a.mu.Unlock()
	batch.finish(err)
	for _, b := range wake {
		b.wake()
	}
}

// Sync returns once every record handed in before it is on stable
// storage: it waits for the sync running, if its batch holds the last of
// them, or for (or leads) a sync of the pending batch. It shares syncs
// with the writers in flight like any record to be synced.
func (a *FileAuditor) Sync() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errors.New("audit: log is closed")
	}
	batch := a.pending
	if batch.records == 0 && a.queue.records > 0 {
		batch = a.queue // records to be synced, not written yet: their sync covers the rest
	}
	if batch.records > 0 {
		a.mu.Unlock()
		if err := a.waitSynced(batch); err != nil {
			return fmt.Errorf("audit: sync: %w", err)
		}
		return nil
	}
	running := a.running
	a.mu.Unlock()
	if running != nil {
		<-running.done
		if running.err != nil {
			return fmt.Errorf("audit: sync: %w", running.err)
		}
	}
	return nil
}

// syncLoop syncs, every period, records written that nobody waits for
// (reads, refused tokens, the interval policy).
func (a *FileAuditor) syncLoop(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.backgroundSync()
		}
	}
}

// backgroundSync makes sure the records written so far get synced.
func (a *FileAuditor) backgroundSync() {
	a.mu.Lock()
	if a.syncBusy {
		// Wait for the running sync: the records written since it started
		// are left to the next one, which starts after this.
		a.mu.Unlock()
		a.syncing.Lock()
		//lint:ignore SA2001 waiting for the running fsync to end is the point
		a.syncing.Unlock()
		a.mu.Lock()
		if a.syncBusy {
			// Another sync started meanwhile, after those records were
			// written: it covers them.
			a.mu.Unlock()
			return
		}
	}
	if a.closed || a.pending.records == 0 && a.queue.records == 0 {
		a.mu.Unlock()
		return
	}
	a.leadSync()
}

// Close syncs and closes the file. Records waiting for a sync get it here.
func (a *FileAuditor) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.queue.records > 0 {
		// Before taking syncing: a rotation seen here syncs the old file
		// under it. On failure the queue's records fail.
		_ = a.writeLocked(nil)
	}
	// A sync still running ends before f is closed under it.
	a.syncing.Lock()
	defer a.syncing.Unlock()
	var serr error
	if a.pending.records > 0 {
		serr = syncRegular(a.syncFile, a.f, a.regular)
	}
	a.pending.finish(serr)
	return errors.Join(serr, a.f.Close())
}
