package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/secretgate/secretgate/sdk/api"
)

// Two small state files live in the directory of the audit log, both JSON,
// mode 0600, written atomically (temp file, fsync, rename):
//
//   - routingOverlayFile persists the switches made by migrations:
//     {"projects": {"<project>": "<backend>"}}, applied over the
//     configuration's bindings at startup. Entries naming a project or a
//     backend the configuration no longer has are ignored with a warning, so
//     a config edit always wins over a stale overlay.
//   - journalFile persists migration reports (names and counts, never a
//     value), so that GET /v1/migrations survives a restart and a migration
//     cut short by a crash or a shutdown is resumed when the gateway starts.
//
// Without an audit path (unit tests) neither file is written.
const (
	routingOverlayFile = "routing-overlay.json"
	journalFile        = "migrations.json"
	// journalKeep bounds the finished migrations the journal remembers.
	journalKeep = 100
)

type routingOverlay struct {
	Projects map[string]string `json:"projects"`
}

type migrationJournal struct {
	Migrations []api.MigrationReport `json:"migrations"`
}

func (mg *migrator) statePath(file string) string {
	if mg.s.shared != nil {
		return "" // the state lives in the database (state.go)
	}
	if mg.s.cfg == nil || mg.s.cfg.Audit.Path == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(mg.s.cfg.Audit.Path), file)
}

// readState decodes a state file; a missing file is not an error.
func readState(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s is not valid JSON", path)
	}
	return true, nil
}

// writeState replaces a state file atomically, so a crash leaves either the
// old file or the new one, never a torn one.
func writeState(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	werr := f.Chmod(0o600)
	if werr == nil {
		_, werr = f.Write(append(b, '\n'))
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}

// loadOverlay applies a saved overlay to the routing table.
func (mg *migrator) loadOverlay() {
	path := mg.statePath(routingOverlayFile)
	if path == "" {
		return
	}
	var ov routingOverlay
	found, err := readState(path, &ov)
	if err != nil {
		mg.s.log.Error("cannot read the routing overlay; using the configuration's bindings", "path", path, "error", err)
		return
	}
	if !found {
		return
	}
	for p, backend := range ov.Projects {
		if _, ok := mg.s.routing.Lookup(p); !ok || !mg.backendExists(backend) {
			mg.s.log.Warn("routing overlay entry ignored: project or backend not configured", "project", p, "backend", backend)
			continue
		}
		if err := mg.s.routing.SetBackend(p, backend); err == nil {
			mg.s.log.Info("project rebound by the routing overlay", "project", p, "backend", backend, "path", path)
		}
	}
}

// saveOverlay writes every binding that differs from the configuration.
func (mg *migrator) saveOverlay() error {
	path := mg.statePath(routingOverlayFile)
	if path == "" {
		return nil
	}
	mg.stateMu.Lock()
	defer mg.stateMu.Unlock()
	configured := map[string]string{}
	for _, p := range mg.s.config().Projects {
		configured[p.Name] = p.Backend
	}
	ov := routingOverlay{Projects: map[string]string{}}
	for _, rt := range mg.s.routing.Projects() {
		if configured[rt.Project] != rt.Backend {
			ov.Projects[rt.Project] = rt.Backend
		}
	}
	return writeState(path, ov)
}

// loadJournal reads the saved reports, oldest first.
func (mg *migrator) loadJournal() []api.MigrationReport {
	path := mg.statePath(journalFile)
	if path == "" {
		return nil
	}
	var j migrationJournal
	if _, err := readState(path, &j); err != nil {
		mg.s.log.Error("cannot read the migration journal; earlier migrations are forgotten and none is resumed", "path", path, "error", err)
		return nil
	}
	return j.Migrations
}

// saveJournal writes a fresh snapshot of every report. A failure is logged,
// not fatal: the copy itself is safe to redo, the journal only saves work.
func (mg *migrator) saveJournal() {
	if mg.s.shared != nil {
		mg.saveJournalShared()
		return
	}
	path := mg.statePath(journalFile)
	if path == "" {
		return
	}
	mg.stateMu.Lock()
	defer mg.stateMu.Unlock()
	mg.mu.Lock()
	ms := make([]*migration, 0, len(mg.order))
	for _, id := range mg.order {
		ms = append(ms, mg.all[id])
	}
	mg.mu.Unlock()
	j := migrationJournal{Migrations: make([]api.MigrationReport, 0, len(ms))}
	for _, m := range ms {
		j.Migrations = append(j.Migrations, m.snapshot())
	}
	if err := writeState(path, j); err != nil {
		mg.s.log.Error("cannot save the migration journal; an interrupted migration will not resume by itself", "path", path, "error", err)
	}
}
