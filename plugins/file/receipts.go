package file

// Audit receipts (sdk/receipt.go): the gateway's audit record of a write,
// stored in the transaction that stores the version, so that the record
// is on disk exactly when the change is. They live in one top-level bucket,
// key → 8-byte big-endian version ‖ record. The gateway's keys sort by
// time, so new receipts append to the bucket's last page and forgotten ones
// leave from its first: a commit of a batch of writes dirties a page or two
// for them, not one per receipt. A record holds names, never a value, so it
// is stored as the gateway sent it, unsealed, like the audit log itself.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/secretgate/secretgate/sdk"
	bolt "go.etcd.io/bbolt"
)

var _ sdk.ReceiptKeeper = (*Backend)(nil)

// putReceipt stores r, the receipt of the write creating version, in tx.
func putReceipt(tx *bolt.Tx, r *sdk.AuditReceipt, version int64) error {
	if r == nil {
		return nil
	}
	rb, err := tx.CreateBucketIfNotExists(bucketReceipts)
	if err != nil {
		return fmt.Errorf("receipts bucket: %w", err)
	}
	v := make([]byte, 8+len(r.Record))
	binary.BigEndian.PutUint64(v, uint64(version))
	copy(v[8:], r.Record)
	return rb.Put([]byte(r.Key), v)
}

// Receipts returns every receipt kept, in key order.
func (b *Backend) Receipts(ctx context.Context) ([]sdk.KeptReceipt, error) {
	unlock, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []sdk.KeptReceipt
	err = b.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketReceipts)
		if rb == nil {
			return nil
		}
		return rb.ForEach(func(k, v []byte) error {
			if len(v) < 8 {
				return fmt.Errorf("file backend: receipt %q is corrupt (%d bytes)", k, len(v))
			}
			out = append(out, sdk.KeptReceipt{
				Key:     string(k),
				Version: int64(binary.BigEndian.Uint64(v)),
				Record:  append([]byte(nil), v[8:]...), // v lives only as long as tx
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("file backend: read receipts: %w", err)
	}
	return out, nil
}

// ForgetReceipts deletes the receipts of keys in one transaction, shared
// with the writes in flight (group commit), and so synced before it returns.
func (b *Backend) ForgetReceipts(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	var refused error
	err = b.commit(&refused, func(tx *bolt.Tx) error {
		refused = nil
		rb := tx.Bucket(bucketReceipts)
		if rb == nil {
			refused = errNothingToForget
			return nil
		}
		for _, k := range keys {
			if err := rb.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && refused != nil && refused != errNothingToForget {
		err = refused
	}
	if err != nil {
		return fmt.Errorf("file backend: forget receipts: %w", err)
	}
	return nil
}

// errNothingToForget: no receipt was ever kept, so the transaction has
// nothing to change and commits nothing.
var errNothingToForget = errors.New("file backend: no receipts kept")
