package postgres

// The key hierarchy at Configure: the first initialisation of a schema,
// checking the key of an existing one, and rotating the KEK. All of it runs
// in Configure's transaction, under the advisory lock, with the verifier
// row locked: two replicas starting at once with the same rotation settings
// rotate once, and no writer can wrap a new project's data key with a KEK
// that is being replaced (write.go takes the verifier row FOR SHARE).

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

// keyState is what the meta table says about the KEK.
type keyState struct {
	verifier []byte
	kdf      *envelope.KDFParams
}

// unlocked is the outcome of unlock.
type unlocked struct {
	kek        cipher.AEAD
	verifier   []byte
	createdKey string // a key file made now
	rotated    int    // data keys re-wrapped, -1 when not rotating
	doneBefore bool   // previous_* set, but the rotation was done already
}

func readKeyState(ctx context.Context, tx pgx.Tx, q *queries) (keyState, error) {
	var st keyState
	rows, err := tx.Query(ctx, q.keyState)
	if err != nil {
		return st, fmt.Errorf("reading the key state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var value []byte
		if err := rows.Scan(&key, &value); err != nil {
			return st, fmt.Errorf("reading the key state: %w", err)
		}
		switch key {
		case metaVerifier:
			st.verifier = value
		case metaKDF:
			st.kdf = new(envelope.KDFParams)
			if err := json.Unmarshal(value, st.kdf); err != nil {
				return st, fmt.Errorf("reading the stored key derivation parameters: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("reading the key state: %w", err)
	}
	return st, nil
}

// unlock returns the KEK for the schema: it initialises a new schema,
// checks the key of an existing one, or rotates from the previous key.
func unlock(ctx context.Context, tx pgx.Tx, q *queries, cfg *config) (*unlocked, error) {
	st, err := readKeyState(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	keys := cfg.keys
	out := &unlocked{rotated: -1}
	if st.verifier == nil {
		if keys.Previous != nil {
			return nil, sdk.Invalid(keys.Previous.Setting, "schema %q has no key yet, so there is nothing to rotate from", cfg.schema)
		}
		kek, kdf, created, err := envelope.NewKey(keys.Current)
		if created {
			out.createdKey = keys.Current.Value
		}
		if err != nil {
			return nil, err
		}
		if out.verifier, err = domain.NewVerifier(kek); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, q.insertMeta, metaVerifier, out.verifier); err != nil {
			return nil, fmt.Errorf("storing the key verifier: %w", err)
		}
		if err := putKDF(ctx, tx, q, kdf); err != nil {
			return nil, err
		}
		out.kek = kek
		return out, nil
	}

	cur, err := envelope.ExistingKey(keys.Current, st.kdf, keys.Previous != nil)
	if err != nil {
		return nil, err
	}
	if cur != nil && domain.CheckVerifier(cur, st.verifier) {
		out.kek, out.verifier, out.doneBefore = cur, st.verifier, keys.Previous != nil
		return out, nil
	}
	if keys.Previous == nil {
		return nil, fmt.Errorf("%s: %w (schema %q)", keys.Current.Setting, envelope.ErrKeyMismatch, cfg.schema)
	}
	prev, err := envelope.ExistingKey(*keys.Previous, st.kdf, false)
	if err != nil {
		return nil, err
	}
	if prev == nil || !domain.CheckVerifier(prev, st.verifier) {
		return nil, fmt.Errorf("neither %s nor %s: %w (schema %q)", keys.Current.Setting, keys.Previous.Setting, envelope.ErrKeyMismatch, cfg.schema)
	}
	next, kdf, created, err := envelope.NewKey(keys.Current)
	if created {
		out.createdKey = keys.Current.Value
	}
	if err != nil {
		return nil, err
	}
	if out.verifier, err = domain.NewVerifier(next); err != nil {
		return nil, err
	}
	if out.rotated, err = rotate(ctx, tx, q, prev, next); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, q.upsertMeta, metaVerifier, out.verifier); err != nil {
		return nil, fmt.Errorf("storing the new key verifier: %w", err)
	}
	if err := putKDF(ctx, tx, q, kdf); err != nil {
		return nil, err
	}
	out.kek = next
	return out, nil
}

// rotate re-wraps every project's data key from oldKEK to newKEK. Secret
// ciphertexts are not touched: a data key keeps its id and its bytes.
func rotate(ctx context.Context, tx pgx.Tx, q *queries, oldKEK, newKEK cipher.AEAD) (int, error) {
	rows, err := tx.Query(ctx, q.allDEKs)
	if err != nil {
		return 0, fmt.Errorf("rotating the key-encryption key: %w", err)
	}
	type rec struct {
		project string
		dek     []byte
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
		var x rec
		err := r.Scan(&x.project, &x.dek)
		return x, err
	})
	if err != nil {
		return 0, fmt.Errorf("rotating the key-encryption key: %w", err)
	}
	batch := &pgx.Batch{}
	for _, r := range recs {
		wrapped, err := domain.RewrapDEK(oldKEK, newKEK, r.project, r.dek)
		if err != nil {
			return 0, fmt.Errorf("rotating the key-encryption key: %w", err)
		}
		batch.Queue(q.updateDEK, r.project, wrapped)
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return 0, fmt.Errorf("rotating the key-encryption key: %w", err)
		}
	}
	return len(recs), nil
}

func putKDF(ctx context.Context, tx pgx.Tx, q *queries, kdf *envelope.KDFParams) error {
	if kdf == nil {
		if _, err := tx.Exec(ctx, q.deleteMeta, metaKDF); err != nil {
			return fmt.Errorf("storing the key derivation parameters: %w", err)
		}
		return nil
	}
	enc, err := json.Marshal(kdf)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, q.upsertMeta, metaKDF, enc); err != nil {
		return fmt.Errorf("storing the key derivation parameters: %w", err)
	}
	return nil
}
