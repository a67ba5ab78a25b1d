package postgres

// Writes: Write (a new version, sealed) and Delete.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

// maxCreateRounds bounds how often a write that found no secret can lose
// the creation to a concurrent writer and look again: once is the usual
// worst case (the other writer's row is then there to lock).
const maxCreateRounds = 3

// Write stores a new version in one transaction. The secret's row is
// locked (SELECT ... FOR UPDATE) before the mode and check-and-set checks,
// so concurrent writers of one secret, in this process or any other on the
// same database, queue on the row and each sees the version its
// predecessor committed: exactly one wins each version. A secret that does
// not exist yet has no row to lock; its creation is an INSERT ... ON
// CONFLICT DO NOTHING, and the loser of that race goes round again and
// finds the winner's row.
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

	var m sdk.Meta
	err = b.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		m, err = b.writeTx(ctx, tx, req, plain, keys)
		return err
	})
	if err != nil {
		return sdk.Meta{}, mapErr(ctx, "write", err)
	}
	return m, nil
}

func (b *Backend) writeTx(ctx context.Context, tx pgx.Tx, req sdk.WriteRequest, plain []byte, keys []string) (sdk.Meta, error) {
	q := b.q
	for range maxCreateRounds {
		var (
			cur         metaRow
			incarnation []byte
			dekRec      []byte
		)
		err := tx.QueryRow(ctx, q.lockSecret, req.Project, req.Name).Scan(&incarnation, &cur.version, &cur.labels, &cur.createdAt, &dekRec)
		exists := err == nil
		if err != nil && !errNoRows(err) {
			return sdk.Meta{}, err
		}
		switch {
		case exists && req.Mode == sdk.WriteCreate:
			return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
		case !exists && (req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0):
			return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
		case exists && req.ExpectedVersion > 0 && cur.version != req.ExpectedVersion:
			return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, cur.version)
		}
		// timestamptz keeps microseconds: truncate first, so that what
		// Write answers is what a later read returns.
		now := time.Now().UTC().Truncate(time.Microsecond)
		if !exists {
			m, created, err := b.create(ctx, tx, req, plain, keys, now)
			if err != nil || created {
				return m, err
			}
			if req.Mode == sdk.WriteCreate {
				return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
			}
			continue // created meanwhile by someone else: lock their row
		}

		dk, err := b.dataKeyOf(req.Project, dekRec)
		if err != nil {
			return sdk.Meta{}, err
		}
		v := cur.version + 1
		ct, err := domain.SealVersion(dk, req.Project, req.Name, v, incarnation, plain)
		if err != nil {
			return sdk.Meta{}, err
		}
		labels := cur.labels
		if req.Labels != nil {
			labels = sdk.CloneData(req.Labels)
		}
		// The three statements go in one round trip.
		batch := &pgx.Batch{}
		batch.Queue(q.insertVersion, req.Project, req.Name, v, now, ct)
		batch.Queue(q.updateSecret, req.Project, req.Name, v, keys, labelsParam(labels), now)
		if n := int64(b.maxVersions); n > 0 && v > n {
			batch.Queue(q.prune, req.Project, req.Name, v-n)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return sdk.Meta{}, err
		}
		r := metaRow{version: v, keys: keys, labels: labels, createdAt: cur.createdAt, updatedAt: now}
		return r.meta(req.Project, req.Name), nil
	}
	return sdk.Meta{}, fmt.Errorf("secret %q in project %q: created and deleted concurrently %d times in a row: %w",
		req.Name, req.Project, maxCreateRounds, sdk.ErrUnavailable)
}

// create inserts a new secret at version 1 (and its project's data key on
// the project's first write). created is false, and nothing was written,
// when a concurrent writer created the secret first.
func (b *Backend) create(ctx context.Context, tx pgx.Tx, req sdk.WriteRequest, plain []byte, keys []string, now time.Time) (sdk.Meta, bool, error) {
	dk, err := b.projectKey(ctx, tx, req.Project)
	if err != nil {
		return sdk.Meta{}, false, err
	}
	incarnation := make([]byte, envelope.IDSize)
	if _, err := rand.Read(incarnation); err != nil {
		return sdk.Meta{}, false, fmt.Errorf("reading a random incarnation id: %w", err)
	}
	labels := sdk.CloneData(req.Labels)
	tag, err := tx.Exec(ctx, b.q.insertSecret, req.Project, req.Name, incarnation, keys, labelsParam(labels), now)
	if err != nil {
		return sdk.Meta{}, false, err
	}
	if tag.RowsAffected() == 0 {
		return sdk.Meta{}, false, nil
	}
	ct, err := domain.SealVersion(dk, req.Project, req.Name, 1, incarnation, plain)
	if err != nil {
		return sdk.Meta{}, false, err
	}
	if _, err := tx.Exec(ctx, b.q.insertVersion, req.Project, req.Name, int64(1), now, ct); err != nil {
		return sdk.Meta{}, false, err
	}
	r := metaRow{version: 1, keys: keys, labels: labels, createdAt: now, updatedAt: now}
	return r.meta(req.Project, req.Name), true, nil
}

// projectKey returns the project's data key, creating it on the project's
// first write. Before wrapping a new data key it checks, holding the
// verifier row FOR SHARE, that this process's KEK is still the schema's: a
// replica that another one rotated away from must not wrap a data key that
// the others cannot open.
func (b *Backend) projectKey(ctx context.Context, tx pgx.Tx, project string) (*envelope.DataKey, error) {
	var rec []byte
	err := tx.QueryRow(ctx, b.q.selectDEK, project).Scan(&rec)
	if err == nil {
		return b.dataKeyOf(project, rec)
	}
	if !errNoRows(err) {
		return nil, err
	}
	var stored []byte
	if err := tx.QueryRow(ctx, b.q.shareVerifier).Scan(&stored); err != nil {
		return nil, fmt.Errorf("reading the key verifier: %w", err)
	}
	if !bytes.Equal(stored, b.verifier) {
		return nil, fmt.Errorf("the key-encryption key of schema %q was rotated by another process since this one started: "+
			"restart it with the new key settings: %w", b.schema, ErrKeyMismatch)
	}
	dk, wrapped, err := domain.NewDEK(b.kek, project)
	if err != nil {
		return nil, err
	}
	tag, err := tx.Exec(ctx, b.q.insertDEK, project, wrapped)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		// Another writer created the project's key first: use theirs.
		if err := tx.QueryRow(ctx, b.q.selectDEK, project).Scan(&rec); err != nil {
			return nil, err
		}
		return b.dataKeyOf(project, rec)
	}
	// Cached at once: should the transaction roll back, the id check of
	// dataKeyOf stops the cached key from being used for another.
	b.cacheDataKey(project, dk)
	return dk, nil
}

// labelsParam stores no labels as NULL rather than an empty object.
func labelsParam(labels map[string]string) any {
	if len(labels) == 0 {
		return nil
	}
	return labels
}

// Delete removes the secret with every version (the versions cascade) in
// one statement; with ref.Version > 0 only if that is the latest, checked
// by the DELETE itself, so atomically.
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	var deleted, current *int64
	err = retry(ctx, func() error {
		return b.pool.QueryRow(ctx, b.q.delete, ref.Project, ref.Name, ref.Version).Scan(&deleted, &current)
	})
	switch {
	case err != nil:
		return mapErr(ctx, "delete", err)
	case deleted != nil:
		return nil
	case current == nil:
		return sdk.NotFound(ref.Project, ref.Name)
	case *current == ref.Version:
		// The statement's snapshot still showed the version asked for, but
		// a concurrent write had moved past it by the time the row was
		// locked: the current version is not known here.
		return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, 0)
	}
	return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, *current)
}
