package sdk

import "context"

// Audit receipts let the gateway's audit trail of a write become durable in
// the same atomic commit as the write itself, instead of in an fsync of the
// gateway's audit log before the write and another after it. The gateway
// attaches the write's audit record to the WriteRequest; a backend that
// declares Capabilities.Receipts stores it in the transaction that stores
// the version, and keeps it until the gateway, once its own log holds the
// record on stable storage, forgets it. After a crash the gateway moves the
// receipts still kept into its log (docs/architecture.md, "Audit receipts").
//
// A receipt holds what an audit record holds: names, never a value and
// never a token.

// Limits of a receipt, checked by ValidateWrite.
const (
	MaxReceiptKeyBytes    = 64
	MaxReceiptRecordBytes = 8 << 10
)

// AuditReceipt is the audit record of one write, to be committed with it.
type AuditReceipt struct {
	// Key is unique per write; keys the gateway makes sort by the time of
	// their write, so that a backend storing them in key order appends.
	Key string
	// Record is the gateway's audit record of the write, opaque to the
	// backend.
	Record []byte
}

// KeptReceipt is a receipt a backend still holds, with the version the
// write it was committed with created.
type KeptReceipt struct {
	Key     string
	Record  []byte
	Version int64
}

// ReceiptKeeper is implemented by backends whose Capabilities.Receipts is
// true. Such a backend stores WriteRequest.Receipt atomically with the
// version (both committed, or neither), and never stores the receipt of a
// write it refused or that failed.
type ReceiptKeeper interface {
	// Receipts returns every receipt kept, in key order.
	Receipts(ctx context.Context) ([]KeptReceipt, error)
	// ForgetReceipts removes the receipts of keys, durably, before it
	// returns; keys not kept are ignored.
	ForgetReceipts(ctx context.Context, keys []string) error
}

// validateReceipt checks a WriteRequest's receipt, when it has one.
func validateReceipt(r *AuditReceipt) error {
	if r == nil {
		return nil
	}
	if r.Key == "" || len(r.Key) > MaxReceiptKeyBytes {
		return Invalid("receipt.key", "must be 1 to %d bytes", MaxReceiptKeyBytes)
	}
	if len(r.Record) == 0 || len(r.Record) > MaxReceiptRecordBytes {
		return Invalid("receipt.record", "must be 1 to %d bytes", MaxReceiptRecordBytes)
	}
	return nil
}
