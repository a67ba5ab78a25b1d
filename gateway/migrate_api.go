package gateway

// The /v1/migrations routes: validate and authorize a migration request,
// start it, and report on it (docs/migrations.md).

import (
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// registerMigrations adds the migration routes to the engine.
func (s *Server) registerMigrations(e *gin.Engine) {
	mg := s.migrator
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
		r.fail(invalidArg("projects", "%s", fieldReason(err, "holds an invalid project name")))
		return Route{}, false
	}
	rt, routed := mg.s.routing.Lookup(project)
	if !r.authz().HasAnyBinding(r.subject, project) || !routed {
		r.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "project %q not found", project))
		return Route{}, false
	}
	if !r.authz().Allowed(r.subject, project, ActionMigrate, "") {
		r.fail(newAPIError(http.StatusForbidden, api.CodePermissionDenied, "%s on project %q is not granted to %q", ActionMigrate, project, r.subject))
		return Route{}, false
	}
	return rt, true
}

func (mg *migrator) backendExists(name string) bool { return mg.s.backendConfigured(name) }

// backendConfigured: the current configuration has a backend of that name.
func (s *Server) backendConfigured(name string) bool {
	for _, b := range s.config().Backends {
		if b.Name == name {
			return true
		}
	}
	return false
}

func (mg *migrator) validate(r *request, body *api.MigrationRequest) bool {
	switch {
	case body.Source == "":
		r.fail(invalidArg("source", "is required: the name of a configured backend"))
	case body.Target == "":
		r.fail(invalidArg("target", "is required: the name of a configured backend"))
	case body.Source == body.Target:
		r.fail(invalidArg("target", "must differ from source"))
	case len(body.Projects) == 0:
		r.fail(invalidArg("projects", "is required: at least one project"))
	case body.Versions != "latest" && body.Versions != "all":
		r.fail(invalidArg("versions", "must be \"latest\" or \"all\""))
	case body.OnConflict != "fail" && body.OnConflict != "skip" && body.OnConflict != "overwrite":
		r.fail(invalidArg("on_conflict", "must be \"fail\", \"skip\" or \"overwrite\""))
	case body.Workers < 1 || body.Workers > maxMigrateWorkers:
		r.fail(invalidArg("workers", "must be from 1 to %d", maxMigrateWorkers))
	case body.DeleteSource && (!body.Switch || body.DryRun):
		r.fail(invalidArg("delete_source", "needs switch and no dry_run: the source is only emptied after a verified switch"))
	default:
		return true
	}
	return false
}

func (mg *migrator) create(c *gin.Context) {
	r := mg.request(c, "")
	var body api.MigrationRequest
	if !r.decodeJSON(&body) {
		return
	}
	if body.Versions == "" {
		body.Versions = "latest"
	}
	if body.OnConflict == "" {
		body.OnConflict = "fail"
	}
	if body.Workers == 0 {
		body.Workers = defaultMigrateWorkers
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
		// Backend names are checked only now, for a caller allowed to
		// migrate the project: before, "not configured" against 404 would
		// tell any subject which backend names exist.
		if !mg.backendExists(body.Source) {
			mg.request(c, p).fail(invalidArg("source", "backend %q is not configured", body.Source))
			return
		}
		if !mg.backendExists(body.Target) {
			mg.request(c, p).fail(invalidArg("target", "backend %q is not configured", body.Target))
			return
		}
		if rt.Backend != body.Source {
			mg.request(c, p).fail(invalidArg("projects", "project %q is served by backend %q, not by source %q", p, rt.Backend, body.Source))
			return
		}
	}
	projects := append([]string(nil), body.Projects...)
	sort.Strings(projects)

	body.Projects = projects
	m := &migration{rep: api.MigrationReport{
		ID: uuid.NewString(), State: api.MigrationRunning,
		Source: body.Source, Target: body.Target, Projects: body.Projects, Versions: body.Versions,
		OnConflict: body.OnConflict, DryRun: body.DryRun, Switch: body.Switch, DeleteSource: body.DeleteSource, Workers: body.Workers,
		Errors: map[string]string{}, StartedBy: c.GetString(ctxKeySubject), RequestID: requestID(c), StartedAt: formatTime(time.Now()),
	}}
	id := m.rep.ID
	if other, busy := mg.claim(m); busy != "" {
		mg.request(c, busy).fail(newAPIError(http.StatusConflict, api.CodeMigrationInProgress, "project %q is already being migrated by migration %s", busy, other))
		return
	}
	for _, p := range projects {
		rr := mg.request(c, p)
		rr.route.Backend = body.Source
		if !rr.auditIntent() {
			mg.release(projects)
			m.update(func(rep *api.MigrationReport) {
				rep.State = api.MigrationFailed
				rep.FinishedAt = formatTime(time.Now())
			})
			return
		}
	}
	if mg.s.shared != nil {
		if e := mg.startShared(m); e != nil {
			mg.release(projects)
			mg.forget(id)
			mg.request(c, projects[0]).fail(e)
			return
		}
	} else {
		mg.pauseWrites(m.snapshot())
		mg.saveJournal()
	}
	mg.start(m)
	c.JSON(http.StatusAccepted, api.MigrationStarted{ID: id})
}

func (mg *migrator) get(c *gin.Context) {
	if mg.s.shared != nil {
		r := mg.request(c, "")
		rep, ok, err := mg.sharedReport(c.Request.Context(), c.Param("id"))
		switch {
		case err != nil:
			r.fail(&apiError{Status: http.StatusServiceUnavailable, Code: api.CodeBackendUnavailable, Message: "the shared state database cannot be read", cause: err})
		case ok && mg.canSee(c, rep):
			c.JSON(http.StatusOK, rep)
		default:
			r.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "migration not found"))
		}
		return
	}
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
	r.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "migration not found"))
}

// canSee: a migration is visible to subjects allowed to migrate every one
// of its projects.
func (mg *migrator) canSee(c *gin.Context, rep api.MigrationReport) bool {
	subject := c.GetString(ctxKeySubject)
	for _, p := range rep.Projects {
		if !mg.s.authzOf(c).Allowed(subject, p, ActionMigrate, "") {
			return false
		}
	}
	return true
}

func (mg *migrator) list(c *gin.Context) {
	if mg.s.shared != nil {
		reps, err := mg.sharedReports(c.Request.Context())
		if err != nil {
			mg.request(c, "").fail(&apiError{Status: http.StatusServiceUnavailable, Code: api.CodeBackendUnavailable, Message: "the shared state database cannot be read", cause: err})
			return
		}
		out := make([]api.MigrationReport, 0, len(reps))
		for _, rep := range reps {
			if mg.canSee(c, rep) {
				out = append(out, rep)
			}
		}
		c.JSON(http.StatusOK, api.MigrationList{Migrations: out})
		return
	}
	mg.mu.Lock()
	ms := make([]*migration, 0, len(mg.order))
	for _, id := range mg.order {
		ms = append(ms, mg.all[id])
	}
	mg.mu.Unlock()
	out := make([]api.MigrationReport, 0, len(ms))
	for _, m := range ms {
		if rep := m.snapshot(); mg.canSee(c, rep) {
			out = append(out, rep)
		}
	}
	c.JSON(http.StatusOK, api.MigrationList{Migrations: out})
}
