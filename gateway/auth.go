package gateway

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// The middleware of every secret route: who is calling, and may they know
// the project exists.

// authenticate resolves the bearer token to a subject.
func (s *Server) authenticate(c *gin.Context) {
	r := &request{s: s, c: c, action: c.GetString(ctxKeyAction)}
	hs := c.Request.Header.Values("Authorization")
	if len(hs) > 1 {
		// Proxies and servers disagree on which of two wins; refuse to guess.
		s.failAuth(r, newAPIError(http.StatusBadRequest, api.CodeInvalidArgument, "invalid Authorization: the header was sent %d times; send it once", len(hs)))
		return
	}
	h := ""
	if len(hs) == 1 {
		h = hs[0]
	}
	scheme, token, found := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Header("WWW-Authenticate", `Bearer realm="secretgate"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "missing bearer token in the Authorization header"))
		return
	}
	subject, ok := s.authz.Authenticate(token)
	if !ok || subject == "" {
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "invalid bearer token"))
		return
	}
	c.Set(ctxKeySubject, subject)
	c.Next()
}

// failAuth answers a request that failed authentication. Its audit record
// names no project (unauthenticated callers name nothing we trust) and is
// written only while the limiter allows, so a flood cannot grow the log.
func (s *Server) failAuth(r *request, e *apiError) {
	if s.authFails.allow() {
		r.fail(e)
		return
	}
	abortWith(r.c, e)
}

// authorizeProject answers 404 for a project the subject has no binding on
// (or that does not exist), before anything else is learned.
func (s *Server) authorizeProject(c *gin.Context) {
	project := c.Param("project")
	r := &request{s: s, c: c, subject: c.GetString(ctxKeySubject), action: c.GetString(ctxKeyAction), route: Route{Project: project}}
	if name := c.Param("name"); name != "" && sdk.ValidateName(name) == nil {
		r.secret = name
	}
	if err := sdk.ValidateProject(project); err != nil {
		r.route.Project = ""
		r.fail(mapBackendError(err, opContext{}))
		return
	}
	rt, routed := s.routing.Lookup(project)
	if !s.authz.HasAnyBinding(r.subject, project) || !routed {
		r.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "project %q not found", project))
		return
	}
	c.Set(ctxKeyRoute, rt)
	c.Next()
}
