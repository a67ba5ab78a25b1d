package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// request carries one secret route's state from authorization to the
// audit record of its outcome; its helpers answer errors and write audit
// records on the handler's behalf.

// request is the per-request state of a secret route.
type request struct {
	s       *Server
	c       *gin.Context
	subject string
	action  string
	route   Route
	secret  string
	version int64
	// receipted is set when the mutation's records ride on receipts
	// (receipts_request.go).
	receipted *receiptedMutation
}

func (s *Server) req(c *gin.Context) *request {
	rt, _ := c.Get(ctxKeyRoute)
	r, _ := rt.(Route)
	return &request{s: s, c: c, subject: c.GetString(ctxKeySubject), action: c.GetString(ctxKeyAction), route: r}
}

func (r *request) record(phase, outcome string) AuditRecord {
	cl := callerOf(r.c)
	return AuditRecord{
		RequestID: requestID(r.c), ClientRequestID: r.c.GetString(ctxKeyClientRequestID), Subject: r.subject, Project: r.route.Project, Action: r.action,
		Secret: r.secret, Phase: phase, Outcome: outcome, Backend: r.route.Backend, Version: r.version,
		Issuer: cl.issuer, Claims: cl.claims,
	}
}

// fail audits the outcome of a failed request and answers it. When even
// the audit record cannot be written the answer becomes 503.
func (r *request) fail(e *apiError) {
	if err := r.s.audit.Write(r.record(PhaseOutcome, e.Code)); err != nil {
		r.s.log.Error("audit write failed", "request_id", requestID(r.c), "error", err)
		e = auditUnavailable(err)
	}
	abortWith(r.c, e)
}

// auditSuccess writes the outcome record of a success; false means the answer was already the
// 503 of a failed audit write.
func (r *request) auditSuccess() bool {
	if r.receipted.covers() {
		return r.auditReceiptedSuccess()
	}
	if err := r.s.audit.Write(r.record(PhaseOutcome, "ok")); err != nil {
		r.s.log.Error("audit write failed", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return false
	}
	return true
}

// auditIntent writes the intent record of a mutation before the backend is touched; on failure the
// request ends with 503 and the backend is never called.
func (r *request) auditIntent() bool {
	if err := r.s.audit.Write(r.record(PhaseIntent, "")); err != nil {
		r.s.log.Error("audit write failed, refusing the change", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return false
	}
	return true
}

func auditUnavailable(err error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: api.CodeBackendUnavailable,
		Message: "the audit log cannot be written, so the request was refused", cause: err}
}

// secretName validates the :name parameter.
func (r *request) secretName() bool {
	name := r.c.Param("name")
	if err := sdk.ValidateName(name); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	r.secret = name
	return true
}

// allowed checks the action on the secret: 403 when denied.
func (r *request) allowed(action string) bool {
	if r.authz().Allowed(r.subject, r.route.Project, action, r.secret) {
		return true
	}
	r.fail(newAPIError(http.StatusForbidden, api.CodePermissionDenied, "%s on secret %q in project %q is not granted to %q", action, r.secret, r.route.Project, r.subject))
	return false
}

// writable refuses writes while the project is migrating (409), and while
// this replica cannot vouch for its view of the shared state (503). An
// admitted write counts as in flight until the request ends (endWrites),
// so that pausing the project waits for it; the route is read again on
// admission, since a migration may have switched the project's backend
// while this request waited.
func (r *request) writable() bool {
	if err := r.s.shared.writeError(); err != nil {
		r.fail(err)
		return false
	}
	done, ok := r.s.routing.BeginWrite(r.route.Project)
	if !ok {
		// 409, not 503: retrying soon will not help, and no write is ever
		// accepted into the old backend only to be lost by the switch.
		r.fail(newAPIError(http.StatusConflict, api.CodeMigrationInProgress, "project %q is being migrated to another backend; writes are refused until the migration ends", r.route.Project))
		return false
	}
	dones, _ := r.c.Get(ctxKeyWriteDone)
	fs, _ := dones.([]func())
	r.c.Set(ctxKeyWriteDone, append(fs, done))
	if rt, found := r.s.routing.Lookup(r.route.Project); found {
		r.route = rt
	}
	return true
}

// endWrites ends the writes a request was admitted for (writable), however
// the handler ends, panics included.
func endWrites(c *gin.Context) {
	defer endWritesOf(c)
	c.Next()
}

// endWritesOf ends the writes admitted for c's request.
func endWritesOf(c *gin.Context) {
	if dones, ok := c.Get(ctxKeyWriteDone); ok {
		for _, done := range dones.([]func()) {
			done()
		}
	}
}

// backend returns the project's backend client, or answers 503.
func (r *request) backend() (sdk.Backend, bool) {
	b, err := r.s.backend(r.route.Backend)
	if err != nil {
		r.fail(unavailable(r.route.Backend))
		return nil, false
	}
	return b, true
}

// backendErr maps a backend error and answers it.
func (r *request) backendErr(err error) {
	if errors.Is(err, sdk.ErrUnavailable) {
		r.s.backends.Suspect(r.route.Backend)
	}
	r.fail(mapBackendError(err, opContext{project: r.route.Project, name: r.secret, version: r.version, backend: r.route.Backend}))
}

// readBackend resolves the project's backend and bounds the read that
// follows; when ok is false the answer is written and nothing needs cancelling.
func (r *request) readBackend() (sdk.Backend, context.Context, context.CancelFunc, bool) {
	b, ok := r.backend()
	if !ok {
		return nil, nil, nil, false
	}
	ctx, cancel := r.readCtx()
	return b, ctx, cancel, true
}

// writeBackend resolves the project's backend, audits the intent and bounds
// the mutation that follows; when ok is false the answer is written (503:
// no backend, or no intent record, so the backend is never touched). For
// a backend that keeps audit receipts the intent is written but not yet
// synced, and the backend returned attaches it to each write
// (receipts_request.go).
func (r *request) writeBackend() (sdk.Backend, context.Context, context.CancelFunc, bool) {
	b, ok := r.backend()
	if !ok {
		return nil, nil, nil, false
	}
	if l := r.s.receipts.ledger(r.route.Backend); l != nil {
		if b, ok = r.receiptedIntent(b, l); !ok {
			return nil, nil, nil, false
		}
	} else if !r.auditIntent() {
		return nil, nil, nil, false
	}
	ctx, cancel := r.writeCtx()
	return b, ctx, cancel, true
}

// readCtx bounds a read; it ends with the client's request.
func (r *request) readCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.c.Request.Context(), r.s.backendTimeout)
}

// writeCtx bounds a mutation but survives the client hanging up, so that a
// change that reached the backend is always followed by its outcome record.
func (r *request) writeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.c.Request.Context()), r.s.backendTimeout)
}

func setETag(c *gin.Context, version int64) {
	c.Header("ETag", `"`+strconv.FormatInt(version, 10)+`"`)
}

// ifMatch parses If-Match: a quoted (or bare) version, or "*" (= exists,
// which every PUT, PATCH and DELETE requires anyway). 0 = no check.
func (r *request) ifMatch() (int64, bool) {
	h := strings.TrimSpace(r.c.GetHeader("If-Match"))
	if h == "" || h == "*" {
		return 0, true
	}
	v := strings.TrimPrefix(h, "W/")
	v = strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		r.fail(invalidArg("If-Match", "must be an ETag of this API: a quoted version number such as \"3\""))
		return 0, false
	}
	return n, true
}

// decodeJSON decodes exactly one JSON object into dst (a pointer to a
// struct) after checkStrictJSON: unknown, duplicate or case-variant
// members, null, invalid UTF-8 and lone surrogates are refused with a 400
// naming the field, and no message ever quotes a value.
func (r *request) decodeJSON(dst any) bool {
	raw, e := readBody(r.c.Request, r.s.readTimeout)
	if e == nil {
		e = checkStrictJSON(raw, jsonFields(dst))
	}
	if e == nil {
		if err := json.Unmarshal(raw, dst); err != nil {
			e = jsonError(err)
		}
	}
	if e != nil {
		if e.Status == http.StatusRequestTimeout {
			r.c.Header("Connection", "close")
		}
		r.fail(e)
		return false
	}
	return true
}

func jsonError(err error) *apiError {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return newAPIError(http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, "request body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return invalidArg("body", "is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidArg("body", "ends before the JSON object does")
	case errors.As(err, &se):
		return invalidArg("body", "is not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return invalidArg(field, "must be %s", jsonKind(te.Type.String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if len(name) > 66 {
			name = name[:64] + `..."`
		}
		return invalidArg("body", "unknown field %s", name)
	}
	return invalidArg("body", "cannot be decoded as JSON")
}

func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "map[string]string":
		return "an object of strings"
	case "[]string":
		return "an array of strings"
	case "api.WriteRequest", "api.PatchRequest", "api.CopyRequest", "api.MigrationRequest":
		return "a JSON object"
	}
	return "of type " + goType
}
