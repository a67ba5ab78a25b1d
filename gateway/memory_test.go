package gateway

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// memBackend is an in-memory sdk.Backend with atomic check-and-set, for
// handler tests that need no plugin process.
type memBackend struct {
	mu      sync.Mutex
	secrets map[string]*memSecret
	writes  int
	down    bool
	// listGate, when set, holds every List's page (read when it was
	// called) until it is closed; listErr, when set, fails every List.
	listErr  error
	listGate chan struct{}
}

type memSecret struct {
	meta     sdk.Meta
	versions []map[string]string
	times    []time.Time
}

func newMemBackend() *memBackend { return &memBackend{secrets: map[string]*memSecret{}} }

func key(p, n string) string { return p + "/" + n }

func (m *memBackend) Configure(context.Context, map[string]string) error { return nil }
func (m *memBackend) Capabilities(context.Context) (sdk.Capabilities, error) {
	return sdk.Capabilities{Backend: "mem", Versions: true, CAS: true, Labels: true}, nil
}
func (m *memBackend) Ping(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return sdk.ErrUnavailable
	}
	return nil
}

func (m *memBackend) List(_ context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	page, gate, err := m.list(req)
	if err != nil {
		return sdk.ListPage{}, err
	}
	if gate != nil {
		<-gate // the page is read; it is returned when the gate opens
	}
	return page, nil
}

func (m *memBackend) list(req sdk.ListRequest) (sdk.ListPage, chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listErr != nil {
		return sdk.ListPage{}, nil, m.listErr
	}
	var names []string
	for _, s := range m.secrets {
		if s.meta.Project == req.Project && strings.HasPrefix(s.meta.Name, req.Prefix) && s.meta.Name > req.PageToken {
			names = append(names, s.meta.Name)
		}
	}
	sort.Strings(names)
	size := sdk.PageSize(req.PageSize)
	var page sdk.ListPage
	for i, n := range names {
		if i == size {
			page.NextPageToken = names[i-1]
			break
		}
		page.Secrets = append(page.Secrets, m.secrets[key(req.Project, n)].meta)
	}
	return page, m.listGate, nil
}

func (m *memBackend) Describe(_ context.Context, ref sdk.Ref) (sdk.Meta, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.secrets[key(ref.Project, ref.Name)]
	if !ok {
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	return s.meta, nil
}

func (m *memBackend) Read(_ context.Context, ref sdk.Ref) (sdk.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.secrets[key(ref.Project, ref.Name)]
	if !ok {
		return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
	}
	v := ref.Version
	if v == 0 {
		v = s.meta.Version
	}
	if v > s.meta.Version {
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, v)
	}
	meta := s.meta
	meta.Version = v
	meta.Keys = sdk.SortedKeys(s.versions[v-1])
	return sdk.Secret{Meta: meta, Data: sdk.CloneData(s.versions[v-1])}, nil
}

func (m *memBackend) Write(_ context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, exists := m.secrets[key(req.Project, req.Name)]
	switch {
	case req.Mode == sdk.WriteCreate && exists:
		return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
	case req.Mode == sdk.WriteReplace && !exists:
		return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
	case req.ExpectedVersion > 0 && !exists:
		return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
	case req.ExpectedVersion > 0 && s.meta.Version != req.ExpectedVersion:
		return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, s.meta.Version)
	}
	now := time.Now().UTC()
	if !exists {
		s = &memSecret{meta: sdk.Meta{Project: req.Project, Name: req.Name, CreatedAt: now, Labels: map[string]string{}}}
		m.secrets[key(req.Project, req.Name)] = s
	}
	m.writes++
	s.versions = append(s.versions, sdk.CloneData(req.Data))
	s.times = append(s.times, now)
	s.meta.Version++
	s.meta.UpdatedAt = now
	s.meta.Keys = sdk.SortedKeys(req.Data)
	if req.Labels != nil {
		s.meta.Labels = sdk.CloneData(req.Labels)
	}
	return s.meta, nil
}

func (m *memBackend) Delete(_ context.Context, ref sdk.Ref) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.secrets[key(ref.Project, ref.Name)]
	if !ok {
		return sdk.NotFound(ref.Project, ref.Name)
	}
	if ref.Version > 0 && ref.Version != s.meta.Version {
		return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, s.meta.Version)
	}
	m.writes++
	delete(m.secrets, key(ref.Project, ref.Name))
	return nil
}

func (m *memBackend) Versions(_ context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.secrets[key(ref.Project, ref.Name)]
	if !ok {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	out := make([]sdk.VersionMeta, len(s.versions))
	for i := range s.versions {
		out[i] = sdk.VersionMeta{Version: int64(i + 1), CreatedAt: s.times[i]}
	}
	return out, nil
}

// memBackends serves named memBackends as the server's Backends.
type memBackends struct {
	mu sync.Mutex
	m  map[string]*memBackend
}

func (b *memBackends) Backend(name string) (sdk.Backend, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	be, ok := b.m[name]
	if !ok {
		return nil, sdk.ErrNotFound
	}
	if be.down {
		return nil, sdk.ErrUnavailable
	}
	return be, nil
}
func (b *memBackends) Suspect(string) {}
func (b *memBackends) Status() map[string]bool {
	out := map[string]bool{}
	for n, be := range b.m {
		out[n] = !be.down
	}
	return out
}
func (b *memBackends) PingAll(ctx context.Context) map[string]error {
	out := map[string]error{}
	for n, be := range b.m {
		if err := be.Ping(ctx); err != nil {
			out[n] = err
		}
	}
	return out
}

// fakeAuthz grants by token -> subject, and per subject+project a role
// (all actions of the role) with optional name prefixes.
type fakeAuthz struct {
	tokens map[string]string
	grants map[string]fakeGrant // subject/project
}

type fakeGrant struct {
	actions []string
	prefix  string
}

func (f fakeAuthz) Authenticate(token string) (string, time.Time, bool) {
	s, ok := f.tokens[token]
	return s, time.Time{}, ok
}
func (f fakeAuthz) HasAnyBinding(subject, project string) bool {
	_, ok := f.grants[subject+"/"+project]
	return ok
}
func (f fakeAuthz) Allowed(subject, project, action, secret string) bool {
	g, ok := f.grants[subject+"/"+project]
	if !ok || !strings.HasPrefix(secret, g.prefix) {
		return false
	}
	for _, a := range g.actions {
		if a == action {
			return true
		}
	}
	return false
}
func (f fakeAuthz) CanSee(subject, project, name string) bool {
	return f.Allowed(subject, project, ActionList, name)
}
func (f fakeAuthz) SeesAll(subject, project string) bool {
	g, ok := f.grants[subject+"/"+project]
	return ok && g.prefix == "" && f.Allowed(subject, project, ActionList, "")
}

// memAuditor records audit lines, and can be made to fail.
type memAuditor struct {
	mu      sync.Mutex
	recs    []AuditRecord
	failing bool
}

func (a *memAuditor) Write(r AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failing {
		return errAuditTest
	}
	a.recs = append(a.recs, r)
	return nil
}
func (a *memAuditor) Close() error { return nil }
func (a *memAuditor) records() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuditRecord(nil), a.recs...)
}
