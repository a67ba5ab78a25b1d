package gateway

// POST /v1/projects/{p}/secrets/{name}/rollback {"version":N}: version N's
// data (and the current labels) written as a new version, inside the
// gateway. It needs secrets.update only: an editor can undo a bad rotation
// of values it can never read, and the answer, like every write's, holds
// metadata only (docs/api.md, "Rolling back").

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

func (s *Server) rollback(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	var body api.RollbackRequest
	if !r.decodeJSON(&body) {
		return
	}
	if body.Version < 1 {
		r.fail(invalidArg("version", "must be the number of a stored version (1 or more)"))
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.allowed(ActionUpdate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	unlock, err := s.lockSecret(ctx, r.route.Project, r.secret)
	if err != nil {
		r.backendErr(err)
		return
	}
	defer unlock()
	// Named in errors while the old version is read: a missing one is a
	// 404 naming it.
	r.version = body.Version
	old, err := b.Read(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret, Version: body.Version})
	if err != nil {
		r.backendErr(err)
		return
	}
	m, err := s.rollbackLoop(ctx, r, b, old.Data, expected)
	if err != nil {
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretUpdated, m)
	r.written(m, http.StatusOK)
}

// rollbackLoop writes data over the latest version with check-and-set
// (retryCAS).
func (s *Server) rollbackLoop(ctx context.Context, r *request, b sdk.Backend, data map[string]string, expected int64) (sdk.Meta, error) {
	ref := sdk.Ref{Project: r.route.Project, Name: r.secret}
	return retryCAS(ctx, r.secret, "rollback attempts", expected, func() (sdk.Meta, error) {
		cur, err := b.Describe(ctx, ref)
		if err != nil {
			return sdk.Meta{}, err
		}
		if expected > 0 && cur.Version != expected {
			return sdk.Meta{}, sdk.VersionMismatch(ref.Project, ref.Name, expected, cur.Version)
		}
		return b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data, Mode: sdk.WriteReplace, ExpectedVersion: cur.Version})
	})
}
