package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// Migration tuning.
const (
	defaultMigrateWorkers = 8
	maxMigrateWorkers     = 64
	migrateAttempts       = 8
	migrateBackoff        = 100 * time.Millisecond
	migrateMaxSleep       = 5 * time.Second
	journalSaveEvery      = time.Second
)

type migration struct {
	mu  sync.Mutex
	rep api.MigrationReport
	// cancel stops the run (shutdown, or another replica took it over).
	cancel context.CancelFunc
	// ownedSince is when this replica became the migration's owner in the
	// shared state (zero without one, or before it is recorded there).
	ownedSince time.Time
	// shared is set when the migration is owned here in the shared state.
	shared *sharedRun
}

func (m *migration) snapshot() api.MigrationReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rep
	r.Projects = append([]string(nil), m.rep.Projects...)
	r.Errors = make(map[string]string, len(m.rep.Errors))
	for k, v := range m.rep.Errors {
		r.Errors[k] = v
	}
	return r
}

// running reports whether the migration is in progress, without copying
// the report (its errors map can be large): for listings and metrics.
func (m *migration) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rep.State == api.MigrationRunning
}

func (m *migration) update(f func(r *api.MigrationReport)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.rep)
}

// migrator runs migrations inside the gateway. Values travel source plugin
// -> gateway memory -> target plugin and are never stored elsewhere.
//
// Semantics (docs/migrations.md says the same to users):
//   - While a migration (not a dry run) copies, its projects are read-only:
//     writes answer 409 migration_in_progress, so no write can land in the
//     source after its listing and be lost by the switch. Reads go on.
//   - Each secret is compared by digest (sha256 of the canonical encodings
//     of data and labels, latest version). Identical in the target: skipped.
//     Different: on_conflict fail records an error, skip counts it skipped,
//     overwrite writes the source's versions on top of the target's history.
//   - versions "all" writes every stored source version, oldest first; into
//     an empty target the numbers match when the source kept all of them
//     from 1, otherwise the target numbers them 1..n in the same order.
//     Labels (per secret) are written with every version.
//   - Every written secret is read back from the target and compared.
//   - switch rebinds the projects after a run without failures and persists
//     the binding in the routing overlay; when the overlay cannot be saved
//     the switch is undone, so memory and disk never disagree.
//   - delete_source then deletes from the source each secret whose target
//     copy has the same digest, and nothing else.
//   - Calls answering ErrUnavailable are retried with exponential back-off.
//   - Reports are journalled; a migration cut short (crash, shutdown) is
//     resumed at the next start and completes by the digest skip.
type migrator struct {
	s      *Server
	ctx    context.Context // ends at Shutdown: running copies stop, resumable
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	all    map[string]*migration
	order  []string
	active map[string]string // project -> migration id

	stateMu sync.Mutex // one state-file write at a time, each from a fresh snapshot
}

func newMigrator(s *Server) *migrator {
	ctx, cancel := context.WithCancel(context.Background())
	return &migrator{s: s, ctx: ctx, cancel: cancel, all: map[string]*migration{}, active: map[string]string{}}
}

// stop cancels running migrations and waits (until ctx ends) for them to
// journal themselves as resumable.
func (mg *migrator) stop(ctx context.Context) {
	mg.cancel()
	done := make(chan struct{})
	go func() { mg.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// claim registers a migration and takes its projects: one migration per
// project at a time. It returns the busy project and its migration if any.
func (mg *migrator) claim(m *migration) (other, busy string) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	for _, p := range m.rep.Projects {
		if id, ok := mg.active[p]; ok {
			return id, p
		}
	}
	for _, p := range m.rep.Projects {
		mg.active[p] = m.rep.ID
	}
	mg.all[m.rep.ID] = m
	mg.order = append(mg.order, m.rep.ID)
	mg.pruneLocked()
	return "", ""
}

// pruneLocked forgets the oldest finished migrations beyond journalKeep,
// so a long-lived gateway's memory and journal stay bounded.
func (mg *migrator) pruneLocked() {
	finished := 0
	for _, id := range mg.order {
		if !mg.all[id].running() {
			finished++
		}
	}
	kept := mg.order[:0]
	for _, id := range mg.order {
		if finished > journalKeep && !mg.all[id].running() {
			finished--
			delete(mg.all, id)
			continue
		}
		kept = append(kept, id)
	}
	mg.order = kept
}

// forget drops a migration that never started.
func (mg *migrator) forget(id string) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	delete(mg.all, id)
	mg.order = slices.DeleteFunc(mg.order, func(x string) bool { return x == id })
}

// remember registers a finished migration read from the journal.
func (mg *migrator) remember(m *migration) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	mg.all[m.rep.ID] = m
	mg.order = append(mg.order, m.rep.ID)
}

// running counts the migrations in progress.
func (mg *migrator) running() int {
	mg.mu.Lock()
	ms := make([]*migration, 0, len(mg.order))
	for _, id := range mg.order {
		ms = append(ms, mg.all[id])
	}
	mg.mu.Unlock()
	n := 0
	for _, m := range ms {
		if m.running() {
			n++
		}
	}
	return n
}

func (mg *migrator) release(projects []string) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	for _, p := range projects {
		delete(mg.active, p)
	}
}

// pauseWrites turns the projects read-only while secrets are copied, so
// none is lost between the listing and the switch. A dry run writes
// nothing and pauses nothing; after the switch writes go to the target.
//
// Writes admitted before the pause are waited for, so that the copy lists
// the source only after they landed. With shared state the pause is made
// in the database instead, on every replica (startShared).
func (mg *migrator) pauseWrites(rep api.MigrationReport) {
	if rep.DryRun || rep.Switched {
		return
	}
	for _, p := range rep.Projects {
		if err := mg.s.routing.SetReadOnly(p, true); err != nil {
			mg.s.log.Error("migration: cannot pause writes", "migration", rep.ID, "project", p, "error", err)
		}
	}
	if err := mg.s.routing.WaitWrites(mg.ctx, rep.Projects); err != nil {
		mg.s.log.Warn("migration: stopped waiting for writes in flight", "migration", rep.ID, "error", err)
	}
}

func (mg *migrator) resumeWrites(m *migration, rep api.MigrationReport) {
	if rep.DryRun {
		return
	}
	if mg.s.shared != nil {
		m.mu.Lock()
		m.shared.paused = []string{}
		m.mu.Unlock()
		_ = mg.saveShared(m, nil)
		return
	}
	for _, p := range rep.Projects {
		_ = mg.s.routing.SetReadOnly(p, false)
	}
}

// start runs a migration in the background, journalling its progress.
func (mg *migrator) start(m *migration) {
	ctx, cancel := context.WithCancel(mg.ctx)
	m.mu.Lock()
	m.cancel = cancel
	m.mu.Unlock()
	mg.wg.Add(1)
	go func() {
		defer mg.wg.Done()
		defer cancel()
		stop := make(chan struct{})
		saved := make(chan struct{})
		go func() {
			defer close(saved)
			t := time.NewTicker(journalSaveEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					mg.saveJournal()
				}
			}
		}()
		mg.run(ctx, m)
		close(stop)
		<-saved
		mg.saveJournal()
		if mg.s.shared != nil {
			// Interrupted or not, this replica is done with it: another
			// one resumes it when its lease ends.
			mg.release(m.snapshot().Projects)
		}
	}()
}

// run copies every project, switches, deletes from the source when asked,
// and ends the migration. When the gateway shuts down meanwhile it returns
// early and the migration stays "running" in the journal, to be resumed.
func (mg *migrator) run(ctx context.Context, m *migration) {
	spec := m.snapshot()
	if !spec.Switched {
		m.update(func(r *api.MigrationReport) {
			r.Total, r.Copied, r.Skipped, r.Failed, r.Verified = 0, 0, 0, 0, 0
			r.Errors = map[string]string{}
		})
		for _, p := range spec.Projects {
			mg.runProject(ctx, m, spec, p)
		}
		if ctx.Err() != nil {
			mg.interrupted(m)
			return
		}
		if m.snapshot().Failed == 0 && spec.Switch && !spec.DryRun {
			mg.switchProjects(m, spec)
		}
		mg.resumeWrites(m, spec)
	}
	if rep := m.snapshot(); rep.Switched && rep.DeleteSource {
		m.update(func(r *api.MigrationReport) { r.Deleted, r.Kept = 0, 0 })
		for _, p := range spec.Projects {
			mg.deleteFromSource(ctx, m, rep, p)
		}
		if ctx.Err() != nil {
			mg.interrupted(m)
			return
		}
	}
	mg.finish(m)
}

// switchProjects rebinds the projects to the target and persists that in
// the overlay; if the overlay cannot be written the old binding is put
// back, so a restart never serves a project from a backend that was not
// chosen (and delete_source never empties a source still in use).
func (mg *migrator) switchProjects(m *migration, spec api.MigrationReport) {
	if mg.s.shared != nil {
		mg.switchShared(m, spec)
		return
	}
	for _, p := range spec.Projects {
		if err := mg.s.routing.SetBackend(p, spec.Target); err != nil {
			mg.fail(m, "project:"+p, fmt.Errorf("switch: %w", err))
		}
	}
	if m.snapshot().Failed == 0 {
		err := mg.saveOverlay()
		if err == nil {
			m.update(func(r *api.MigrationReport) { r.Switched = true })
			// The projects' secrets now come from the target, which may
			// differ (on_conflict skip): every watcher must re-list.
			for _, p := range spec.Projects {
				mg.s.publish(p, EventResync, sdk.Meta{})
			}
			return
		}
		mg.s.log.Error("migration: the routing overlay cannot be saved; the switch is undone", "migration", spec.ID, "error", err)
		mg.fail(m, "switch", errors.New("the routing overlay could not be saved, so the projects stay on the source"))
	}
	for _, p := range spec.Projects {
		_ = mg.s.routing.SetBackend(p, spec.Source)
	}
}

func (mg *migrator) interrupted(m *migration) {
	rep := m.snapshot()
	mg.s.log.Warn("migration interrupted by shutdown; it resumes when the gateway starts again", "migration", rep.ID)
}

// finish audits the outcome, frees the projects and ends the report.
func (mg *migrator) finish(m *migration) {
	rep := m.snapshot()
	outcome := "ok"
	if rep.Failed > 0 {
		outcome = "migration_failed"
	}
	for _, p := range rep.Projects {
		if err := mg.s.audit.Write(AuditRecord{RequestID: rep.RequestID, Subject: rep.StartedBy, Project: p, Action: ActionMigrate,
			Phase: PhaseOutcome, Outcome: outcome, Backend: rep.Target}); err != nil {
			mg.s.log.Error("audit write failed", "request_id", rep.RequestID, "error", err)
		}
	}
	// Release before the report turns final, so that a client that sees
	// the end can start the next migration of these projects at once.
	mg.release(rep.Projects)
	m.update(func(r *api.MigrationReport) {
		r.State = api.MigrationSucceeded
		if r.Failed > 0 {
			r.State = api.MigrationFailed
		}
		r.FinishedAt = formatTime(time.Now())
	})
	mg.mu.Lock()
	mg.pruneLocked()
	mg.mu.Unlock()
	rep = m.snapshot()
	mg.s.log.Info("migration finished", "migration", rep.ID, "state", rep.State, "total", rep.Total,
		"copied", rep.Copied, "skipped", rep.Skipped, "failed", rep.Failed, "verified", rep.Verified,
		"switched", rep.Switched, "deleted", rep.Deleted, "kept", rep.Kept, "resumed", rep.Resumed)
}

// resume reloads the journal at startup: finished migrations are listed
// again, and each one still "running" (the gateway died or stopped while it
// ran) starts over where it can. The copy is idempotent, so starting over
// is safe; secrets already copied count as skipped. A migration whose
// projects are no longer bound as it left them is not touched and ends
// failed, naming the project.
func (mg *migrator) resume() {
	if mg.s.shared != nil {
		return // orphaned migrations are adopted by the heartbeat (migrate_shared.go)
	}
	for _, rep := range mg.loadJournal() {
		if rep.ID == "" || len(rep.Projects) == 0 {
			continue
		}
		if rep.Errors == nil {
			rep.Errors = map[string]string{}
		}
		if rep.Workers < 1 || rep.Workers > maxMigrateWorkers {
			rep.Workers = defaultMigrateWorkers
		}
		m := &migration{rep: rep}
		if rep.State != api.MigrationRunning {
			mg.remember(m)
			continue
		}
		if why := mg.resumable(&m.rep); why != "" {
			m.rep.State, m.rep.FinishedAt = api.MigrationFailed, formatTime(time.Now())
			m.rep.Failed++
			m.rep.Errors["resume"] = why
			mg.remember(m)
			mg.s.log.Error("interrupted migration not resumed", "migration", rep.ID, "reason", why)
			continue
		}
		m.rep.Resumed++
		if _, busy := mg.claim(m); busy != "" {
			m.rep.State, m.rep.FinishedAt = api.MigrationFailed, formatTime(time.Now())
			m.rep.Errors["resume"] = fmt.Sprintf("project %q is claimed by another interrupted migration", busy)
			mg.remember(m)
			continue
		}
		mg.pauseWrites(m.snapshot())
		mg.s.log.Info("resuming interrupted migration", "migration", rep.ID, "projects", rep.Projects, "source", rep.Source, "target", rep.Target)
		mg.start(m)
	}
	mg.mu.Lock()
	mg.pruneLocked()
	mg.mu.Unlock()
	mg.saveJournal()
}

// resumable checks that an interrupted migration's projects are bound as it
// left them. A journal that missed the switch (the overlay was saved, then
// the gateway died) is recognised by every project being on the target.
func (mg *migrator) resumable(rep *api.MigrationReport) string {
	if !mg.backendExists(rep.Source) || !mg.backendExists(rep.Target) {
		return fmt.Sprintf("backend %q or %q is no longer configured", rep.Source, rep.Target)
	}
	onTarget := 0
	for _, p := range rep.Projects {
		rt, ok := mg.s.routing.Lookup(p)
		if !ok {
			return fmt.Sprintf("project %q is no longer configured", p)
		}
		if rt.Backend == rep.Target {
			onTarget++
		}
	}
	if rep.Switch && !rep.DryRun && onTarget == len(rep.Projects) {
		rep.Switched = true
		return ""
	}
	want := rep.Source
	if rep.Switched {
		want = rep.Target
	}
	for _, p := range rep.Projects {
		if rt, _ := mg.s.routing.Lookup(p); rt.Backend != want {
			return fmt.Sprintf("project %q is bound to backend %q, not %q as the migration left it", p, rt.Backend, want)
		}
	}
	return ""
}
