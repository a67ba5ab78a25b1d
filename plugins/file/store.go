package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/secretgate/secretgate/sdk"
)

// The storage layout; see the package doc.
var (
	bucketMeta     = []byte("meta")
	bucketProjects = []byte("projects")
	bucketSecrets  = []byte("secrets")
	keyFormat      = []byte("format")
	keyVerifier    = []byte("kek_verifier")
	keyKDF         = []byte("kdf")
	keyDEK         = []byte("dek")
	keyRecord      = []byte("m")
)

const formatVersion = "1"

// versionKeyPrefix starts the key of every version ciphertext in a secret's
// bucket; "m" (the record) cannot collide with it.
const versionKeyPrefix = 'v'

func versionKey(v int64) []byte {
	k := make([]byte, 9)
	k[0] = versionKeyPrefix
	binary.BigEndian.PutUint64(k[1:], uint64(v))
	return k
}

// secretRecord is a secret's metadata, stored in plain text (JSON) under
// "m" in its bucket. It holds no value.
type secretRecord struct {
	Incarnation []byte            `json:"incarnation"` // random per creation; part of every version's AAD
	Version     int64             `json:"version"`     // latest
	Keys        []string          `json:"keys"`        // of the latest version, sorted
	Labels      map[string]string `json:"labels,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Versions    []versionRecord   `json:"versions"` // stored versions, oldest first
}

type versionRecord struct {
	Version   int64     `json:"v"`
	CreatedAt time.Time `json:"t"`
}

func (r *secretRecord) meta(project, name string) sdk.Meta {
	return sdk.Meta{
		Project:   project,
		Name:      name,
		Keys:      append([]string(nil), r.Keys...),
		Version:   r.Version,
		Labels:    sdk.CloneData(r.Labels),
		CreatedAt: r.CreatedAt,
		UpdatedAt: r.UpdatedAt,
	}
}

func decodeRecord(project, name string, b []byte) (*secretRecord, error) {
	var r secretRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("secret %q in project %q: reading its metadata: %w", name, project, err)
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	for i := range r.Versions {
		r.Versions[i].CreatedAt = r.Versions[i].CreatedAt.UTC()
	}
	return &r, nil
}

// secretBuckets finds a project's bucket and a secret's bucket in it; either
// may be nil.
func secretBuckets(tx *bolt.Tx, project, name string) (pb, sb *bolt.Bucket) {
	projects := tx.Bucket(bucketProjects)
	if projects == nil {
		return nil, nil
	}
	pb = projects.Bucket([]byte(project))
	if pb == nil {
		return nil, nil
	}
	if secrets := pb.Bucket(bucketSecrets); secrets != nil {
		sb = secrets.Bucket([]byte(name))
	}
	return pb, sb
}

// loadSecret returns the secret's buckets and record, or ErrNotFound.
func (b *Backend) loadSecret(tx *bolt.Tx, project, name string) (pb, sb *bolt.Bucket, rec *secretRecord, err error) {
	pb, sb = secretBuckets(tx, project, name)
	if sb == nil {
		return nil, nil, nil, sdk.NotFound(project, name)
	}
	raw := sb.Get(keyRecord)
	if raw == nil {
		return nil, nil, nil, fmt.Errorf("secret %q in project %q has no metadata record", name, project)
	}
	rec, err = b.records.decode(project, name, raw)
	return pb, sb, rec, err
}

// dataKeyOf returns the project's unwrapped data key, from the cache when
// the cached id matches the stored record.
func (b *Backend) dataKeyOf(pb *bolt.Bucket, project string) (*dataKey, error) {
	rec := pb.Get(keyDEK)
	if rec == nil {
		return nil, fmt.Errorf("project %q has secrets but no data key", project)
	}
	b.deksMu.Lock()
	dk := b.deks[project]
	b.deksMu.Unlock()
	if dk != nil && len(rec) >= idSize && bytes.Equal(dk.id, rec[:idSize]) {
		return dk, nil
	}
	dk, err := unwrapDEK(b.kek, project, rec)
	if err != nil {
		return nil, err
	}
	b.deksMu.Lock()
	b.deks[project] = dk
	b.deksMu.Unlock()
	return dk, nil
}

// begin checks the context and the configuration and takes the read lock;
// the caller defers the returned unlock.
func (b *Backend) begin(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	if b.db == nil {
		b.mu.RUnlock()
		return nil, errNotConfigured
	}
	return b.mu.RUnlock, nil
}

// Describe returns the latest metadata; no decryption is needed.
func (b *Backend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Meta{}, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return sdk.Meta{}, err
	}
	defer unlock()
	var m sdk.Meta
	err = b.db.View(func(tx *bolt.Tx) error {
		_, _, rec, err := b.loadSecret(tx, ref.Project, ref.Name)
		if err != nil {
			return err
		}
		m = rec.meta(ref.Project, ref.Name)
		return nil
	})
	return m, err
}

// Read decrypts one version (the latest when ref.Version is 0). A version
// that was pruned, or never written, is ErrNotFound.
func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return sdk.Secret{}, err
	}
	defer unlock()
	var sec sdk.Secret
	err = b.db.View(func(tx *bolt.Tx) error {
		pb, sb, rec, err := b.loadSecret(tx, ref.Project, ref.Name)
		if err != nil {
			return err
		}
		v := ref.Version
		if v == 0 {
			v = rec.Version
		}
		ct := sb.Get(versionKey(v))
		if ct == nil {
			return sdk.VersionNotFound(ref.Project, ref.Name, v)
		}
		dk, err := b.dataKeyOf(pb, ref.Project)
		if err != nil {
			return err
		}
		data, err := decryptVersion(dk, ref.Project, ref.Name, v, rec.Incarnation, ct)
		if err != nil {
			return err
		}
		sec.Meta = rec.meta(ref.Project, ref.Name)
		sec.Version = v
		sec.Keys = sdk.SortedKeys(data)
		sec.Data = data
		return nil
	})
	if err != nil {
		return sdk.Secret{}, err
	}
	return sec, nil
}

func decryptVersion(dk *dataKey, project, name string, v int64, incarnation, ct []byte) (map[string]string, error) {
	fail := func(err error) error {
		return fmt.Errorf("version %d of secret %q in project %q does not decrypt "+
			"(the ciphertext was altered or moved from another secret or version, or the data key is wrong): %w",
			v, name, project, err)
	}
	if len(ct) < 1 || ct[0] != versionFormat1 {
		return nil, fail(fmt.Errorf("unknown ciphertext format: %w", ErrDecrypt))
	}
	pt, err := open(dk.aead, ct[1:], secretAAD(project, name, v, incarnation))
	if err != nil {
		return nil, fail(err)
	}
	defer clear(pt)
	data, err := sdk.DecodeData(pt)
	if err != nil {
		// The JSON error could quote plaintext: keep only that it failed.
		return nil, fmt.Errorf("version %d of secret %q in project %q: decrypted payload is not a JSON object of strings", v, name, project)
	}
	return data, nil
}

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

// Versions lists the stored versions, oldest first, from the metadata.
func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return nil, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []sdk.VersionMeta
	err = b.db.View(func(tx *bolt.Tx) error {
		_, _, rec, err := b.loadSecret(tx, ref.Project, ref.Name)
		if err != nil {
			return err
		}
		out = make([]sdk.VersionMeta, len(rec.Versions))
		for i, v := range rec.Versions {
			out[i] = sdk.VersionMeta{Version: v.Version, CreatedAt: v.CreatedAt}
		}
		return nil
	})
	return out, err
}

// List walks the project's secrets bucket in key (byte) order, from the
// prefix or just past the page token's name. Metadata only. The cursor seeks
// straight to the page, so List uses sdk's token codec rather than
// sdk.PageNames, which would need every name of the project.
func (b *Backend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := sdk.ValidateList(req); err != nil {
		return sdk.ListPage{}, err
	}
	after, err := sdk.DecodePageToken(req)
	if err != nil {
		return sdk.ListPage{}, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return sdk.ListPage{}, err
	}
	defer unlock()
	size := sdk.PageSize(req.PageSize)
	page := sdk.ListPage{Secrets: []sdk.Meta{}}
	err = b.db.View(func(tx *bolt.Tx) error {
		projects := tx.Bucket(bucketProjects)
		if projects == nil {
			return nil
		}
		pb := projects.Bucket([]byte(req.Project))
		if pb == nil {
			return nil
		}
		secrets := pb.Bucket(bucketSecrets)
		if secrets == nil {
			return nil
		}
		prefix := []byte(req.Prefix)
		c := secrets.Cursor()
		var k []byte
		if after != "" && after >= req.Prefix {
			k, _ = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, _ = c.Next()
			}
		} else {
			k, _ = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(page.Secrets) == size {
				page.NextPageToken = sdk.EncodePageToken(req, page.Secrets[size-1].Name)
				break
			}
			name := string(k)
			sb := secrets.Bucket(k)
			if sb == nil {
				return fmt.Errorf("project %q: entry %q is not a secret", req.Project, name)
			}
			rec, err := b.records.decode(req.Project, name, sb.Get(keyRecord))
			if err != nil {
				return err
			}
			page.Secrets = append(page.Secrets, rec.meta(req.Project, name))
		}
		return nil
	})
	if err != nil {
		return sdk.ListPage{}, err
	}
	return page, nil
}
