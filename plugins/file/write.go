package file

// Writes: Write (a new version, sealed) and Delete.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/secretgate/secretgate/sdk"
	bolt "go.etcd.io/bbolt"
)

// Write stores a new version in one bbolt transaction: the mode and
// check-and-set checks, the data key's creation for a new project, the
// ciphertext, pruning and the metadata commit together or not at all.
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
	var fresh *dataKey
	err = b.db.Update(func(tx *bolt.Tx) error {
		fresh = nil
		// The writer lock may have taken a while: a caller that gave up
		// meanwhile must not get a write it was told failed.
		if err := ctx.Err(); err != nil {
			return err
		}
		projects := tx.Bucket(bucketProjects)
		if projects == nil {
			return errors.New("the database is not initialised")
		}
		pb, sb, rec, err := b.loadSecret(tx, req.Project, req.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return err
		}
		switch {
		case exists && req.Mode == sdk.WriteCreate:
			return sdk.AlreadyExists(req.Project, req.Name)
		case !exists && (req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0):
			return sdk.NotFound(req.Project, req.Name)
		case exists && req.ExpectedVersion > 0 && rec.Version != req.ExpectedVersion:
			return sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, rec.Version)
		}

		var dk *dataKey
		if pb == nil {
			pb = projects.Bucket([]byte(req.Project))
		}
		if pb == nil {
			if pb, err = projects.CreateBucket([]byte(req.Project)); err != nil {
				return err
			}
		}
		if pb.Get(keyDEK) == nil {
			var wrapped []byte
			if dk, wrapped, err = newDEK(b.kek, req.Project); err != nil {
				return err
			}
			if err := pb.Put(keyDEK, wrapped); err != nil {
				return err
			}
			fresh = dk // cached only once the transaction commits
		} else if dk, err = b.dataKeyOf(pb, req.Project); err != nil {
			return err
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
			inc := make([]byte, idSize)
			if _, err := rand.Read(inc); err != nil {
				return fmt.Errorf("reading a random incarnation id: %w", err)
			}
			rec = &secretRecord{Incarnation: inc, CreatedAt: now}
		}
		v := rec.Version + 1
		ct, err := seal(dk.aead, []byte{versionFormat1}, plain, secretAAD(req.Project, req.Name, v, rec.Incarnation))
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
		m = rec.meta(req.Project, req.Name)
		return nil
	})
	if err != nil {
		return sdk.Meta{}, err
	}
	if fresh != nil {
		b.deksMu.Lock()
		b.deks[req.Project] = fresh
		b.deksMu.Unlock()
	}
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
	return b.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		pb, _, rec, err := b.loadSecret(tx, ref.Project, ref.Name)
		if err != nil {
			return err
		}
		if ref.Version > 0 && rec.Version != ref.Version {
			return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, rec.Version)
		}
		return pb.Bucket(bucketSecrets).DeleteBucket([]byte(ref.Name))
	})
}
