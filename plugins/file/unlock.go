package file

// The key hierarchy at open: unlocking the data keys with the KEK, the
// first initialisation of a database, and rotating the KEK.

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
	bolt "go.etcd.io/bbolt"
)

// keyState is what the meta bucket says about the KEK.
type keyState struct {
	verifier []byte
	kdf      *envelope.KDFParams
}

func readKeyState(db *bolt.DB) (keyState, error) {
	var st keyState
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keyVerifier); v != nil {
			st.verifier = append([]byte(nil), v...)
		}
		if v := meta.Get(keyKDF); v != nil {
			st.kdf = new(envelope.KDFParams)
			if err := json.Unmarshal(v, st.kdf); err != nil {
				return fmt.Errorf("reading the stored key derivation parameters: %w", err)
			}
		}
		return nil
	})
	return st, err
}

// unlock returns the KEK for db: it initialises a new database, checks the
// key of an existing one, or rotates from the previous key.
func (b *Backend) unlock(db *bolt.DB, cfg *config) (cipher.AEAD, error) {
	st, err := readKeyState(db)
	if err != nil {
		return nil, err
	}
	if st.verifier == nil {
		if cfg.previous != nil {
			return nil, sdk.Invalid(cfg.previous.Setting, "database %s has no key yet, so there is nothing to rotate from", cfg.path)
		}
		return b.initialise(db, cfg)
	}

	cur, err := b.existingKey(cfg.current, st, cfg.previous != nil)
	if err != nil {
		return nil, err
	}
	if cur != nil && domain.CheckVerifier(cur, st.verifier) {
		if cfg.previous != nil {
			b.log.Info("key rotation already done: remove the previous key setting", "setting", cfg.previous.Setting, "path", cfg.path)
		}
		return cur, nil
	}
	if cfg.previous == nil {
		return nil, fmt.Errorf("%s: %w %s", cfg.current.Setting, ErrKeyMismatch, cfg.path)
	}
	prev, err := b.existingKey(*cfg.previous, st, false)
	if err != nil {
		return nil, err
	}
	if prev == nil || !domain.CheckVerifier(prev, st.verifier) {
		return nil, fmt.Errorf("neither %s nor %s: %w %s", cfg.current.Setting, cfg.previous.Setting, ErrKeyMismatch, cfg.path)
	}
	next, kdf, err := b.newKey(cfg.current)
	if err != nil {
		return nil, err
	}
	n, err := rotate(db, prev, next, kdf)
	if err != nil {
		return nil, err
	}
	b.log.Info("rotated the key-encryption key: re-wrapped every data key; remove the previous key setting",
		"data_keys", n, "from", cfg.previous.Setting, "to", cfg.current.Setting, "path", cfg.path)
	return next, nil
}

// initialise stores the verifier (and the KDF parameters) of a new database.
func (b *Backend) initialise(db *bolt.DB, cfg *config) (cipher.AEAD, error) {
	kek, kdf, err := b.newKey(cfg.current)
	if err != nil {
		return nil, err
	}
	verifier, err := domain.NewVerifier(kek)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketProjects); err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
		if err := putKDF(meta, kdf); err != nil {
			return err
		}
		return meta.Put(keyVerifier, verifier)
	})
	if err != nil {
		return nil, fmt.Errorf("initialising database %s: %w", cfg.path, err)
	}
	return kek, nil
}

// existingKey derives the key of src for a database that has a verifier
// (envelope.ExistingKey with the stored KDF parameters).
func (b *Backend) existingKey(src envelope.Source, st keyState, mayCreate bool) (cipher.AEAD, error) {
	return envelope.ExistingKey(src, st.kdf, mayCreate)
}

// newKey derives the key of src for sealing anew: a key file is created if
// missing (and that is logged, once), a passphrase gets a fresh salt.
func (b *Backend) newKey(src envelope.Source) (cipher.AEAD, *envelope.KDFParams, error) {
	kek, kdf, created, err := envelope.NewKey(src)
	if created {
		b.createdKey = src.Value
		b.log.Info("created new key file", "path", src.Value)
	}
	return kek, kdf, err
}

func putKDF(meta *bolt.Bucket, kdf *envelope.KDFParams) error {
	if kdf == nil {
		return meta.Delete(keyKDF)
	}
	enc, err := json.Marshal(kdf)
	if err != nil {
		return err
	}
	return meta.Put(keyKDF, enc)
}

// rotate re-wraps every data key from oldKEK to newKEK and replaces the
// verifier and KDF parameters, all in one transaction: a crash leaves
// either the old key or the new one in force, never a mix. Secret
// ciphertexts are not touched.
func rotate(db *bolt.DB, oldKEK, newKEK cipher.AEAD, kdf *envelope.KDFParams) (int, error) {
	verifier, err := domain.NewVerifier(newKEK)
	if err != nil {
		return 0, err
	}
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		projects := tx.Bucket(bucketProjects)
		if meta == nil || projects == nil {
			return errors.New("the database is not initialised")
		}
		if !domain.CheckVerifier(oldKEK, meta.Get(keyVerifier)) {
			return fmt.Errorf("the current key: %w", ErrKeyMismatch)
		}
		// Collect names first: writing into nested buckets while a cursor
		// walks their parent is not something to rely on.
		var names []string
		if err := projects.ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		}); err != nil {
			return err
		}
		sort.Strings(names)
		for _, p := range names {
			pb := projects.Bucket([]byte(p))
			rec := pb.Get(keyDEK)
			if rec == nil {
				continue
			}
			wrapped, err := domain.RewrapDEK(oldKEK, newKEK, p, rec)
			if err != nil {
				return err
			}
			if err := pb.Put(keyDEK, wrapped); err != nil {
				return err
			}
			n++
		}
		if err := putKDF(meta, kdf); err != nil {
			return err
		}
		return meta.Put(keyVerifier, verifier)
	})
	if err != nil {
		return 0, fmt.Errorf("rotating the key-encryption key: %w", err)
	}
	return n, nil
}

// RotateKEK re-wraps every data key under newKey (32 bytes), in one
// transaction, while the backend keeps serving: operations wait for the
// transaction, none fails. Secret ciphertexts are not rewritten. Afterwards
// only newKey opens the database (through key_file or key_env); a stored
// passphrase salt is dropped. The caller keeps newKey somewhere safe first.
func (b *Backend) RotateKEK(ctx context.Context, newKey []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next, err := envelope.NewAEAD(newKey)
	if err != nil {
		return sdk.Invalid("key", "must be 32 bytes (AES-256)")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		return errNotConfigured
	}
	n, err := rotate(b.db, b.kek, next, nil)
	if err != nil {
		return err
	}
	b.kek = next
	b.log.Info("rotated the key-encryption key: re-wrapped every data key", "data_keys", n, "path", b.path)
	return nil
}
