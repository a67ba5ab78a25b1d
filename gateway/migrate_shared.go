package gateway

// Migrations with shared state (state.go, docs/replicas.md): the journal
// is a table, each running migration belongs to the replica holding its
// lease, and another replica adopts it when the lease runs out.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/secretgate/secretgate/internal/pgstate"
	"github.com/secretgate/secretgate/sdk/api"
)

// pauseConfirmTimeout bounds how long starting a migration waits for the
// other replicas to confirm the pause: a live replica confirms within a
// heartbeat, a dead one stops counting after a lease.
func (st *sharedState) pauseConfirmTimeout() time.Duration { return 2*st.lease + 30*time.Second }

// sharedRun is what the migrator tracks of a migration it owns in the
// shared state, beside its report.
type sharedRun struct {
	paused    []string // the projects the migration pauses, as the database should say
	persisted bool     // its final report is saved: nothing more to write
	lost      bool     // another replica owns it now
}

func reportJSON(rep api.MigrationReport) json.RawMessage {
	b, _ := json.Marshal(rep) // a report holds strings, numbers and maps of strings
	return b
}

// startShared records a new migration in the shared state and pauses its
// projects on every replica before the copy may begin.
func (mg *migrator) startShared(m *migration) *apiError {
	st := mg.s.shared
	rep := m.snapshot()
	ctx, cancel := context.WithTimeout(mg.ctx, st.pauseConfirmTimeout())
	defer cancel()
	paused := []string{}
	if !rep.DryRun {
		paused = rep.Projects
	}
	m.mu.Lock()
	m.shared = &sharedRun{paused: paused}
	m.mu.Unlock()
	epoch, err := st.store.StartMigration(ctx, rep.ID, st.id, rep.Projects, !rep.DryRun, reportJSON(rep), st.lease)
	var busy *pgstate.BusyError
	switch {
	case errors.As(err, &busy):
		return newAPIError(http.StatusConflict, api.CodeMigrationInProgress, "project %q is already being migrated by migration %s", busy.Project, busy.Migration)
	case err != nil:
		return &apiError{Status: http.StatusServiceUnavailable, Code: api.CodeBackendUnavailable,
			Message: "the migration could not be recorded in the shared state database; nothing was started", cause: err}
	}
	m.mu.Lock()
	m.ownedSince = time.Now()
	m.mu.Unlock()
	if epoch == 0 {
		return nil
	}
	if err := st.awaitAcks(ctx, epoch); err != nil {
		m.update(func(r *api.MigrationReport) {
			r.State, r.FinishedAt = api.MigrationFailed, formatTime(time.Now())
			r.Failed++
			r.Errors["pause"] = "not every replica confirmed that it stopped writing to the projects, so nothing was copied"
		})
		mg.saveShared(m, nil)
		return &apiError{Status: http.StatusServiceUnavailable, Code: api.CodeBackendUnavailable,
			Message: "not every replica confirmed the pause of writes in time; the migration was not started", cause: err}
	}
	return nil
}

// saveShared writes the migration's report (and, with routing, switches
// its projects) if this replica still owns it; then applies what changed.
func (mg *migrator) saveShared(m *migration, routing map[string]string) error {
	st := mg.s.shared
	m.mu.Lock()
	sr := m.shared
	if sr == nil || sr.lost || sr.persisted {
		m.mu.Unlock()
		return nil
	}
	rep := m.rep
	paused := slices.Clone(sr.paused)
	m.mu.Unlock()
	rep = m.snapshot()
	// Final saves happen during shutdown too, after mg.ctx ended.
	ctx, cancel := context.WithTimeout(context.Background(), st.lease)
	defer cancel()
	epoch, err := st.store.SaveMigration(ctx, rep.ID, st.id, pgstate.Update{State: rep.State, Report: reportJSON(rep), Paused: paused, Routing: routing}, journalKeep)
	switch {
	case errors.Is(err, pgstate.ErrNotOwner):
		mg.lose(m)
		return err
	case err != nil:
		mg.s.log.Error("cannot save a migration in the shared state; retrying at the next heartbeat", "migration", rep.ID, "error", err)
		return err
	}
	if rep.State != api.MigrationRunning {
		m.mu.Lock()
		sr.persisted = true
		m.mu.Unlock()
	}
	if epoch > 0 {
		if err := st.sync(ctx); err != nil {
			st.poke() // the heartbeat applies it
		}
	}
	return nil
}

// saveJournalShared saves every migration this replica owns and has not
// saved in its final state yet.
func (mg *migrator) saveJournalShared() {
	for _, m := range mg.owned() {
		_ = mg.saveShared(m, nil)
	}
}

func (mg *migrator) owned() []*migration {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	var out []*migration
	for _, id := range mg.order {
		m := mg.all[id]
		m.mu.Lock()
		if m.shared != nil && !m.shared.lost && !m.shared.persisted {
			out = append(out, m)
		}
		m.mu.Unlock()
	}
	return out
}

// switchShared rebinds the projects to the target on every replica and
// resumes their writes there, in one transaction.
func (mg *migrator) switchShared(m *migration, spec api.MigrationReport) {
	routing := make(map[string]string, len(spec.Projects))
	for _, p := range spec.Projects {
		routing[p] = spec.Target
	}
	m.update(func(r *api.MigrationReport) { r.Switched = true })
	m.mu.Lock()
	m.shared.paused = []string{}
	m.mu.Unlock()
	if err := mg.saveShared(m, routing); err != nil {
		m.update(func(r *api.MigrationReport) { r.Switched = false })
		m.mu.Lock()
		m.shared.paused = slices.Clone(spec.Projects)
		m.mu.Unlock()
		mg.s.log.Error("migration: the switch could not be saved in the shared state; the projects stay on the source", "migration", spec.ID, "error", err)
		mg.fail(m, "switch", errors.New("the shared state could not be updated, so the projects stay on the source"))
	}
}

// lose stops a migration another replica has taken over.
func (mg *migrator) lose(m *migration) {
	m.mu.Lock()
	if m.shared == nil || m.shared.lost {
		m.mu.Unlock()
		return
	}
	m.shared.lost = true
	cancel, id := m.cancel, m.rep.ID
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	mg.s.log.Warn("migration taken over by another replica (this one could not renew its lease in time); stopping here", "migration", id)
	mg.mu.Lock()
	delete(mg.all, id)
	mg.order = slices.DeleteFunc(mg.order, func(x string) bool { return x == id })
	mg.mu.Unlock()
}

// keepOwned stops the running migrations the heartbeat (begun at asOf)
// found this replica no longer owns.
func (mg *migrator) keepOwned(owned []string, asOf time.Time) {
	for _, m := range mg.owned() {
		m.mu.Lock()
		since, id, running := m.ownedSince, m.rep.ID, m.rep.State == api.MigrationRunning
		m.mu.Unlock()
		if running && !since.IsZero() && since.Before(asOf) && !slices.Contains(owned, id) {
			mg.lose(m)
		}
	}
}

// adoptOrphans resumes the migrations whose owner's lease ran out.
func (mg *migrator) adoptOrphans(ctx context.Context) {
	st := mg.s.shared
	for mg.ctx.Err() == nil {
		id, raw, ok, err := st.store.TakeOver(ctx, st.id, st.lease)
		if err != nil || !ok {
			return
		}
		var rep api.MigrationReport
		if err := json.Unmarshal(raw, &rep); err != nil || rep.ID != id || len(rep.Projects) == 0 {
			mg.s.log.Error("shared state: a migration's report cannot be read; it is left as it is", "migration", id)
			return
		}
		if rep.Errors == nil {
			rep.Errors = map[string]string{}
		}
		if rep.Workers < 1 || rep.Workers > maxMigrateWorkers {
			rep.Workers = defaultMigrateWorkers
		}
		paused := []string{}
		if !rep.DryRun && !rep.Switched {
			paused = rep.Projects
		}
		m := &migration{rep: rep, ownedSince: time.Now(), shared: &sharedRun{paused: paused}}
		if why := mg.resumable(&m.rep); why != "" {
			m.rep.State, m.rep.FinishedAt = api.MigrationFailed, formatTime(time.Now())
			m.rep.Failed++
			m.rep.Errors["resume"] = why
			mg.s.log.Error("orphaned migration not resumed", "migration", id, "reason", why)
			_ = mg.saveShared(m, nil)
			continue
		}
		m.rep.Resumed++
		if _, busy := mg.claim(m); busy != "" {
			mg.s.log.Error("orphaned migration not resumed: a project is claimed here", "migration", id, "project", busy)
			return
		}
		mg.s.log.Info("resuming a migration whose replica stopped", "migration", id, "projects", rep.Projects, "source", rep.Source, "target", rep.Target)
		_ = mg.saveShared(m, nil)
		mg.start(m)
	}
}

// sharedReport returns a migration's report: this replica's own copy while
// it runs it (fresher), else the shared journal's.
func (mg *migrator) sharedReport(ctx context.Context, id string) (api.MigrationReport, bool, error) {
	mg.mu.Lock()
	m, ok := mg.all[id]
	mg.mu.Unlock()
	if ok && m.running() {
		return m.snapshot(), true, nil
	}
	raw, found, err := mg.s.shared.store.Report(ctx, id)
	if err != nil || !found {
		return api.MigrationReport{}, false, err
	}
	var rep api.MigrationReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return api.MigrationReport{}, false, fmt.Errorf("migration %s: %w", id, err)
	}
	return rep, true, nil
}

// sharedReports lists the shared journal, oldest first, with this
// replica's running migrations in their fresher local state.
func (mg *migrator) sharedReports(ctx context.Context) ([]api.MigrationReport, error) {
	raws, err := mg.s.shared.store.Reports(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.MigrationReport, 0, len(raws))
	for _, raw := range raws {
		var rep api.MigrationReport
		if json.Unmarshal(raw, &rep) != nil {
			continue
		}
		mg.mu.Lock()
		m, ok := mg.all[rep.ID]
		mg.mu.Unlock()
		if ok && m.running() {
			rep = m.snapshot()
		}
		out = append(out, rep)
	}
	return out, nil
}
