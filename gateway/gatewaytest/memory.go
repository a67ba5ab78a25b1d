package gatewaytest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// Memory is an in-memory sdk.Backend that passes sdk/backendtest: versions
// from 1 with none pruned, atomic check-and-set on Write and Delete (one
// mutex), labels, and name-ordered paging with sdk.PageNames. Maps are
// copied in and out, so no caller shares one with the store.
//
// SetUnavailable makes every call answer sdk.ErrUnavailable, the way a
// plugin whose service is down does.
type Memory struct {
	mu       sync.Mutex
	projects map[string]map[string]*memSecret // project -> name -> secret
	down     bool
}

type memSecret struct {
	labels   map[string]string
	created  time.Time
	versions []memVersion // versions[i] is version i+1
}

type memVersion struct {
	data    map[string]string
	created time.Time
}

// NewMemory returns an empty store.
func NewMemory() *Memory { return &Memory{projects: map[string]map[string]*memSecret{}} }

// SetUnavailable makes every call fail with sdk.ErrUnavailable while down
// is true. Stored secrets are kept.
func (m *Memory) SetUnavailable(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// Value returns a key of the latest version of a secret, ignoring
// SetUnavailable: tests assert on what was stored.
func (m *Memory) Value(project, name, key string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.projects[project][name]
	if s == nil {
		return "", false
	}
	v, ok := s.versions[len(s.versions)-1].data[key]
	return v, ok
}

// available is called with m.mu held.
func (m *Memory) available() error {
	if m.down {
		// No project or name in the message: the gateway writes its own.
		return fmt.Errorf("memory backend is down: %w", sdk.ErrUnavailable)
	}
	return nil
}

// Configure takes no settings.
func (m *Memory) Configure(_ context.Context, settings map[string]string) error {
	for k := range settings {
		return sdk.Invalid("settings."+k, "the memory backend takes no settings")
	}
	return nil
}

// Capabilities implements sdk.Backend.
func (m *Memory) Capabilities(context.Context) (sdk.Capabilities, error) {
	return sdk.Capabilities{Backend: "memory", Versions: true, CAS: true, Labels: true}, nil
}

// Ping implements sdk.Backend.
func (m *Memory) Ping(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.available(); err != nil {
		return err
	}
	return ctx.Err()
}

// meta builds the metadata of s as of version n (1-based).
func (s *memSecret) meta(project, name string, n int) sdk.Meta {
	v := s.versions[n-1]
	return sdk.Meta{Project: project, Name: name, Keys: sdk.SortedKeys(v.data), Version: int64(n),
		Labels: sdk.CloneData(s.labels), CreatedAt: s.created, UpdatedAt: v.created}
}

// lookup finds a live secret; the caller holds m.mu.
func (m *Memory) lookup(ref sdk.Ref) (*memSecret, error) {
	if err := m.available(); err != nil {
		return nil, err
	}
	if s := m.projects[ref.Project][ref.Name]; s != nil {
		return s, nil
	}
	return nil, sdk.NotFound(ref.Project, ref.Name)
}

// Describe implements sdk.Backend.
func (m *Memory) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	ref.Version = 0 // Describe always answers for the latest version
	sec, err := m.Read(ctx, ref)
	return sec.Meta, err
}

// Read implements sdk.Backend.
func (m *Memory) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ref)
	if err != nil {
		return sdk.Secret{}, err
	}
	n := int(ref.Version)
	if n == 0 {
		n = len(s.versions)
	} else if n > len(s.versions) {
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, ref.Version)
	}
	return sdk.Secret{Meta: s.meta(ref.Project, ref.Name, n), Data: sdk.CloneData(s.versions[n-1].data)}, ctx.Err()
}

// Versions implements sdk.Backend.
func (m *Memory) Versions(_ context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := sdk.ValidateRef(ref); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ref)
	if err != nil {
		return nil, err
	}
	out := make([]sdk.VersionMeta, len(s.versions))
	for i, v := range s.versions {
		out[i] = sdk.VersionMeta{Version: int64(i + 1), CreatedAt: v.created}
	}
	return out, nil
}

// Write implements sdk.Backend; the check of Mode and ExpectedVersion and
// the write happen under one lock, so check-and-set is atomic.
func (m *Memory) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.available(); err != nil {
		return sdk.Meta{}, err
	}
	// Checked under the lock: a cancelled call must not write.
	if err := ctx.Err(); err != nil {
		return sdk.Meta{}, err
	}
	s := m.projects[req.Project][req.Name]
	switch {
	case s == nil && (req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0):
		return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
	case s != nil && req.Mode == sdk.WriteCreate:
		return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
	case s != nil && req.ExpectedVersion > 0 && req.ExpectedVersion != int64(len(s.versions)):
		return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, int64(len(s.versions)))
	}
	now := time.Now().UTC()
	if s == nil {
		s = &memSecret{created: now}
		if m.projects[req.Project] == nil {
			m.projects[req.Project] = map[string]*memSecret{}
		}
		m.projects[req.Project][req.Name] = s
	}
	if req.Labels != nil { // nil keeps the labels, an empty map clears them
		s.labels = sdk.CloneData(req.Labels)
	}
	s.versions = append(s.versions, memVersion{data: sdk.CloneData(req.Data), created: now})
	return s.meta(req.Project, req.Name, len(s.versions)), nil
}

// Delete implements sdk.Backend; ref.Version > 0 is checked under the same
// lock as the delete.
func (m *Memory) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.lookup(ref)
	if err != nil {
		return err
	}
	if ref.Version > 0 && ref.Version != int64(len(s.versions)) {
		return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, int64(len(s.versions)))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	delete(m.projects[ref.Project], ref.Name)
	return nil
}

// List implements sdk.Backend: names in byte order, paged by sdk.PageNames,
// whose tokens are bound to the project and prefix.
func (m *Memory) List(_ context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := sdk.ValidateList(req); err != nil {
		return sdk.ListPage{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.available(); err != nil {
		return sdk.ListPage{}, err
	}
	var names []string
	for name := range m.projects[req.Project] {
		if strings.HasPrefix(name, req.Prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	names, next, err := sdk.PageNames(names, req)
	if err != nil {
		return sdk.ListPage{}, err
	}
	page := sdk.ListPage{NextPageToken: next}
	for _, name := range names {
		s := m.projects[req.Project][name]
		page.Secrets = append(page.Secrets, s.meta(req.Project, name, len(s.versions)))
	}
	return page, nil
}
