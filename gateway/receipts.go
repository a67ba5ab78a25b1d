package gateway

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// Audit receipts (docs/architecture.md, "Audit receipts"; sdk/receipt.go).
//
// Under the mutations policy a write's trail must be on stable storage
// before the backend is touched (its intent) and before the client hears
// of success (its outcome): two fsyncs of the audit log around the
// backend's own commit. A backend that keeps receipts commits the write's
// intent record in the same transaction as the version, so the trail is
// durable exactly when the change is: then the gateway writes the intent
// and outcome records to the log without waiting for their fsync, answers,
// and a loop here syncs the log every audit.receipt_sync and has the
// backend forget the receipts the sync covered. When the gateway (or the
// machine) dies in between, the receipts still kept are moved into the log
// when the backend's plugin next starts, as records marked recovered.
//
// The trail is never weaker for it: a receipt commits with its write or
// not at all, so no change is ever stored without its records, while with
// two fsyncs an intent could be on disk for a change that never happened,
// or a change stored without its outcome. What moves is where the records
// wait, for at most audit.receipt_sync, before they are in the log's file.
// Measured: docs/benchmarks.md, "Audit receipts".

// receiptAuditor is what receipts need of the audit log (FileAuditor).
type receiptAuditor interface {
	Auditor
	WriteDeferred(rec AuditRecord) (*syncBatch, error)
	WaitSynced(batch *syncBatch) error
	Sync() error
}

// receipts keeps the ledgers of the backends whose writes carry receipts.
type receipts struct {
	audit Auditor
	// deferred is audit when receipts are on (it can defer syncs, the
	// policy is mutations and audit.receipt_sync is not off); else nil.
	deferred receiptAuditor
	every    time.Duration
	log      *slog.Logger
	// backend returns a backend's plugin client, for ForgetReceipts.
	backend func(name string) (sdk.Backend, error)

	prefix string // this process's key prefix: its start time
	seq    atomic.Uint64

	mu        sync.Mutex
	ledgers   map[string]*receiptLedger // by backend; only those keeping receipts
	recovered map[string]uint64         // receipts moved into the log, by backend

	stop chan struct{}
	done chan struct{}
}

// receiptLedger holds one backend's receipts whose records are written to
// the log, to be forgotten once the syncs covering those records succeeded.
type receiptLedger struct {
	mu      sync.Mutex
	written []writtenReceipt
}

// writtenReceipt is a receipt and the batches of the log holding its
// records (intent and outcome; they may be one).
type writtenReceipt struct {
	key     string
	batches [2]*syncBatch
}

func (l *receiptLedger) add(rs ...writtenReceipt) {
	l.mu.Lock()
	l.written = append(l.written, rs...)
	l.mu.Unlock()
}

func (l *receiptLedger) take() []writtenReceipt {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.written
	l.written = nil
	return out
}

func (l *receiptLedger) holds(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.written, func(w writtenReceipt) bool { return w.key == key })
}

// covered sorts taken receipts: those whose records are all synced, those
// whose sync has not returned yet (kept for the next round), and the
// number whose records a failed sync may have lost (dropped: they stay
// kept by the backend, and its plugin's next start recovers them).
func covered(taken []writtenReceipt) (synced []string, waiting []writtenReceipt, lost int) {
	for _, w := range taken {
		ok, pending := true, false
		for _, b := range w.batches {
			if b == nil {
				continue
			}
			done, err := b.synced()
			switch {
			case !done:
				pending = true
			case err != nil:
				ok = false
			}
		}
		switch {
		case !ok:
			lost++
		case pending:
			waiting = append(waiting, w)
		default:
			synced = append(synced, w.key)
		}
	}
	return synced, waiting, lost
}

// newReceipts keeps the receipts of the backends that keep them when
// audit allows it and cfg has them on; start runs its loop.
func newReceipts(audit Auditor, cfg AuditConfig, log *slog.Logger, backend func(string) (sdk.Backend, error)) *receipts {
	r := &receipts{audit: audit, log: log, backend: backend, ledgers: map[string]*receiptLedger{}, recovered: map[string]uint64{},
		prefix: fmt.Sprintf("%016x", time.Now().UnixNano()), stop: make(chan struct{})}
	every, on := cfg.ReceiptSyncInterval()
	if ra, ok := audit.(receiptAuditor); ok && on {
		r.deferred, r.every = ra, every
	}
	return r
}

// start runs the sync-and-forget loop, once backend can be called.
func (r *receipts) start() {
	if r.deferred != nil {
		r.done = make(chan struct{})
		go r.run()
	}
}

// ledger returns the ledger of backend when its writes carry receipts.
func (r *receipts) ledger(backend string) *receiptLedger {
	if r == nil || r.deferred == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ledgers[backend]
}

// nextKey is a receipt key unique to this write: this process's start
// time and a counter, in hex, so that keys sort by time across restarts.
func (r *receipts) nextKey() string {
	return r.prefix + hex.EncodeToString(binary.BigEndian.AppendUint64(nil, r.seq.Add(1)))
}

// run syncs the log and forgets the receipts the sync covered, every
// r.every, until close.
func (r *receipts) run() {
	defer close(r.done)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			r.flush()
			return
		case <-t.C:
			r.flush()
		}
	}
}

// flush syncs the log once for every ledger's written receipts, then has
// each backend forget those whose records the syncs covered. A receipt is
// forgotten only once every sync that covered its records succeeded: one
// forgotten late is harmless, one forgotten before its records are on
// disk would be a lost trail. Receipts whose records a failed sync may
// have lost are never forgotten by this process: the plugin's next start
// moves them into the log.
func (r *receipts) flush() {
	r.mu.Lock()
	names := make([]string, 0, len(r.ledgers))
	ledgers := make([]*receiptLedger, 0, len(r.ledgers))
	for name, l := range r.ledgers {
		names, ledgers = append(names, name), append(ledgers, l)
	}
	r.mu.Unlock()
	taken := make([][]writtenReceipt, len(ledgers))
	some := false
	for i, l := range ledgers {
		taken[i] = l.take()
		some = some || len(taken[i]) > 0
	}
	if !some {
		return
	}
	if err := r.deferred.Sync(); err != nil {
		r.log.Error("audit log sync failed; the receipts of the records it held stay kept by their backends and are recovered at their next start", "error", err)
	}
	for i, l := range ledgers {
		synced, waiting, lost := covered(taken[i])
		l.add(waiting...)
		if lost > 0 {
			r.log.Error("audit records of receipted writes may be lost from the log (a sync failed); their receipts stay kept and are recovered at the backend's next start", "backend", names[i], "receipts", lost)
		}
		if len(synced) == 0 {
			continue
		}
		err := r.forget(names[i], synced)
		if errors.Is(err, sdk.ErrNotFound) {
			// A reload removed the backend: its receipts stay in its
			// store, recovered should it be configured again.
			r.mu.Lock()
			if r.ledgers[names[i]] == l {
				delete(r.ledgers, names[i])
			}
			r.mu.Unlock()
			continue
		}
		if err != nil {
			r.log.Warn("cannot forget audit receipts yet; will retry", "backend", names[i], "receipts", len(synced), "error", err)
			for _, key := range synced {
				l.add(writtenReceipt{key: key}) // synced already: no batch to wait for
			}
		}
	}
}

// forgetBatch bounds the keys of one ForgetReceipts call.
const forgetBatch = 4096

func (r *receipts) forget(name string, keys []string) error {
	b, err := r.backend(name)
	if err != nil {
		return err
	}
	k, ok := b.(sdk.ReceiptKeeper)
	if !ok {
		return errors.New("the backend's client keeps no receipts")
	}
	for chunk := range slices.Chunk(keys, forgetBatch) {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultBackendTimeout)
		err := k.ForgetReceipts(ctx, chunk)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// close syncs and forgets what is written, and stops the loop.
func (r *receipts) close() {
	if r.done == nil {
		return // never started
	}
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// started is the host's hook for a backend's plugin that has just been
// configured, before it serves: the receipts it still keeps (the gateway
// or the machine stopped before their records were synced and forgotten)
// are moved into the log, and its writes carry receipts from now on when
// it keeps them and receipts are on. Receipts are recovered even when
// they are off now, so that turning them off after a crash loses nothing.
func (r *receipts) started(ctx context.Context, name string, b sdk.Backend) {
	caps, err := b.Capabilities(ctx)
	k, keeps := b.(sdk.ReceiptKeeper)
	keeps = keeps && err == nil && caps.Receipts
	if !keeps {
		r.mu.Lock()
		delete(r.ledgers, name)
		r.mu.Unlock()
		return
	}
	recovered, err := r.recover(ctx, name, k)
	switch {
	case err != nil:
		r.log.Error("audit receipts kept by the backend could not be moved into the audit log; they stay kept and are tried again at its next start", "backend", name, "error", err)
	case recovered > 0:
		r.mu.Lock()
		r.recovered[name] += uint64(recovered)
		r.mu.Unlock()
		r.log.Warn("audit receipts recovered: the records of writes whose log records may not have reached the disk were appended to the audit log, marked recovered", "backend", name, "receipts", recovered)
	}
	if r.deferred == nil {
		return
	}
	r.mu.Lock()
	if r.ledgers[name] == nil {
		r.ledgers[name] = &receiptLedger{}
	}
	r.mu.Unlock()
}

// recover appends the intent and outcome records of every receipt b keeps
// (except those this process has written and not yet forgotten), syncs
// them once, then has b forget the receipts whose records that sync
// covered: after a crash there may be many, and a sync of their own for
// each record would hold the plugin's start for seconds.
func (r *receipts) recover(ctx context.Context, name string, k sdk.ReceiptKeeper) (int, error) {
	kept, err := k.Receipts(ctx)
	if err != nil {
		return 0, fmt.Errorf("list receipts: %w", err)
	}
	r.mu.Lock()
	own := r.ledgers[name]
	r.mu.Unlock()
	deferred, canDefer := r.audit.(receiptAuditor)
	var written []writtenReceipt
	for _, kr := range kept {
		if own != nil && own.holds(kr.Key) {
			continue
		}
		intent, outcome, err := recoveredRecords(kr)
		if err != nil {
			r.log.Error("an audit receipt does not hold an audit record; it is kept as is", "backend", name, "receipt", kr.Key, "error", err)
			continue
		}
		w := writtenReceipt{key: kr.Key}
		for i, rec := range []AuditRecord{intent, outcome} {
			if canDefer {
				w.batches[i], err = deferred.WriteDeferred(rec)
			} else {
				err = r.audit.Write(rec) // synced as its policy says
			}
			if err != nil {
				return 0, err
			}
		}
		written = append(written, w)
	}
	if len(written) == 0 {
		return 0, nil
	}
	if canDefer {
		if err := deferred.Sync(); err != nil {
			return 0, err
		}
	}
	// After that Sync every batch is done; one whose sync failed keeps its
	// receipt for the next start.
	synced, _, _ := covered(written)
	for chunk := range slices.Chunk(synced, forgetBatch) {
		if err := k.ForgetReceipts(ctx, chunk); err != nil {
			return 0, fmt.Errorf("forget recovered receipts (their records are in the log, and will be appended again at the next start): %w", err)
		}
	}
	return len(written), nil
}

// recoveredRecords are the records of a kept receipt: its intent record as
// written, and an outcome "ok" with the version the write created, both
// marked recovered. The log may already hold them (the gateway was killed
// after writing them, before the receipt was forgotten): the same
// request_id and phase then appear twice.
func recoveredRecords(kr sdk.KeptReceipt) (intent, outcome AuditRecord, err error) {
	if err := json.Unmarshal(kr.Record, &intent); err != nil {
		return intent, outcome, fmt.Errorf("decode: %w", err)
	}
	if intent.Phase != PhaseIntent || intent.RequestID == "" {
		return intent, outcome, errors.New("not the intent record of a request (phase " + strconv.Quote(intent.Phase) + ")")
	}
	intent.Recovered = true
	outcome = intent
	outcome.Phase, outcome.Outcome, outcome.Version = PhaseOutcome, "ok", kr.Version
	outcome.Time = time.Now().UTC().Format(time.RFC3339Nano)
	return intent, outcome, nil
}

// writeMetrics writes the receipts' metrics: per backend that keeps them,
// the receipts whose records are in the log but not yet forgotten, and the
// receipts recovered at plugin starts.
func (r *receipts) writeMetrics(w io.Writer) {
	r.mu.Lock()
	waiting := map[string]int{}
	for name, l := range r.ledgers {
		l.mu.Lock()
		waiting[name] = len(l.written)
		l.mu.Unlock()
	}
	recovered := maps.Clone(r.recovered)
	r.mu.Unlock()
	fmt.Fprint(w, "# HELP secretgate_audit_receipts_waiting Audit receipts of answered writes not yet forgotten: their records are in the audit log, not yet known synced.\n# TYPE secretgate_audit_receipts_waiting gauge\n")
	for _, name := range slices.Sorted(maps.Keys(waiting)) {
		fmt.Fprintf(w, "secretgate_audit_receipts_waiting{backend=%q} %d\n", name, waiting[name])
	}
	fmt.Fprint(w, "# HELP secretgate_audit_receipts_recovered_total Audit receipts moved into the audit log when a backend's plugin started (records of writes the log may have lost).\n# TYPE secretgate_audit_receipts_recovered_total counter\n")
	for _, name := range slices.Sorted(maps.Keys(recovered)) {
		fmt.Fprintf(w, "secretgate_audit_receipts_recovered_total{backend=%q} %d\n", name, recovered[name])
	}
}
