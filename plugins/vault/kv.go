package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretgate/secretgate/sdk"
)

// kvVersion is one version as KV v2's data endpoint returns it.
type kvVersion struct {
	version int64
	created time.Time
	deleted bool // soft-deleted (`vault kv delete`) or destroyed: no data
	data    map[string]string
	labels  map[string]string
}

// kvMeta is a secret's metadata endpoint.
type kvMeta struct {
	current     int64
	created     time.Time // creation of version 1, or of the metadata when version 1 is gone
	maxVersions int
	labels      map[string]string
	live        []sdk.VersionMeta // versions whose data is still readable, oldest first
}

// readData reads one version (0 = latest). It returns nil when Vault has no
// such version (or no such secret).
func (b *Backend) readData(ctx context.Context, project, name string, version int64) (*kvVersion, error) {
	path := b.cfg.dataPath(project, name)
	var params map[string][]string
	if version > 0 {
		params = map[string][]string{"version": {strconv.FormatInt(version, 10)}}
	}
	sec, err := b.call(ctx, request{capability: capRead, path: path, idempotent: true}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().ReadWithDataWithContext(ctx, path, params)
	})
	if err != nil || sec == nil || sec.Data == nil {
		return nil, err
	}
	md, _ := sec.Data["metadata"].(map[string]any)
	if md == nil {
		return nil, fmt.Errorf("vault: read %s: the answer has no metadata: is %q a KV version 2 mount?", path, b.cfg.mount)
	}
	v := &kvVersion{labels: decodeLabels(md["custom_metadata"])}
	if v.version, err = toInt(md["version"]); err != nil {
		return nil, fmt.Errorf("vault: read %s: metadata.version: %w", path, err)
	}
	if v.created, err = toTime(md["created_time"]); err != nil {
		return nil, fmt.Errorf("vault: read %s: metadata.created_time: %w", path, err)
	}
	raw, _ := sec.Data["data"].(map[string]any)
	if raw == nil {
		destroyed, _ := md["destroyed"].(bool)
		if destroyed || isDeleted(md["deletion_time"]) {
			v.deleted = true
			return v, nil
		}
	}
	v.data = make(map[string]string, len(raw))
	for k, val := range raw {
		v.data[k] = stringValue(val)
	}
	return v, nil
}

// stringValue turns a KV value into a string. secretgate only writes
// strings; values written to Vault by other tools as numbers, booleans or
// objects read as their JSON text.
func stringValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case json.Number:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// readMeta reads a secret's metadata. It returns nil when the secret does
// not exist: no metadata, or metadata without any version yet (`vault kv
// metadata put` alone).
func (b *Backend) readMeta(ctx context.Context, project, name string) (*kvMeta, error) {
	path := b.cfg.metadataPath(project, name)
	sec, err := b.call(ctx, request{capability: capRead, path: path, idempotent: true}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().ReadWithContext(ctx, path)
	})
	if err != nil || sec == nil || sec.Data == nil {
		return nil, err
	}
	d := sec.Data
	m := &kvMeta{labels: decodeLabels(d["custom_metadata"])}
	if m.current, err = toInt(d["current_version"]); err != nil {
		return nil, fmt.Errorf("vault: read %s: current_version: %w", path, err)
	}
	if m.current == 0 {
		return nil, nil
	}
	if mv, err := toInt(d["max_versions"]); err == nil {
		m.maxVersions = int(mv)
	}
	if m.created, err = toTime(d["created_time"]); err != nil {
		return nil, fmt.Errorf("vault: read %s: created_time: %w", path, err)
	}
	versions, _ := d["versions"].(map[string]any)
	for k, raw := range versions {
		n, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			continue
		}
		vm, _ := raw.(map[string]any)
		created, err := toTime(vm["created_time"])
		if err != nil {
			return nil, fmt.Errorf("vault: read %s: versions.%s.created_time: %w", path, k, err)
		}
		if n == 1 {
			m.created = created
		}
		destroyed, _ := vm["destroyed"].(bool)
		if destroyed || isDeleted(vm["deletion_time"]) {
			continue
		}
		m.live = append(m.live, sdk.VersionMeta{Version: n, CreatedAt: created})
	}
	sort.Slice(m.live, func(i, j int) bool { return m.live[i].Version < m.live[j].Version })
	return m, nil
}

// writeData writes a new version with check-and-set: cas 0 means "only if
// the secret does not exist". A mismatch is errCASMismatch.
func (b *Backend) writeData(ctx context.Context, project, name string, data map[string]string, cas int64, capability string) (version int64, created time.Time, labels map[string]string, err error) {
	path := b.cfg.dataPath(project, name)
	body := map[string]any{
		"data":    data,
		"options": map[string]any{"cas": cas},
	}
	sec, err := b.call(ctx, request{capability: capability, path: path}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().WriteWithContext(ctx, path, body)
	})
	if err != nil {
		return 0, time.Time{}, nil, err
	}
	if sec == nil || sec.Data == nil {
		return 0, time.Time{}, nil, fmt.Errorf("vault: write %s: empty answer: is %q a KV version 2 mount?", path, b.cfg.mount)
	}
	if version, err = toInt(sec.Data["version"]); err != nil {
		return 0, time.Time{}, nil, fmt.Errorf("vault: write %s: version: %w", path, err)
	}
	if created, err = toTime(sec.Data["created_time"]); err != nil {
		return 0, time.Time{}, nil, fmt.Errorf("vault: write %s: created_time: %w", path, err)
	}
	return version, created, decodeLabels(sec.Data["custom_metadata"]), nil
}

// writeMeta sets the fields of body on the secret's metadata; fields left
// out keep their value.
func (b *Backend) writeMeta(ctx context.Context, project, name string, body map[string]any) error {
	path := b.cfg.metadataPath(project, name)
	_, err := b.call(ctx, request{capability: capUpdate, path: path, idempotent: true}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().WriteWithContext(ctx, path, body)
	})
	return err
}

func (b *Backend) deleteMeta(ctx context.Context, project, name string) error {
	path := b.cfg.metadataPath(project, name)
	_, err := b.call(ctx, request{capability: capDelete, path: path, idempotent: true}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().DeleteWithContext(ctx, path)
	})
	return err
}

// listNames lists the secret names of a project, unsorted. Sub-folders and
// entries that are not valid secretgate names (written to Vault by hand)
// are left out.
func (b *Backend) listNames(ctx context.Context, project string) ([]string, error) {
	path := b.cfg.listPath(project)
	sec, err := b.call(ctx, request{capability: capList, path: path, idempotent: true}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().ListWithContext(ctx, path)
	})
	if err != nil || sec == nil || sec.Data == nil {
		return nil, err
	}
	keys, _ := sec.Data["keys"].([]any)
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		s, ok := k.(string)
		if !ok || sdk.ValidateName(s) != nil {
			continue
		}
		names = append(names, s)
	}
	return names, nil
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Int64()
	case float64:
		return int64(x), nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	}
	return 0, fmt.Errorf("not a number (%T)", v)
}

func toTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return time.Time{}, fmt.Errorf("missing")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// isDeleted tells whether a deletion_time has passed: KV v2 also sets a
// future deletion_time for delete_version_after, and such versions still
// read.
func isDeleted(v any) bool {
	t, err := toTime(v)
	return err == nil && !t.After(time.Now())
}
