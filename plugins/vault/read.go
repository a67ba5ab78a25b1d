package vault

// Reads: Describe, Read and Versions (List is list.go).

import (
	"context"

	"github.com/secretgate/secretgate/sdk"
)

// Describe reads the latest version for its keys, and the metadata for the
// creation time unless the latest version is version 1.
func (b *Backend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := b.configured(); err != nil {
		return sdk.Meta{}, err
	}
	if err := validateRefName(ref); err != nil {
		return sdk.Meta{}, err
	}
	v, err := b.readData(ctx, ref.Project, ref.Name, 0)
	if err != nil {
		return sdk.Meta{}, err
	}
	if v == nil {
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	return b.metaOf(ctx, ref, v)
}

// metaOf builds the Meta of a version read from the data endpoint.
func (b *Backend) metaOf(ctx context.Context, ref sdk.Ref, v *kvVersion) (sdk.Meta, error) {
	m := sdk.Meta{
		Project:   ref.Project,
		Name:      ref.Name,
		Keys:      sdk.SortedKeys(v.data),
		Version:   v.version,
		Labels:    v.labels,
		UpdatedAt: v.created,
	}
	if v.version == 1 {
		m.CreatedAt = v.created
		return m, nil
	}
	if created, ok := b.created.get(ref.Project, ref.Name, v.version, v.created); ok {
		m.CreatedAt = created
		return m, nil
	}
	km, err := b.readMeta(ctx, ref.Project, ref.Name)
	if err != nil {
		return sdk.Meta{}, err
	}
	if km == nil { // deleted since the data read
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	m.CreatedAt = km.created
	if km.current == v.version {
		b.created.put(ref.Project, ref.Name, createdEntry{version: v.version, versionCreated: v.created, createdAt: km.created})
	}
	return m, nil
}

// Read reads one version. A version deleted in Vault but not destroyed
// (`vault kv delete`) reads as not found, like a pruned one.
func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := b.configured(); err != nil {
		return sdk.Secret{}, err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	v, err := b.readData(ctx, ref.Project, ref.Name, ref.Version)
	if err != nil {
		return sdk.Secret{}, err
	}
	if v == nil {
		if ref.Version == 0 {
			return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
		}
		km, err := b.readMeta(ctx, ref.Project, ref.Name)
		if err != nil {
			return sdk.Secret{}, err
		}
		if km == nil {
			return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
		}
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, ref.Version)
	}
	if v.deleted {
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, v.version)
	}
	m, err := b.metaOf(ctx, ref, v)
	if err != nil {
		return sdk.Secret{}, err
	}
	return sdk.Secret{Meta: m, Data: v.data}, nil
}

// Versions lists the versions whose data can still be read, oldest first:
// not pruned by max_versions, not deleted or destroyed in Vault.
func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.configured(); err != nil {
		return nil, err
	}
	if err := validateRefName(ref); err != nil {
		return nil, err
	}
	km, err := b.readMeta(ctx, ref.Project, ref.Name)
	if err != nil {
		return nil, err
	}
	if km == nil {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	if km.live == nil {
		return []sdk.VersionMeta{}, nil
	}
	return km.live, nil
}
