package vault

// Writes: Write (KV v2 check-and-set) and Delete.

import (
	"context"
	"errors"
	"fmt"

	"github.com/secretgate/secretgate/sdk"
)

// Write stores a new version. It reads the metadata first (existence, the
// current version), then writes with KV v2's check-and-set, so that a
// concurrent writer can never be overwritten unseen: cas=0 for a creation,
// cas=ExpectedVersion when given, else cas=<current version just read> and
// a fresh start when someone wrote in between. Labels and max_versions go to
// the metadata in a second request, after the data.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.configured(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	p, n := req.Project, req.Name
	for try := 0; try < maxWriteTries; try++ {
		km, err := b.readMeta(ctx, p, n)
		if err != nil {
			return sdk.Meta{}, err
		}
		exists := km != nil
		switch {
		case req.Mode == sdk.WriteCreate && exists:
			return sdk.Meta{}, sdk.AlreadyExists(p, n)
		case req.Mode == sdk.WriteReplace && !exists:
			return sdk.Meta{}, sdk.NotFound(p, n)
		case req.ExpectedVersion > 0 && !exists:
			return sdk.Meta{}, sdk.NotFound(p, n)
		case req.ExpectedVersion > 0 && km.current != req.ExpectedVersion:
			return sdk.Meta{}, sdk.VersionMismatch(p, n, req.ExpectedVersion, km.current)
		}
		cas, capability := int64(0), capCreate
		if exists {
			cas, capability = km.current, capUpdate
		}
		version, created, labels, err := b.writeData(ctx, p, n, req.Data, cas, capability)
		if errors.Is(err, errCASMismatch) {
			switch {
			case req.Mode == sdk.WriteCreate:
				return sdk.Meta{}, sdk.AlreadyExists(p, n)
			case req.ExpectedVersion > 0:
				return sdk.Meta{}, sdk.VersionMismatch(p, n, req.ExpectedVersion, 0)
			}
			continue // another writer got in between: read again
		}
		if err != nil {
			return sdk.Meta{}, err
		}

		metaBody := map[string]any{}
		if req.Labels != nil {
			metaBody["custom_metadata"] = encodeLabels(req.Labels)
			labels = sdk.CloneData(req.Labels)
		}
		if b.cfg.maxVersions > 0 && (km == nil || km.maxVersions != b.cfg.maxVersions) {
			metaBody["max_versions"] = b.cfg.maxVersions
		}
		if len(metaBody) > 0 {
			if err := b.writeMeta(ctx, p, n, metaBody); err != nil {
				return sdk.Meta{}, fmt.Errorf("vault: version %d of %q in project %q is written but its labels or max_versions are not: %w", version, n, p, err)
			}
		}
		m := sdk.Meta{
			Project: p, Name: n, Keys: sdk.SortedKeys(req.Data), Version: version,
			Labels: labels, CreatedAt: created, UpdatedAt: created,
		}
		if version > 1 && km != nil {
			m.CreatedAt = km.created
			b.created.put(p, n, createdEntry{version: version, versionCreated: created, createdAt: km.created})
		}
		return m, nil
	}
	return sdk.Meta{}, fmt.Errorf("vault: secret %q in project %q: %d writers in a row got in first; try again: %w", n, p, maxWriteTries, sdk.ErrUnavailable)
}

// Delete removes the metadata path: every version goes and the name is free
// again. KV v2 has no conditional delete, so with ref.Version > 0 the
// version is checked just before the delete; a write landing in between is
// deleted with the rest.
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.configured(); err != nil {
		return err
	}
	if err := validateRefName(ref); err != nil {
		return err
	}
	km, err := b.readMeta(ctx, ref.Project, ref.Name)
	if err != nil {
		return err
	}
	if km == nil {
		return sdk.NotFound(ref.Project, ref.Name)
	}
	if ref.Version > 0 && km.current != ref.Version {
		return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, km.current)
	}
	b.created.forget(ref.Project, ref.Name)
	return b.deleteMeta(ctx, ref.Project, ref.Name)
}
