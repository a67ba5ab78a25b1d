package file

// Reads: Describe, Read, Versions and List.

import (
	"bytes"
	"context"
	"fmt"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
	bolt "go.etcd.io/bbolt"
)

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

func decryptVersion(dk *envelope.DataKey, project, name string, v int64, incarnation, ct []byte) (map[string]string, error) {
	pt, err := domain.OpenVersion(dk, project, name, v, incarnation, ct)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	data, err := sdk.DecodeData(pt)
	if err != nil {
		// The JSON error could quote plaintext: keep only that it failed.
		return nil, fmt.Errorf("version %d of secret %q in project %q: decrypted payload is not a JSON object of strings", v, name, project)
	}
	return data, nil
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
		if p, ok := b.records.pages.get(tx, req); ok {
			page = p
			return nil
		}
		// Sized for a full page up front (growing it by appends was a
		// tenth of the plugin's CPU under a LIST load), within reason for
		// a project that turns out to hold a handful of names.
		page.Secrets = make([]sdk.Meta, 0, min(size, 256))
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
			m, err := b.records.meta(req.Project, name, sb.Get(keyRecord))
			if err != nil {
				return err
			}
			page.Secrets = append(page.Secrets, m)
		}
		b.records.pages.put(tx, req, page)
		return nil
	})
	if err != nil {
		return sdk.ListPage{}, err
	}
	return page, nil
}
