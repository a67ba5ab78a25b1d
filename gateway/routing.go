package gateway

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
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

	// writes counts the writes in flight per project, so that pausing a
	// project can wait for the writes that passed the check before it
	// (a migration lists the source only after they landed). wmu orders
	// BeginWrite against SetReadOnly; it is taken before mu.
	wmu    sync.Mutex
	writes map[string]int
}

// NewRouting builds a routing table from project -> backend.
func NewRouting(projects map[string]string) *Routing {
	m := make(map[string]Route, len(projects))
	for p, b := range projects {
		m[p] = Route{Project: p, Backend: b}
	}
	r := &Routing{writes: map[string]int{}}
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
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]Route, len(routes))
	for k, v := range routes {
		m[k] = v
	}
	r.snap.Store(&m)
}

// SetReadOnly blocks (or unblocks) writes to a project. Writes already
// admitted go on: WaitWrites waits for them.
func (r *Routing) SetReadOnly(project string, readOnly bool) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.update(project, func(rt *Route) error { rt.ReadOnly = readOnly; return nil })
}

// BeginWrite admits a write to project unless it is read-only; done must
// be called when the write has finished (landed or failed).
func (r *Routing) BeginWrite(project string) (done func(), ok bool) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if rt, found := r.Lookup(project); found && rt.ReadOnly {
		return nil, false
	}
	r.writes[project]++
	var once sync.Once
	return func() {
		once.Do(func() {
			r.wmu.Lock()
			defer r.wmu.Unlock()
			if r.writes[project]--; r.writes[project] <= 0 {
				delete(r.writes, project)
			}
		})
	}, true
}

// writeDrainPoll is how often WaitWrites looks again: pauses are rare and
// the writes they wait for take milliseconds.
const writeDrainPoll = 2 * time.Millisecond

// WaitWrites waits until no admitted write to any of projects is in flight.
func (r *Routing) WaitWrites(ctx context.Context, projects []string) error {
	for {
		r.wmu.Lock()
		busy := 0
		for _, p := range projects {
			busy += r.writes[p]
		}
		r.wmu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d writes still in flight: %w", busy, ctx.Err())
		case <-time.After(writeDrainPoll):
		}
	}
}
