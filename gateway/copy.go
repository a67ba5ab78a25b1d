package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// copySecret copies one secret (data and labels of one version) to another
// name or project, across backends if the projects live on different ones.
// The value passes through gateway memory only and the answer is the new
// metadata, so a caller can move a secret it could never read through the
// API when it holds project.migrate on the source.
//
// Permissions: on the source, secrets.read on the secret or project.migrate;
// on the target, secrets.create (and secrets.update with overwrite) on the
// new name, or project.migrate. Two audit trails: the source read, and the
// target write with its intent and outcome records.
func (s *Server) copySecret(c *gin.Context) {
	src := s.req(c)
	if !src.secretName() {
		return
	}
	var body api.CopyRequest
	if !src.decodeJSON(&body) {
		return
	}
	if body.ToProject == "" {
		body.ToProject = src.route.Project
	}
	if body.As == "" {
		body.As = src.secret
	}
	if err := sdk.ValidateProject(body.ToProject); err != nil {
		src.fail(invalidArg("to_project", "%s", fieldReason(err, "is not a valid project name")))
		return
	}
	if err := sdk.ValidateName(body.As); err != nil {
		src.fail(invalidArg("as", "%s", fieldReason(err, "is not a valid secret name")))
		return
	}
	switch {
	case body.Version < 0:
		src.fail(invalidArg("version", "must be 0 (latest) or a positive version number"))
		return
	case body.ToProject == src.route.Project && body.As == src.secret:
		src.fail(invalidArg("as", "must differ from the source name when copying within one project"))
		return
	}
	src.version = body.Version
	if !src.authz().Allowed(src.subject, src.route.Project, ActionRead, src.secret) {
		if !src.authz().Allowed(src.subject, src.route.Project, ActionMigrate, "") {
			src.fail(newAPIError(http.StatusForbidden, api.CodePermissionDenied, "copying secret %q out of project %q needs %s on it or %s on the project, not granted to %q",
				src.secret, src.route.Project, ActionRead, ActionMigrate, src.subject))
			return
		}
		src.action = ActionMigrate
	}

	dst := &request{s: s, c: c, subject: src.subject, action: ActionCreate, route: Route{Project: body.ToProject}, secret: body.As}
	if body.Overwrite {
		dst.action = ActionUpdate
	}
	rt, routed := s.routing.Lookup(body.ToProject)
	if !routed || !dst.authz().HasAnyBinding(dst.subject, body.ToProject) {
		dst.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "project %q not found", body.ToProject))
		return
	}
	dst.route = rt
	if !dst.authz().Allowed(dst.subject, rt.Project, ActionMigrate, "") {
		if !dst.allowed(ActionCreate) || (body.Overwrite && !dst.allowed(ActionUpdate)) {
			return
		}
	}
	if !dst.writable() {
		return
	}

	from, ctx, cancel, ok := src.readBackend()
	if !ok {
		return
	}
	defer cancel()
	sec, err := from.Read(ctx, sdk.Ref{Project: src.route.Project, Name: src.secret, Version: body.Version})
	if err != nil {
		src.backendErr(err)
		return
	}
	src.version = sec.Version
	if !src.auditSuccess() {
		return
	}

	to, wctx, wcancel, ok := dst.writeBackend()
	if !ok {
		return
	}
	defer wcancel()
	mode := sdk.WriteCreate
	if body.Overwrite {
		mode = sdk.WriteUpsert
	}
	m, err := to.Write(wctx, sdk.WriteRequest{Project: rt.Project, Name: body.As, Data: sec.Data, Labels: sec.Labels, Mode: mode})
	if err != nil {
		dst.backendErr(err)
		return
	}
	status, kind := http.StatusCreated, EventSecretCreated
	if m.Version > 1 {
		status, kind = http.StatusOK, EventSecretUpdated
	}
	s.publish(rt.Project, kind, m)
	dst.written(m, status)
}
