package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// The request side of audit receipts (receipts.go): a mutation on a
// backend that keeps receipts writes its intent record without waiting
// for the log's fsync, and every Write it makes carries that record as a
// receipt, committed with the version. Any other change it makes (a
// Delete) first waits for the intent's fsync, as without receipts. The
// outcome of a request whose every change was a receipted write is
// written without waiting for the fsync either; otherwise it is synced.

// receiptedMutation is a request's state while its records ride on receipts.
type receiptedMutation struct {
	ledger *receiptLedger
	intent []byte     // the intent record as written to the log
	logged *syncBatch // the log's batch holding it
	// keys are the receipts of the writes that succeeded. A write that
	// failed may still have been stored, with its receipt: that receipt is
	// never handed to the ledger, so it stays kept and the plugin's next
	// start records it as recovered.
	keys []string
	// synced: a change other than a receipted write was made (after the
	// intent's fsync): the outcome is synced too.
	synced bool
}

// covers says whether the request's success needs no fsync: it changed
// something, and only through receipted writes.
func (m *receiptedMutation) covers() bool {
	return m != nil && !m.synced && len(m.keys) > 0
}

// receiptedIntent writes the intent record (not synced) and returns b
// wrapped so that its writes carry it; false means the answer is written.
func (r *request) receiptedIntent(b sdk.Backend, l *receiptLedger) (sdk.Backend, bool) {
	rec := r.record(PhaseIntent, "")
	// The receipt holds the record exactly as the log does.
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	raw, err := json.Marshal(rec)
	if err == nil && len(raw) > sdk.MaxReceiptRecordBytes {
		// Long claims of a workload identity: too large to ride as a
		// receipt, so this request takes the two fsyncs.
		return b, r.auditIntent()
	}
	var logged *syncBatch
	if err == nil {
		logged, err = r.s.receipts.deferred.WriteDeferred(rec)
	}
	if err != nil {
		r.s.log.Error("audit write failed, refusing the change", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return nil, false
	}
	r.receipted = &receiptedMutation{ledger: l, intent: raw, logged: logged}
	return receiptedBackend{Backend: b, r: r}, true
}

// auditReceiptedSuccess writes the outcome record of a request whose
// changes were all receipted writes, without waiting for its fsync, then
// hands its receipts to the ledger (forgotten once a sync covers them).
func (r *request) auditReceiptedSuccess() bool {
	m := r.receipted
	outcome, err := r.s.receipts.deferred.WriteDeferred(r.record(PhaseOutcome, "ok"))
	if err != nil {
		// The receipts stay kept: the next start of the plugin moves them
		// into the log.
		r.s.log.Error("audit write failed", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return false
	}
	for _, key := range m.keys {
		m.ledger.add(writtenReceipt{key: key, batches: [2]*syncBatch{m.logged, outcome}})
	}
	return true
}

// receiptedBackend attaches the request's intent record to each Write as
// a receipt, and syncs it before any other change.
type receiptedBackend struct {
	sdk.Backend
	r *request
}

func (b receiptedBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	m := b.r.receipted
	key := b.r.s.receipts.nextKey()
	req.Receipt = &sdk.AuditReceipt{Key: key, Record: m.intent}
	meta, err := b.Backend.Write(ctx, req)
	if err == nil {
		m.keys = append(m.keys, key)
	}
	return meta, err
}

func (b receiptedBackend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.syncIntent(); err != nil {
		return err
	}
	return b.Backend.Delete(ctx, ref)
}

// syncIntent makes the intent record durable before a change that carries
// no receipt; the outcome is then synced too.
func (b receiptedBackend) syncIntent() error {
	m := b.r.receipted
	m.synced = true
	if err := b.r.s.receipts.deferred.WaitSynced(m.logged); err != nil {
		return auditUnavailable(err)
	}
	return nil
}
