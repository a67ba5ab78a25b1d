package gateway

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Route says where a project's secrets live.
type Route struct {
	Project string
	Backend string
	// ReadOnly is set while the project is being migrated: writes answer
	// 503 backend_unavailable until it is cleared.
	ReadOnly bool
}

// Routing maps projects to backend names. Lookups are lock-free reads of an
// immutable snapshot; changes (a migration rebinding a project) swap the
// whole snapshot atomically, so a request sees either the old or the new
// binding, never a mix.
type Routing struct {
	mu   sync.Mutex // serializes writers
	snap atomic.Pointer[map[string]Route]
}

// NewRouting builds a routing table from project -> backend.
func NewRouting(projects map[string]string) *Routing {
	m := make(map[string]Route, len(projects))
	for p, b := range projects {
		m[p] = Route{Project: p, Backend: b}
	}
	r := &Routing{}
	r.snap.Store(&m)
	return r
}

// Lookup returns the route of a project.
func (r *Routing) Lookup(project string) (Route, bool) {
	rt, ok := (*r.snap.Load())[project]
	return rt, ok
}

// Projects lists every routed project, sorted by name.
func (r *Routing) Projects() []Route {
	m := *r.snap.Load()
	out := make([]Route, 0, len(m))
	for _, rt := range m {
		out = append(out, rt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Project < out[j].Project })
	return out
}

func (r *Routing) update(project string, f func(rt *Route) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.snap.Load()
	rt, ok := old[project]
	if !ok {
		return fmt.Errorf("project %q is not configured", project)
	}
	if err := f(&rt); err != nil {
		return err
	}
	m := make(map[string]Route, len(old))
	for k, v := range old {
		m[k] = v
	}
	m[project] = rt
	r.snap.Store(&m)
	return nil
}

// SetBackend rebinds a project to another backend.
func (r *Routing) SetBackend(project, backend string) error {
	return r.update(project, func(rt *Route) error { rt.Backend = backend; return nil })
}

// replace swaps the whole table (a configuration reload).
func (r *Routing) replace(routes map[string]Route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]Route, len(routes))
	for k, v := range routes {
		m[k] = v
	}
	r.snap.Store(&m)
}

// SetReadOnly blocks (or unblocks) writes to a project.
func (r *Routing) SetReadOnly(project string, readOnly bool) error {
	return r.update(project, func(rt *Route) error { rt.ReadOnly = readOnly; return nil })
}
