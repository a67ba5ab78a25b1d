package file

// Writes: Write (a new version, sealed) and Delete.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
	bolt "go.etcd.io/bbolt"
)

// Concurrent writes share one transaction and so one commit's fsyncs
// (group commit, groupcommit.go), and each caller hears of success only
// once that commit is on disk. A batch is run again without a function
// that returned an error (which then runs alone), so the functions below
// change nothing but the transaction and variables they set afresh on
// every run. A write with no other in flight commits at once, alone.
//
// A write refused by its own checks (the mode, check-and-set, the context,
// a record that does not decode) is not an error of the batch: its
// function records the refusal, writes nothing and returns nil, so the
// other writes of the batch commit unaffected, without the roll-back and
// re-run a returned error costs them. Those checks still run inside the
// transaction, after every earlier write of the batch, so check-and-set
// stays exact: of two creates of one name in a batch, the second sees the
// first. Errors after the first change to the transaction (writing the
// data key, a bucket, a ciphertext) are returned, so that the batch rolls
// back and Batch runs that write again alone.

// Write stores a new version in one bbolt transaction: the mode and
// check-and-set checks, the data key's creation for a new project, the
// ciphertext, pruning, the metadata and the audit receipt (receipts.go)
// commit together or not at all.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return sdk.Meta{}, err
	}
	defer unlock()
	plain, err := sdk.EncodeData(req.Data)
	if err != nil {
		return sdk.Meta{}, sdk.Invalid("data", "cannot be encoded as JSON")
	}
	defer clear(plain)
	keys := sdk.SortedKeys(req.Data)
	labels := sdk.CloneData(req.Labels)

	var m sdk.Meta
	var fresh *envelope.DataKey
	var refused error
	var stored []byte           // the record as committed
	var storedRec *secretRecord // and its decoding
	err = b.commit(&refused, func(tx *bolt.Tx) error {
		m, fresh, refused, stored, storedRec = sdk.Meta{}, nil, nil, nil, nil
		// Read-only checks first, so that a refusal leaves the transaction
		// as it found it. The writer lock (or the batch) may have taken a
		// while: a caller that gave up meanwhile must not get a write it
		// was told failed.
		if err := ctx.Err(); err != nil {
			refused = err
			return nil
		}
		projects := tx.Bucket(bucketProjects)
		if projects == nil {
			refused = errors.New("the database is not initialised")
			return nil
		}
		pb, sb, rec, err := b.loadSecret(tx, req.Project, req.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			refused = err
			return nil
		}
		switch {
		case exists && req.Mode == sdk.WriteCreate:
			refused = sdk.AlreadyExists(req.Project, req.Name)
		case !exists && (req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0):
			refused = sdk.NotFound(req.Project, req.Name)
		case exists && req.ExpectedVersion > 0 && rec.Version != req.ExpectedVersion:
			refused = sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, rec.Version)
		}
		if refused != nil {
			return nil
		}
		if pb == nil {
			pb = projects.Bucket([]byte(req.Project))
		}
		var dk *envelope.DataKey
		if pb != nil && pb.Get(keyDEK) != nil {
			if dk, err = b.dataKeyOf(pb, req.Project); err != nil {
				refused = err
				return nil
			}
		}

		// From here on the transaction changes: errors are returned.
		if pb == nil {
			if pb, err = projects.CreateBucket([]byte(req.Project)); err != nil {
				return err
			}
		}
		if dk == nil {
			var wrapped []byte
			if dk, wrapped, err = domain.NewDEK(b.kek, req.Project); err != nil {
				return err
			}
			if err := pb.Put(keyDEK, wrapped); err != nil {
				return err
			}
			fresh = dk // cached only once the transaction commits
		}

		now := time.Now().UTC()
		if !exists {
			secrets, err := pb.CreateBucketIfNotExists(bucketSecrets)
			if err != nil {
				return err
			}
			if sb, err = secrets.CreateBucket([]byte(req.Name)); err != nil {
				return err
			}
			inc := make([]byte, envelope.IDSize)
			if _, err := rand.Read(inc); err != nil {
				return fmt.Errorf("reading a random incarnation id: %w", err)
			}
			rec = &secretRecord{Incarnation: inc, CreatedAt: now}
		}
		v := rec.Version + 1
		ct, err := domain.SealVersion(dk, req.Project, req.Name, v, rec.Incarnation, plain)
		if err != nil {
			return err
		}
		if err := sb.Put(versionKey(v), ct); err != nil {
			return err
		}
		rec.Version, rec.Keys, rec.UpdatedAt = v, keys, now
		if labels != nil {
			rec.Labels = labels
			if len(labels) == 0 {
				rec.Labels = nil
			}
		}
		rec.Versions = append(rec.Versions, versionRecord{Version: v, CreatedAt: now})
		if n := b.maxVersions; n > 0 && len(rec.Versions) > n {
			for _, old := range rec.Versions[:len(rec.Versions)-n] {
				if err := sb.Delete(versionKey(old.Version)); err != nil {
					return err
				}
			}
			rec.Versions = append([]versionRecord(nil), rec.Versions[len(rec.Versions)-n:]...)
		}
		enc, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := sb.Put(keyRecord, enc); err != nil {
			return err
		}
		if err := putReceipt(tx, req.Receipt, v); err != nil {
			return err
		}
		m = rec.meta(req.Project, req.Name)
		stored, storedRec = enc, rec
		return nil
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return sdk.Meta{}, err
	}
	if fresh != nil {
		b.deksMu.Lock()
		b.deks[req.Project] = fresh
		b.deksMu.Unlock()
	}
	b.records.remember(req.Project, req.Name, stored, storedRec)
	return m, nil
}

// Delete removes the secret's bucket, and so every version, in one
// transaction; with ref.Version > 0 only if that is the latest (atomic).
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	// Batched like Write: a refusal is recorded, not returned (see above).
	var refused error
	err = b.commit(&refused, func(tx *bolt.Tx) error {
		refused = nil
		if err := ctx.Err(); err != nil {
			refused = err
			return nil
		}
		pb, _, rec, err := b.loadSecret(tx, ref.Project, ref.Name)
		if err != nil {
			refused = err
			return nil
		}
		if ref.Version > 0 && rec.Version != ref.Version {
			refused = sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, rec.Version)
			return nil
		}
		return pb.Bucket(bucketSecrets).DeleteBucket([]byte(ref.Name))
	})
	if err == nil {
		err = refused
	}
	return err
}

// commit runs fn, which records a refusal in *refused instead of returning
// it, in a transaction shared with the writes in flight (see groupcommit.go);
// a transaction in which every write was refused commits nothing.
func (b *Backend) commit(refused *error, fn func(*bolt.Tx) error) error {
	return b.group.commit(b.db, refused, fn)
}
