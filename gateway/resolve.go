package gateway

// POST /v1/resolve: the values of many references sg://PROJECT/SECRET/KEY in
// one round trip, each authorized and audited exactly as GET of its secret
// (docs/api.md, "Resolving references").

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// resolveWorkers bounds the backend reads of one resolve in flight at once:
// enough that 100 references on a cloud backend do not cost 100 sequential
// round trips, few enough that one request cannot crowd out the others.
const resolveWorkers = 8

// registerResolve adds POST /v1/resolve. Authorization is per reference
// (each names its project), so the route has no :project to check up front.
func (s *Server) registerResolve(e *gin.Engine) {
	e.POST("/v1/resolve", noStore, withAction(ActionRead), s.authenticate, s.resolveRefs)
}

// resolveTarget is one secret version to read, shared by every reference
// that names one of its keys.
type resolveTarget struct {
	route Route
	ref   sdk.Ref
	// first is the first reference naming it, for messages.
	first string

	sec sdk.Secret
	err error
}

func (s *Server) resolveRefs(c *gin.Context) {
	r := s.req(c)
	var body api.ResolveRequest
	if !r.decodeJSON(&body) {
		return
	}
	if len(body.Refs) == 0 || len(body.Refs) > api.MaxResolveRefs {
		r.fail(invalidArg("refs", "holds %d references; 1 to %d are allowed", len(body.Refs), api.MaxResolveRefs))
		return
	}
	// Every reference is parsed and authorized before any backend is
	// called: a request that will fail reads nothing.
	refs := make([]sdk.Reference, len(body.Refs))
	targets := map[sdk.Ref]*resolveTarget{}
	var order []*resolveTarget
	for i, raw := range body.Refs {
		ref, err := sdk.ParseReference(raw)
		if err != nil {
			r.fail(invalidArg(fmt.Sprintf("refs[%d]", i), "%s", fieldReason(err, "is not a reference")))
			return
		}
		refs[i] = ref
		rr := s.refRequest(c, r.subject, ref, Route{Project: ref.Project})
		rt, routed := s.routing.Lookup(ref.Project)
		if !r.authz().HasAnyBinding(r.subject, ref.Project) || !routed {
			// Named as GET names it: the secret's name is not confirmed to
			// exist, and the project is as invisible as everywhere else.
			rr.secret = ""
			rr.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "project %q not found (reference %q)", ref.Project, raw))
			return
		}
		rr.route = rt
		if !r.authz().Allowed(r.subject, ref.Project, ActionRead, ref.Secret) {
			rr.fail(newAPIError(http.StatusForbidden, api.CodePermissionDenied, "%s on secret %q in project %q is not granted to %q (reference %q)",
				ActionRead, ref.Secret, ref.Project, r.subject, raw))
			return
		}
		if _, seen := targets[ref.Ref()]; !seen {
			t := &resolveTarget{route: rt, ref: ref.Ref(), first: raw}
			targets[ref.Ref()] = t
			order = append(order, t)
		}
	}
	s.readTargets(r, order)
	// The first failure in the order of the request decides the answer.
	for _, t := range order {
		if t.err != nil {
			rr := s.refRequest(c, r.subject, sdk.Reference{Project: t.ref.Project, Secret: t.ref.Name, Version: t.ref.Version}, t.route)
			if errors.Is(t.err, sdk.ErrUnavailable) {
				s.backends.Suspect(t.route.Backend)
			}
			e := mapBackendError(t.err, opContext{project: t.ref.Project, name: t.ref.Name, version: t.ref.Version, backend: t.route.Backend})
			e = &apiError{Status: e.Status, Code: e.Code, Message: fmt.Sprintf("%s (reference %q)", e.Message, t.first), cause: e.cause, retryAfter: e.retryAfter}
			rr.fail(e)
			return
		}
	}
	values := make(map[string]string, len(refs))
	for i, ref := range refs {
		t := targets[ref.Ref()]
		v, ok := t.sec.Data[ref.Key]
		if !ok {
			rr := s.refRequest(c, r.subject, ref, t.route)
			rr.version = t.sec.Version
			rr.fail(newAPIError(http.StatusNotFound, api.CodeNotFound, "key %q not found in version %d of secret %q in project %q (reference %q)",
				ref.Key, t.sec.Version, ref.Secret, ref.Project, body.Refs[i]))
			return
		}
		values[body.Refs[i]] = v
	}
	// One read record per reference, as if each had been a GET: the audit
	// trail of a workload's start shows every secret it received.
	for _, ref := range refs {
		t := targets[ref.Ref()]
		rr := s.refRequest(c, r.subject, ref, t.route)
		rr.version = t.sec.Version
		if !rr.auditSuccess() {
			return
		}
	}
	staleHeader(c)
	c.JSON(http.StatusOK, api.ResolveResponse{Values: values})
}

// refRequest is the per-reference state whose helpers write its audit
// record and answer its failure.
func (s *Server) refRequest(c *gin.Context, subject string, ref sdk.Reference, rt Route) *request {
	return &request{s: s, c: c, subject: subject, action: ActionRead, route: rt, secret: ref.Secret, version: ref.Version}
}

// readTargets reads every target, resolveWorkers at a time; each records
// its own outcome. A failure does not cancel the other reads: the answer
// names the first failing reference in the request's order, whichever read
// failed first in time, so the same request always gets the same answer.
func (s *Server) readTargets(r *request, targets []*resolveTarget) {
	sem := make(chan struct{}, resolveWorkers)
	var wg sync.WaitGroup
	ctx := cacheReads(r.c, r.c.Request.Context())
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.sec, t.err = s.readTarget(ctx, t)
		}()
	}
	wg.Wait()
}

func (s *Server) readTarget(ctx context.Context, t *resolveTarget) (sdk.Secret, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Secret{}, err
	}
	b, err := s.backend(t.route.Backend)
	if err != nil {
		return sdk.Secret{}, unavailable(t.route.Backend)
	}
	ctx, cancel := context.WithTimeout(ctx, s.backendTimeout)
	defer cancel()
	return b.Read(ctx, t.ref)
}
