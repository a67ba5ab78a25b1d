package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/idtoken"

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
	live := s.live.Load()
	c.Set(ctxKeyLive, live)
	if s.authenticateLoginToken(c, r, live, token) {
		return
	}
	if live.jwt != nil && idtoken.LooksLikeJWT(token) {
		s.authenticateJWT(c, r, live, token)
		return
	}
	subject, expires, ok := live.authz.Authenticate(token)
	if !ok || subject == "" {
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "invalid bearer token"))
		return
	}
	if !expires.IsZero() && !time.Now().Before(expires) {
		// Named: the caller learns the token is known but over, which
		// tells an operator what to renew; the subject is not named.
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token", error_description="token expired"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "token expired at %s", expires.UTC().Format(time.RFC3339)))
		return
	}
	c.Set(ctxKeySubject, subject)
	c.Set(ctxKeyCaller, caller{subject: subject, expires: expires})
	c.Next()
}

// authenticateJWT verifies a workload identity token and maps it to the
// subject of the first matching rule (docs/workload-identity.md).
func (s *Server) authenticateJWT(c *gin.Context, r *request, live *liveConfig, token string) {
	id, err := live.jwt.Verify(c.Request.Context(), token)
	if err != nil {
		if errors.Is(err, idtoken.ErrKeysUnavailable) && s.jwtLogs.allow() {
			// The issuer, not the caller, is at fault: worth a line (at
			// a bounded rate). The error never holds the token.
			s.log.Warn("workload identity: the issuer's keys cannot be fetched", "error", err)
		}
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token"`)
		// idtoken's messages name the check that failed (expired, wrong
		// audience, no rule...), never the token or a claim's value.
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "invalid workload identity token: %v", err))
		return
	}
	c.Set(ctxKeySubject, id.Subject)
	c.Set(ctxKeyCaller, caller{subject: id.Subject, expires: id.Expiry, issuer: id.Issuer, claims: id.AuditClaims})
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
	if !r.authz().HasAnyBinding(r.subject, project) || !routed {
		r.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "project %q not found", project))
		return
	}
	c.Set(ctxKeyRoute, rt)
	c.Next()
}
