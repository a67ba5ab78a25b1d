package postgres

// Reads: Describe, Read, Versions and List. Each is one statement, so it
// sees one snapshot of the database without a transaction of its own.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secretgate/secretgate/sdk"
)

// metaRow is a secrets row as the reads scan it.
type metaRow struct {
	version              int64
	keys                 []string
	labels               map[string]string
	createdAt, updatedAt time.Time
}

func (r *metaRow) meta(project, name string) sdk.Meta {
	keys := r.keys
	if keys == nil {
		keys = []string{}
	}
	labels := r.labels
	if len(labels) == 0 {
		labels = nil
	}
	return sdk.Meta{
		Project:   project,
		Name:      name,
		Keys:      keys,
		Version:   r.version,
		Labels:    labels,
		CreatedAt: r.createdAt.UTC(),
		UpdatedAt: r.updatedAt.UTC(),
	}
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
	var r metaRow
	err = b.pool.QueryRow(ctx, b.q.describe, ref.Project, ref.Name).Scan(&r.version, &r.keys, &r.labels, &r.createdAt, &r.updatedAt)
	switch {
	case errNoRows(err):
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	case err != nil:
		return sdk.Meta{}, mapErr(ctx, "describe", err)
	}
	return r.meta(ref.Project, ref.Name), nil
}

// Read decrypts one version (the latest when ref.Version is 0): one
// statement joins the secret, its project's wrapped data key and the
// version's ciphertext. A version that was pruned, or never written, is
// ErrNotFound.
func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return sdk.Secret{}, err
	}
	defer unlock()
	var (
		r           metaRow
		incarnation []byte
		dekRec      []byte
		ct          []byte
	)
	err = b.pool.QueryRow(ctx, b.q.read, ref.Project, ref.Name, ref.Version).
		Scan(&incarnation, &r.version, &r.keys, &r.labels, &r.createdAt, &r.updatedAt, &dekRec, &ct)
	switch {
	case errNoRows(err):
		return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
	case err != nil:
		return sdk.Secret{}, mapErr(ctx, "read", err)
	}
	v := ref.Version
	if v == 0 {
		v = r.version
	}
	if ct == nil {
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, v)
	}
	dk, err := b.dataKeyOf(ref.Project, dekRec)
	if err != nil {
		return sdk.Secret{}, err
	}
	pt, err := domain.OpenVersion(dk, ref.Project, ref.Name, v, incarnation, ct)
	if err != nil {
		return sdk.Secret{}, err
	}
	defer clear(pt)
	data, err := sdk.DecodeData(pt)
	if err != nil {
		// The JSON error could quote plaintext: keep only that it failed.
		return sdk.Secret{}, fmt.Errorf("version %d of secret %q in project %q: decrypted payload is not a JSON object of strings", v, ref.Name, ref.Project)
	}
	sec := sdk.Secret{Meta: r.meta(ref.Project, ref.Name), Data: data}
	sec.Version = v
	sec.Keys = sdk.SortedKeys(data)
	return sec, nil
}

// Versions lists the stored versions, oldest first. A secret always has
// its latest version stored, so no rows means no secret.
func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return nil, err
	}
	unlock, err := b.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rows, err := b.pool.Query(ctx, b.q.versions, ref.Project, ref.Name)
	if err != nil {
		return nil, mapErr(ctx, "versions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sdk.VersionMeta, error) {
		var vm sdk.VersionMeta
		err := r.Scan(&vm.Version, &vm.CreatedAt)
		vm.CreatedAt = vm.CreatedAt.UTC()
		return vm, err
	})
	if err != nil {
		return nil, mapErr(ctx, "versions", err)
	}
	if len(out) == 0 {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	return out, nil
}

// nameCeiling is above every name: names are ASCII letters, digits, '_'
// and '-', all below it in byte order.
const nameCeiling = "\x7f"

// List reads one page in name order (byte order: the columns are COLLATE
// "C"), from the prefix or just past the page token's name. Metadata only.
// The statement seeks straight to the page through the primary key, so
// List uses sdk's token codec rather than sdk.PageNames, which would need
// every name of the project.
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
	ceiling := nameCeiling
	if p := req.Prefix; p != "" {
		// The first string past every name with the prefix: the prefix with
		// its last byte incremented (an ASCII byte, so no carry).
		ceiling = p[:len(p)-1] + string(p[len(p)-1]+1)
	}
	rows, err := b.pool.Query(ctx, b.q.list, req.Project, req.Prefix, after, ceiling, size+1)
	if err != nil {
		return sdk.ListPage{}, mapErr(ctx, "list", err)
	}
	page := sdk.ListPage{Secrets: make([]sdk.Meta, 0, min(size, 64))}
	var r metaRow
	var name string
	_, err = pgx.ForEachRow(rows, []any{&name, &r.version, &r.keys, &r.labels, &r.createdAt, &r.updatedAt}, func() error {
		if len(page.Secrets) == size {
			page.NextPageToken = sdk.EncodePageToken(req, page.Secrets[size-1].Name)
			return nil
		}
		page.Secrets = append(page.Secrets, r.meta(req.Project, name))
		r = metaRow{}
		return nil
	})
	if err != nil {
		return sdk.ListPage{}, mapErr(ctx, "list", err)
	}
	return page, nil
}
