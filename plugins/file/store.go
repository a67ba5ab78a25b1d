package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

// The storage layout; see the package doc.
var (
	bucketMeta     = []byte("meta")
	bucketProjects = []byte("projects")
	bucketSecrets  = []byte("secrets")
	bucketReceipts = []byte("receipts") // audit receipts, receipts.go
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
func (b *Backend) dataKeyOf(pb *bolt.Bucket, project string) (*envelope.DataKey, error) {
	rec := pb.Get(keyDEK)
	if rec == nil {
		return nil, fmt.Errorf("project %q has secrets but no data key", project)
	}
	b.deksMu.Lock()
	dk := b.deks[project]
	b.deksMu.Unlock()
	if dk != nil && len(rec) >= envelope.IDSize && bytes.Equal(dk.ID, rec[:envelope.IDSize]) {
		return dk, nil
	}
	dk, err := domain.UnwrapDEK(b.kek, project, rec)
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
