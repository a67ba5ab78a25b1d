// Command memplugin is an example secretgate backend plugin: it keeps secrets
// in memory, so everything is lost when the process exits. It is written to
// be copied: replace the maps with calls to your own store and keep the rules.
//
// The rules every backend follows (sdk/backendtest checks all of them):
//   - validate input with the sdk.Validate* helpers and return their errors;
//   - return the typed errors (sdk.NotFound, sdk.AlreadyExists,
//     sdk.VersionMismatch, ...), never a secret value inside an error;
//   - versions start at 1 and grow by one on every write; Delete removes
//     every version and frees the name at once;
//   - ExpectedVersion (and Delete's ref.Version) is check-and-set, done
//     atomically with the write: here the mutex makes it so;
//   - never hand out a map you keep: copy in, copy out;
//   - List is sorted by name and paged with sdk.PageNames (or its token
//     codec, sdk.EncodePageToken and sdk.DecodePageToken).
//
// Build it with `go build`, then register the binary in secretgate.yaml with
// its SHA-256 (`secretgate plugin sha256 ./memplugin`).
package main

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
)

func main() { plugin.Serve(newMemory()) }

// memory is the sdk.Backend. One mutex guards everything: the host calls a
// plugin from many goroutines at once.
type memory struct {
	mu       sync.Mutex
	projects map[string]map[string]*secret // project -> name -> secret
}

type secret struct {
	labels   map[string]string
	created  time.Time
	versions []version // versions[i] is version i+1; none is ever pruned
}

type version struct {
	data    map[string]string
	created time.Time
}

func newMemory() *memory { return &memory{projects: map[string]map[string]*secret{}} }

// Configure receives the `settings:` of the backend's entry in secretgate.yaml.
func (m *memory) Configure(_ context.Context, settings map[string]string) error {
	for k := range settings {
		return sdk.Invalid("settings."+k, "the memory backend takes no settings")
	}
	return nil
}

func (m *memory) Capabilities(context.Context) (sdk.Capabilities, error) {
	return sdk.Capabilities{Backend: "memory", Versions: true, MaxVersions: 0, CAS: true, Labels: true}, nil
}

func (m *memory) Ping(ctx context.Context) error { return ctx.Err() }

// meta builds the metadata of s as of version n (1-based).
func (s *secret) meta(project, name string, n int) sdk.Meta {
	v := s.versions[n-1]
	return sdk.Meta{Project: project, Name: name, Keys: sdk.SortedKeys(v.data), Version: int64(n),
		Labels: sdk.CloneData(s.labels), CreatedAt: s.created, UpdatedAt: v.created}
}

// lookup finds a secret; the caller holds m.mu.
func (m *memory) lookup(ref sdk.Ref) (*secret, error) {
	if s := m.projects[ref.Project][ref.Name]; s != nil {
		return s, nil
	}
	return nil, sdk.NotFound(ref.Project, ref.Name)
}

func (m *memory) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	ref.Version = 0 // Describe always answers for the latest version
	sec, err := m.Read(ctx, ref)
	return sec.Meta, err
}

func (m *memory) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
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

func (m *memory) Versions(_ context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
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

func (m *memory) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Check the context under the lock: a cancelled call must not write.
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
		s = &secret{created: now}
		if m.projects[req.Project] == nil {
			m.projects[req.Project] = map[string]*secret{}
		}
		m.projects[req.Project][req.Name] = s
	}
	if req.Labels != nil { // nil keeps the labels, an empty map clears them
		s.labels = sdk.CloneData(req.Labels)
	}
	s.versions = append(s.versions, version{data: sdk.CloneData(req.Data), created: now})
	return s.meta(req.Project, req.Name, len(s.versions)), nil
}

func (m *memory) Delete(ctx context.Context, ref sdk.Ref) error {
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

// List pages through the names in byte order with sdk.PageNames, which
// also makes and checks the page tokens: opaque, bound to the project and
// prefix, ErrInvalid when replayed elsewhere or altered. A store that can
// seek in name order (a B-tree, a sorted index) would call
// sdk.DecodePageToken and sdk.EncodePageToken itself instead of building
// the whole slice of names.
func (m *memory) List(_ context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := sdk.ValidateList(req); err != nil {
		return sdk.ListPage{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
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
