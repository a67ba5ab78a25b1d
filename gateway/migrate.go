package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/secretgate/secretgate/sdk"
)

// Migration tuning.
const (
	migrateWorkers  = 8
	migrateAttempts = 8
	migrateBackoff  = 100 * time.Millisecond
	migrateMaxSleep = 5 * time.Second
)

// Migration states.
const (
	MigrationRunning   = "running"
	MigrationSucceeded = "succeeded"
	MigrationFailed    = "failed"
)

// migrationBody is the body of POST /v1/migrations.
type migrationBody struct {
	Source     string   `json:"source"`
	Target     string   `json:"target"`
	Projects   []string `json:"projects"`
	Versions   string   `json:"versions"`
	OnConflict string   `json:"on_conflict"`
	DryRun     bool     `json:"dry_run"`
	Switch     bool     `json:"switch"`
}

// MigrationReport is the progress of one migration. It holds names and
// counts only: never a value.
type MigrationReport struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	Source     string            `json:"source"`
	Target     string            `json:"target"`
	Projects   []string          `json:"projects"`
	Versions   string            `json:"versions"`
	OnConflict string            `json:"on_conflict"`
	DryRun     bool              `json:"dry_run"`
	Switch     bool              `json:"switch"`
	Switched   bool              `json:"switched"`
	Total      int               `json:"total"`
	Copied     int               `json:"copied"`
	Skipped    int               `json:"skipped"`
	Failed     int               `json:"failed"`
	Verified   int               `json:"verified"`
	Errors     map[string]string `json:"errors"`
	StartedAt  string            `json:"started_at"`
	FinishedAt string            `json:"finished_at,omitempty"`
}

type migration struct {
	mu  sync.Mutex
	rep MigrationReport
}

func (m *migration) snapshot() MigrationReport {
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

func (m *migration) update(f func(r *MigrationReport)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.rep)
}

// migrator runs migrations inside the gateway. Values travel source plugin
// -> gateway memory -> target plugin and are never stored elsewhere.
//
// Semantics:
//   - While a migration (not a dry run) runs, its projects are read-only:
//     writes answer 503 backend_unavailable with a message saying the
//     project is being migrated, so no write can land in the source after
//     its listing and be lost by the switch. Reads go on from the source.
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
//     the binding in the routing overlay (see overlayFile).
//   - Calls answering ErrUnavailable are retried with exponential back-off.
//   - Reports are kept in memory: a restart forgets them.
type migrator struct {
	s *Server

	mu     sync.Mutex
	all    map[string]*migration
	order  []string
	active map[string]string // project -> migration id

	overlayMu sync.Mutex // one overlay write at a time, each from a fresh snapshot
}

// registerMigrations adds the migration routes to the engine.
func (s *Server) registerMigrations(e *gin.Engine) {
	mg := &migrator{s: s, all: map[string]*migration{}, active: map[string]string{}}
	mg.loadOverlay()
	g := e.Group("/v1/migrations", noStore, withAction(ActionMigrate), s.authenticate)
	g.POST("", mg.create)
	g.GET("", mg.list)
	g.GET("/:id", mg.get)
}

func (mg *migrator) request(c *gin.Context, project string) *request {
	return &request{s: mg.s, c: c, subject: c.GetString(ctxKeySubject), action: ActionMigrate, route: Route{Project: project}}
}

// authorize checks project.migrate on one project: 404 without any binding
// (or route), 403 when the binding lacks the action.
func (mg *migrator) authorize(c *gin.Context, project string) (Route, bool) {
	r := mg.request(c, project)
	if err := sdk.ValidateProject(project); err != nil {
		r.route.Project = ""
		var fe *sdk.FieldError
		if errors.As(err, &fe) {
			r.fail(invalidArg("projects", "%s", fe.Reason))
		} else {
			r.fail(invalidArg("projects", "holds an invalid project name"))
		}
		return Route{}, false
	}
	rt, routed := mg.s.routing.Lookup(project)
	if !mg.s.authz.HasAnyBinding(r.subject, project) || !routed {
		r.fail(newAPIError(http.StatusNotFound, CodeNotFound, "project %q not found", project))
		return Route{}, false
	}
	if !mg.s.authz.Allowed(r.subject, project, ActionMigrate, "") {
		r.fail(newAPIError(http.StatusForbidden, CodePermissionDenied, "%s on project %q is not granted to %q", ActionMigrate, project, r.subject))
		return Route{}, false
	}
	return rt, true
}

func (mg *migrator) backendExists(name string) bool {
	for _, b := range mg.s.cfg.Backends {
		if b.Name == name {
			return true
		}
	}
	return false
}

func (mg *migrator) validate(r *request, body *migrationBody) bool {
	switch {
	case body.Source == "":
		r.fail(invalidArg("source", "is required: the name of a configured backend"))
	case !mg.backendExists(body.Source):
		r.fail(invalidArg("source", "backend %q is not configured", body.Source))
	case body.Target == "":
		r.fail(invalidArg("target", "is required: the name of a configured backend"))
	case !mg.backendExists(body.Target):
		r.fail(invalidArg("target", "backend %q is not configured", body.Target))
	case body.Source == body.Target:
		r.fail(invalidArg("target", "must differ from source"))
	case len(body.Projects) == 0:
		r.fail(invalidArg("projects", "is required: at least one project"))
	case body.Versions != "latest" && body.Versions != "all":
		r.fail(invalidArg("versions", "must be \"latest\" or \"all\""))
	case body.OnConflict != "fail" && body.OnConflict != "skip" && body.OnConflict != "overwrite":
		r.fail(invalidArg("on_conflict", "must be \"fail\", \"skip\" or \"overwrite\""))
	default:
		return true
	}
	return false
}

func (mg *migrator) create(c *gin.Context) {
	r := mg.request(c, "")
	var body migrationBody
	if !r.decodeJSON(&body) {
		return
	}
	if body.Versions == "" {
		body.Versions = "latest"
	}
	if body.OnConflict == "" {
		body.OnConflict = "fail"
	}
	if !mg.validate(r, &body) {
		return
	}
	seen := map[string]bool{}
	for _, p := range body.Projects {
		if seen[p] {
			r.fail(invalidArg("projects", "project %q is named twice", p))
			return
		}
		seen[p] = true
		rt, ok := mg.authorize(c, p)
		if !ok {
			return
		}
		if rt.Backend != body.Source {
			mg.request(c, p).fail(invalidArg("projects", "project %q is served by backend %q, not by source %q", p, rt.Backend, body.Source))
			return
		}
	}
	projects := append([]string(nil), body.Projects...)
	sort.Strings(projects)

	id := uuid.NewString()
	m := &migration{rep: MigrationReport{
		ID: id, State: MigrationRunning, Source: body.Source, Target: body.Target, Projects: projects,
		Versions: body.Versions, OnConflict: body.OnConflict, DryRun: body.DryRun, Switch: body.Switch,
		Errors: map[string]string{}, StartedAt: formatTime(time.Now()),
	}}

	// Claim the projects: one migration per project at a time.
	mg.mu.Lock()
	for _, p := range projects {
		if other, busy := mg.active[p]; busy {
			mg.mu.Unlock()
			mg.request(c, p).fail(newAPIError(http.StatusConflict, "migration_in_progress", "project %q is already being migrated by migration %s", p, other))
			return
		}
	}
	for _, p := range projects {
		mg.active[p] = id
	}
	mg.all[id] = m
	mg.order = append(mg.order, id)
	mg.mu.Unlock()

	for _, p := range projects {
		rr := mg.request(c, p)
		rr.route.Backend = body.Source
		if !rr.intent() {
			mg.release(projects)
			m.update(func(rep *MigrationReport) { rep.State = MigrationFailed; rep.FinishedAt = formatTime(time.Now()) })
			return
		}
	}
	// Writes pause while secrets are copied, so none is lost between the
	// listing and the switch. A dry run writes nothing and pauses nothing.
	if !body.DryRun {
		for _, p := range projects {
			if err := mg.s.routing.SetReadOnly(p, true); err != nil {
				mg.s.log.Error("migration: cannot pause writes", "migration", id, "project", p, "error", err)
			}
		}
	}
	reqID, subject := requestID(c), c.GetString(ctxKeySubject)
	go mg.run(m, body, projects, reqID, subject)
	c.JSON(http.StatusAccepted, gin.H{"id": id})
}

func (mg *migrator) release(projects []string) {
	mg.mu.Lock()
	defer mg.mu.Unlock()
	for _, p := range projects {
		delete(mg.active, p)
	}
}

func (mg *migrator) get(c *gin.Context) {
	mg.mu.Lock()
	m, ok := mg.all[c.Param("id")]
	mg.mu.Unlock()
	r := mg.request(c, "")
	if ok {
		rep := m.snapshot()
		if mg.canSee(c, rep) {
			c.JSON(http.StatusOK, rep)
			return
		}
	}
	r.fail(newAPIError(http.StatusNotFound, CodeNotFound, "migration not found"))
}

// canSee: a migration is visible to subjects allowed to migrate every one
// of its projects.
func (mg *migrator) canSee(c *gin.Context, rep MigrationReport) bool {
	subject := c.GetString(ctxKeySubject)
	for _, p := range rep.Projects {
		if !mg.s.authz.Allowed(subject, p, ActionMigrate, "") {
			return false
		}
	}
	return true
}

func (mg *migrator) list(c *gin.Context) {
	mg.mu.Lock()
	ms := make([]*migration, 0, len(mg.order))
	for _, id := range mg.order {
		ms = append(ms, mg.all[id])
	}
	mg.mu.Unlock()
	out := make([]MigrationReport, 0, len(ms))
	for _, m := range ms {
		if rep := m.snapshot(); mg.canSee(c, rep) {
			out = append(out, rep)
		}
	}
	c.JSON(http.StatusOK, gin.H{"migrations": out})
}

// run copies every project, then switches and resumes writes.
func (mg *migrator) run(m *migration, body migrationBody, projects []string, reqID, subject string) {
	ctx := context.Background()
	for _, p := range projects {
		mg.runProject(ctx, m, body, p)
	}
	rep := m.snapshot()
	ok := rep.Failed == 0
	if ok && body.Switch && !body.DryRun {
		for _, p := range projects {
			if err := mg.s.routing.SetBackend(p, body.Target); err != nil {
				ok = false
				m.update(func(r *MigrationReport) { r.Errors["project:"+p] = "switch failed: project is not configured" })
			}
		}
		if ok {
			if err := mg.saveOverlay(); err != nil {
				// The switch holds until a restart; say so loudly.
				mg.s.log.Error("migration: the new binding will not survive a restart", "migration", rep.ID, "error", err)
				m.update(func(r *MigrationReport) {
					r.Errors["overlay"] = "switched, but the routing overlay could not be saved; the switch is lost on restart"
				})
			}
			m.update(func(r *MigrationReport) { r.Switched = true })
		}
	}
	if !body.DryRun {
		for _, p := range projects {
			_ = mg.s.routing.SetReadOnly(p, false)
		}
	}
	outcome := "ok"
	if !ok {
		outcome = "migration_failed"
	}
	for _, p := range projects {
		if err := mg.s.audit.Write(AuditRecord{RequestID: reqID, Subject: subject, Project: p, Action: ActionMigrate,
			Phase: PhaseOutcome, Outcome: outcome, Backend: body.Target}); err != nil {
			mg.s.log.Error("audit write failed", "request_id", reqID, "error", err)
		}
	}
	// Release before the report turns final, so that a client that sees
	// the end can start the next migration of these projects at once.
	mg.release(projects)
	m.update(func(r *MigrationReport) {
		r.State = MigrationSucceeded
		if !ok {
			r.State = MigrationFailed
		}
		r.FinishedAt = formatTime(time.Now())
	})
	rep = m.snapshot()
	mg.s.log.Info("migration finished", "migration", rep.ID, "state", rep.State, "total", rep.Total,
		"copied", rep.Copied, "skipped", rep.Skipped, "failed", rep.Failed, "verified", rep.Verified)
}

func (mg *migrator) fail(m *migration, key string, err error) {
	msg := errorText(err)
	m.update(func(r *MigrationReport) {
		r.Failed++
		r.Errors[key] = msg
	})
}

// errorText is what a report may say about an error: the text of typed sdk
// errors (which by the Backend contract name secrets and fields, never
// values), else only its class.
func errorText(err error) string {
	var fe *sdk.FieldError
	switch {
	case errors.As(err, &fe):
		return fe.Error()
	case errors.Is(err, errConflict), errors.Is(err, errVerify):
		return err.Error()
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrAlreadyExists), errors.Is(err, sdk.ErrVersionMismatch),
		errors.Is(err, sdk.ErrInvalid), errors.Is(err, sdk.ErrUnavailable), errors.Is(err, sdk.ErrPermission):
		return err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "backend call timed out"
	}
	return "internal error"
}

var (
	errConflict = errors.New("exists in the target with different content (on_conflict is fail)")
	errVerify   = errors.New("read-back from the target does not match the source digest")
)

func (mg *migrator) runProject(ctx context.Context, m *migration, body migrationBody, project string) {
	var names []string
	token := ""
	for {
		var page sdk.ListPage
		err := mg.retry(ctx, body.Source, func(b sdk.Backend, cctx context.Context) error {
			var err error
			page, err = b.List(cctx, sdk.ListRequest{Project: project, PageSize: sdk.MaxPageSize, PageToken: token})
			return err
		})
		if err != nil {
			mg.fail(m, "project:"+project, fmt.Errorf("listing the source: %w", err))
			return
		}
		for _, s := range page.Secrets {
			names = append(names, s.Name)
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	m.update(func(r *MigrationReport) { r.Total += len(names) })

	work := make(chan string)
	var wg sync.WaitGroup
	for range migrateWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				mg.copyOne(ctx, m, body, project, name)
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
}

// key of a secret in a report: project/name when several projects move.
func reportKey(body migrationBody, project, name string) string {
	if len(body.Projects) > 1 {
		return project + "/" + name
	}
	return name
}

func (mg *migrator) copyOne(ctx context.Context, m *migration, body migrationBody, project, name string) {
	key := reportKey(body, project, name)
	ref := sdk.Ref{Project: project, Name: name}
	var latest sdk.Secret
	if err := mg.retry(ctx, body.Source, func(b sdk.Backend, cctx context.Context) (err error) {
		latest, err = b.Read(cctx, ref)
		return err
	}); err != nil {
		mg.fail(m, key, fmt.Errorf("reading the source: %w", err))
		return
	}
	want, err := digest(latest.Data, latest.Labels)
	if err != nil {
		mg.fail(m, key, err)
		return
	}
	var cur sdk.Secret
	err = mg.retry(ctx, body.Target, func(b sdk.Backend, cctx context.Context) (err error) {
		cur, err = b.Read(cctx, ref)
		return err
	})
	exists := err == nil
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		mg.fail(m, key, fmt.Errorf("reading the target: %w", err))
		return
	}
	if exists {
		if have, err := digest(cur.Data, cur.Labels); err == nil && bytes.Equal(have, want) {
			m.update(func(r *MigrationReport) { r.Skipped++ })
			return
		}
	}
	// The versions to write, oldest first.
	var versions []sdk.Secret
	if body.Versions == "all" {
		var err error
		if versions, err = mg.readVersions(ctx, body.Source, ref, &latest); err != nil {
			mg.fail(m, key, fmt.Errorf("reading source versions: %w", err))
			return
		}
	} else {
		versions = []sdk.Secret{latest}
	}
	if exists {
		// A secret whose history in the target is a strict prefix of the
		// source's was cut short by an interrupted run: finish it.
		done := 0
		if body.Versions == "all" {
			if n, ok := mg.resumePoint(ctx, body.Target, ref, versions); ok {
				done = n
			}
		}
		switch {
		case done > 0:
			versions = versions[done:]
		case body.OnConflict == "fail":
			mg.fail(m, key, errConflict)
			return
		case body.OnConflict == "skip":
			m.update(func(r *MigrationReport) { r.Skipped++ })
			return
		}
	}
	if body.DryRun {
		m.update(func(r *MigrationReport) { r.Copied++ })
		return
	}

	labels := sdk.CloneData(latest.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	for _, v := range versions {
		mode := sdk.WriteReplace
		if !exists {
			mode = sdk.WriteCreate
		}
		req := sdk.WriteRequest{Project: project, Name: name, Data: v.Data, Labels: labels, Mode: mode}
		err := mg.retry(ctx, body.Target, func(b sdk.Backend, cctx context.Context) error {
			_, err := b.Write(cctx, req)
			if err != nil && mode == sdk.WriteCreate && errors.Is(err, sdk.ErrAlreadyExists) {
				// A create whose answer was lost on a retried attempt.
				req.Mode = sdk.WriteReplace
				_, err = b.Write(cctx, req)
			}
			return err
		})
		if err != nil {
			mg.fail(m, key, fmt.Errorf("writing version %d to the target: %w", v.Version, err))
			return
		}
		exists = true
	}
	m.update(func(r *MigrationReport) { r.Copied++ })

	var back sdk.Secret
	if err := mg.retry(ctx, body.Target, func(b sdk.Backend, cctx context.Context) (err error) {
		back, err = b.Read(cctx, ref)
		return err
	}); err != nil {
		mg.fail(m, key, fmt.Errorf("reading back from the target: %w", err))
		return
	}
	got, err := digest(back.Data, back.Labels)
	if err != nil || !bytes.Equal(got, want) {
		mg.fail(m, key, errVerify)
		return
	}
	m.update(func(r *MigrationReport) { r.Verified++ })
}

// retry calls f with the backend's client, backing off while the backend
// answers ErrUnavailable.
func (mg *migrator) retry(ctx context.Context, backend string, f func(sdk.Backend, context.Context) error) error {
	delay := migrateBackoff
	var err error
	for attempt := 0; attempt < migrateAttempts; attempt++ {
		var b sdk.Backend
		b, err = mg.s.backends.Backend(backend)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, mg.s.backendTimeout)
			err = f(b, cctx)
			cancel()
		}
		if err == nil || !errors.Is(err, sdk.ErrUnavailable) {
			return err
		}
		mg.s.backends.Suspect(backend)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, migrateMaxSleep)
	}
	return err
}

// digest is sha256 over the canonical encodings of data and labels.
func digest(data, labels map[string]string) ([]byte, error) {
	if data == nil {
		data = map[string]string{}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	d, err := sdk.EncodeData(data)
	if err != nil {
		return nil, fmt.Errorf("encoding data: %w", err)
	}
	l, err := sdk.EncodeData(labels)
	if err != nil {
		return nil, fmt.Errorf("encoding labels: %w", err)
	}
	h := sha256.New()
	h.Write(d)
	h.Write([]byte{0})
	h.Write(l)
	return h.Sum(nil), nil
}

// The routing overlay persists switches made by migrations: a JSON file
// {"projects": {"<project>": "<backend>"}} in the directory of the audit
// log, mode 0600, written atomically (temp file + rename) and applied over
// the configuration's bindings at startup. Entries naming a project or a
// backend the configuration no longer has are ignored with a warning, so a
// config edit always wins over a stale overlay.
const overlayFile = "routing-overlay.json"

type routingOverlay struct {
	Projects map[string]string `json:"projects"`
}

func (mg *migrator) overlayPath() string {
	if mg.s.cfg == nil || mg.s.cfg.Audit.Path == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(mg.s.cfg.Audit.Path), overlayFile)
}

// loadOverlay applies a saved overlay to the routing table.
func (mg *migrator) loadOverlay() {
	path := mg.overlayPath()
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		mg.s.log.Error("cannot read the routing overlay; using the configuration's bindings", "path", path, "error", err)
		return
	}
	var ov routingOverlay
	if err := json.Unmarshal(b, &ov); err != nil {
		mg.s.log.Error("the routing overlay is not valid JSON; using the configuration's bindings", "path", path)
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
	path := mg.overlayPath()
	if path == "" {
		return nil
	}
	mg.overlayMu.Lock()
	defer mg.overlayMu.Unlock()
	configured := map[string]string{}
	for _, p := range mg.s.cfg.Projects {
		configured[p.Name] = p.Backend
	}
	ov := routingOverlay{Projects: map[string]string{}}
	for _, rt := range mg.s.routing.Projects() {
		if configured[rt.Project] != rt.Backend {
			ov.Projects[rt.Project] = rt.Backend
		}
	}
	b, err := json.MarshalIndent(ov, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".routing-overlay-*")
	if err != nil {
		return fmt.Errorf("writing the routing overlay: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing the routing overlay: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing the routing overlay: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing the routing overlay: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the routing overlay: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the routing overlay: %w", err)
	}
	return nil
}

// readVersions reads every stored version of a secret, oldest first; the
// last is latest (already read).
func (mg *migrator) readVersions(ctx context.Context, backend string, ref sdk.Ref, latest *sdk.Secret) ([]sdk.Secret, error) {
	var vs []sdk.VersionMeta
	if err := mg.retry(ctx, backend, func(b sdk.Backend, cctx context.Context) (err error) {
		vs, err = b.Versions(cctx, ref)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]sdk.Secret, 0, len(vs))
	for _, v := range vs {
		if latest != nil && v.Version == latest.Version {
			continue
		}
		var sec sdk.Secret
		vref := sdk.Ref{Project: ref.Project, Name: ref.Name, Version: v.Version}
		if err := mg.retry(ctx, backend, func(b sdk.Backend, cctx context.Context) (err error) {
			sec, err = b.Read(cctx, vref)
			return err
		}); err != nil {
			return nil, fmt.Errorf("version %d: %w", v.Version, err)
		}
		out = append(out, sec)
	}
	if latest != nil {
		out = append(out, *latest)
	}
	return out, nil
}

// resumePoint reports how many of the source versions the target already
// holds, in order, when its history is a strict prefix of the source's.
func (mg *migrator) resumePoint(ctx context.Context, target string, ref sdk.Ref, src []sdk.Secret) (int, bool) {
	have, err := mg.readVersions(ctx, target, ref, nil)
	if err != nil || len(have) == 0 || len(have) >= len(src) {
		return 0, false
	}
	for i, h := range have {
		a, err1 := sdk.EncodeData(h.Data)
		b, err2 := sdk.EncodeData(src[i].Data)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			return 0, false
		}
	}
	return len(have), true
}
