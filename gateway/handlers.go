package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
)

// patchAttempts bounds the read + check-and-set loop of PATCH when another
// writer (another gateway, or a PUT) keeps changing the secret.
const patchAttempts = 16

// metaJSON is the metadata shape of DESIGN.md.
type metaJSON struct {
	Project string            `json:"project"`
	Name    string            `json:"name"`
	Keys    []string          `json:"keys"`
	Version int64             `json:"version"`
	Labels  map[string]string `json:"labels"`
	// Times are RFC 3339 in UTC, left out when the backend keeps none
	// (so that clients decoding into a time type never meet "").
	CreatedAt string `json:"created_at,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

type secretJSON struct {
	metaJSON
	Data map[string]string `json:"data"`
}

type listJSON struct {
	Secrets       []metaJSON `json:"secrets"`
	NextPageToken string     `json:"next_page_token"`
}

type versionJSON struct {
	Version   int64  `json:"version"`
	CreatedAt string `json:"created_at,omitempty"`
}

type versionsJSON struct {
	Versions []versionJSON `json:"versions"`
}

// writeBody is the body of POST (name required) and PUT (name optional).
type writeBody struct {
	Name   string            `json:"name"`
	Data   map[string]string `json:"data"`
	Labels map[string]string `json:"labels"`
}

type patchBody struct {
	Set   map[string]string `json:"set"`
	Unset []string          `json:"unset"`
	// Labels, when present, replaces the secret's labels ({} clears
	// them); absent keeps them.
	Labels map[string]string `json:"labels"`
}

func toMetaJSON(m sdk.Meta) metaJSON {
	keys := m.Keys
	if keys == nil {
		keys = []string{}
	}
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return metaJSON{
		Project: m.Project, Name: m.Name, Keys: keys, Version: m.Version, Labels: labels,
		CreatedAt: formatTime(m.CreatedAt), UpdatedAt: formatTime(m.UpdatedAt),
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// request is the per-request state of a secret route.
type request struct {
	s       *Server
	c       *gin.Context
	subject string
	action  string
	route   Route
	secret  string
	version int64
}

func (s *Server) req(c *gin.Context) *request {
	rt, _ := c.Get(ctxKeyRoute)
	r, _ := rt.(Route)
	return &request{s: s, c: c, subject: c.GetString(ctxKeySubject), action: c.GetString(ctxKeyAction), route: r}
}

func (r *request) record(phase, outcome string) AuditRecord {
	return AuditRecord{
		RequestID: requestID(r.c), ClientRequestID: r.c.GetString(ctxKeyClientRequestID), Subject: r.subject, Project: r.route.Project, Action: r.action,
		Secret: r.secret, Phase: phase, Outcome: outcome, Backend: r.route.Backend, Version: r.version,
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

// ok audits a successful outcome; false means the answer was already the
// 503 of a failed audit write.
func (r *request) ok() bool {
	if err := r.s.audit.Write(r.record(PhaseOutcome, "ok")); err != nil {
		r.s.log.Error("audit write failed", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return false
	}
	return true
}

// intent audits a mutation before the backend is touched; on failure the
// request ends with 503 and the backend is never called.
func (r *request) intent() bool {
	if err := r.s.audit.Write(r.record(PhaseIntent, "")); err != nil {
		r.s.log.Error("audit write failed, refusing the change", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return false
	}
	return true
}

func auditUnavailable(err error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: CodeBackendUnavailable,
		Message: "the audit log cannot be written, so the request was refused", cause: err}
}

// authenticate resolves the bearer token to a subject.
func (s *Server) authenticate(c *gin.Context) {
	r := &request{s: s, c: c, action: c.GetString(ctxKeyAction)}
	hs := c.Request.Header.Values("Authorization")
	if len(hs) > 1 {
		// Proxies and servers disagree on which of two wins; refuse to guess.
		s.failAuth(r, newAPIError(http.StatusBadRequest, CodeInvalidArgument, "invalid Authorization: the header was sent %d times; send it once", len(hs)))
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
		s.failAuth(r, newAPIError(http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token in the Authorization header"))
		return
	}
	subject, ok := s.authz.Authenticate(token)
	if !ok || subject == "" {
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, CodeUnauthenticated, "invalid bearer token"))
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
		r.fail(newAPIError(http.StatusNotFound, CodeNotFound, "project %q not found", project))
		return
	}
	c.Set(ctxKeyRoute, rt)
	c.Next()
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
	if r.s.authz.Allowed(r.subject, r.route.Project, action, r.secret) {
		return true
	}
	r.fail(newAPIError(http.StatusForbidden, CodePermissionDenied, "%s on secret %q in project %q is not granted to %q", action, r.secret, r.route.Project, r.subject))
	return false
}

// writable refuses writes while the project is migrating.
func (r *request) writable() bool {
	if !r.route.ReadOnly {
		return true
	}
	// 409, not 503: retrying soon will not help, and no write is ever
	// accepted into the old backend only to be lost by the switch.
	r.fail(newAPIError(http.StatusConflict, CodeMigrationInProgress, "project %q is being migrated to another backend; writes are refused until the migration ends", r.route.Project))
	return false
}

// backend returns the project's backend client, or answers 503.
func (r *request) backend() (sdk.Backend, bool) {
	b, err := r.s.backends.Backend(r.route.Backend)
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
// no backend, or no intent record, so the backend is never touched).
func (r *request) writeBackend() (sdk.Backend, context.Context, context.CancelFunc, bool) {
	b, ok := r.backend()
	if !ok || !r.intent() {
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
		return newAPIError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body is larger than %d bytes", MaxBodyBytes)
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
	case "gateway.writeBody", "gateway.patchBody":
		return "a JSON object"
	}
	return "of type " + goType
}

// --- handlers ---

func (s *Server) list(c *gin.Context) {
	r := s.req(c)
	q := c.Request.URL.Query()
	req := sdk.ListRequest{Project: r.route.Project, Prefix: q.Get("prefix")}
	if ps := q.Get("page_size"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > sdk.MaxPageSize {
			r.fail(invalidArg("page_size", "must be an integer from 1 to %d", sdk.MaxPageSize))
			return
		}
		req.PageSize = n
	}
	if err := sdk.ValidateList(req); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return
	}
	cur := pageCursor{Backend: r.route.Backend}
	if tok := q.Get("page_token"); tok != "" {
		var err error
		if cur, err = s.pages.open(tok, r.subject, r.route.Project, req.Prefix); err != nil {
			r.fail(mapBackendError(err, opContext{}))
			return
		}
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	metas, next, more, err := s.visiblePage(ctx, b, r, req, cur)
	if err != nil {
		r.backendErr(err)
		return
	}
	out := listJSON{Secrets: make([]metaJSON, 0, len(metas))}
	for _, m := range metas {
		out.Secrets = append(out.Secrets, toMetaJSON(m))
	}
	if more {
		if out.NextPageToken, err = s.pages.seal(next, r.subject, r.route.Project, req.Prefix); err != nil {
			r.backendErr(err)
			return
		}
	}
	if r.ok() {
		c.JSON(http.StatusOK, out)
	}
}

func (s *Server) get(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	if v := c.Query("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			r.fail(invalidArg("version", "must be a positive integer"))
			return
		}
		r.version = n
	}
	if !r.allowed(ActionRead) {
		return
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	sec, err := b.Read(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret, Version: r.version})
	if err != nil {
		r.backendErr(err)
		return
	}
	r.version = sec.Version
	if !r.ok() {
		return
	}
	setETag(c, sec.Version)
	data := sec.Data
	if data == nil {
		data = map[string]string{}
	}
	c.JSON(http.StatusOK, secretJSON{metaJSON: toMetaJSON(sec.Meta), Data: data})
}

func (s *Server) metadata(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() || !r.allowed(ActionList) {
		return
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Describe(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret})
	if err != nil {
		r.backendErr(err)
		return
	}
	r.version = m.Version
	if r.ok() {
		setETag(c, m.Version)
		c.JSON(http.StatusOK, toMetaJSON(m))
	}
}

func (s *Server) versions(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() || !r.allowed(ActionList) {
		return
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	vs, err := b.Versions(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret})
	if err != nil {
		r.backendErr(err)
		return
	}
	out := versionsJSON{Versions: make([]versionJSON, 0, len(vs))}
	for _, v := range vs {
		out.Versions = append(out.Versions, versionJSON{Version: v.Version, CreatedAt: formatTime(v.CreatedAt)})
	}
	if r.ok() {
		c.JSON(http.StatusOK, out)
	}
}

// validateWrite checks data and labels, naming fields.
func (r *request) validateWrite(body writeBody) bool {
	if body.Data == nil {
		r.fail(invalidArg("data", "is required: an object of key/value strings"))
		return false
	}
	if err := sdk.ValidateData(body.Data); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	if err := sdk.ValidateLabels(body.Labels); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	return true
}

// written audits and answers a successful write.
func (r *request) written(m sdk.Meta, status int) {
	r.version = m.Version
	if !r.ok() {
		return
	}
	setETag(r.c, m.Version)
	if status == http.StatusCreated {
		r.c.Header("Location", "/v1/projects/"+m.Project+"/secrets/"+m.Name)
	}
	r.c.JSON(status, toMetaJSON(m))
}

func (s *Server) create(c *gin.Context) {
	r := s.req(c)
	var body writeBody
	if !r.decodeJSON(&body) {
		return
	}
	if body.Name == "" {
		r.fail(invalidArg("name", "is required"))
		return
	}
	if err := sdk.ValidateName(body.Name); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return
	}
	r.secret = body.Name
	if !r.validateWrite(body) || !r.allowed(ActionCreate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Write(ctx, sdk.WriteRequest{Project: r.route.Project, Name: r.secret, Data: body.Data, Labels: body.Labels, Mode: sdk.WriteCreate})
	if err != nil {
		r.backendErr(err)
		return
	}
	r.written(m, http.StatusCreated)
}

func (s *Server) replace(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	var body writeBody
	if !r.decodeJSON(&body) {
		return
	}
	if body.Name != "" && body.Name != r.secret {
		r.fail(invalidArg("name", "differs from the name in the path"))
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.validateWrite(body) || !r.allowed(ActionUpdate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Write(ctx, sdk.WriteRequest{Project: r.route.Project, Name: r.secret, Data: body.Data, Labels: body.Labels, Mode: sdk.WriteReplace, ExpectedVersion: expected})
	if err != nil {
		r.backendErr(err)
		return
	}
	r.written(m, http.StatusOK)
}

func (s *Server) patch(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	var body patchBody
	if !r.decodeJSON(&body) {
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.validatePatch(body) || !r.allowed(ActionUpdate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	// Patches of one secret through this gateway take turns, so they do
	// not waste each other's writes; check-and-set still guards against
	// every other writer.
	unlock, err := s.lockSecret(ctx, r.route.Project, r.secret)
	if err != nil {
		r.backendErr(err)
		return
	}
	defer unlock()
	m, err := s.patchLoop(ctx, r, b, body, expected)
	if err != nil {
		r.backendErr(err)
		return
	}
	r.written(m, http.StatusOK)
}

func (r *request) validatePatch(body patchBody) bool {
	if len(body.Set) == 0 && len(body.Unset) == 0 && body.Labels == nil {
		r.fail(invalidArg("set", "a patch needs at least one key in set or unset, or labels"))
		return false
	}
	if err := sdk.ValidateLabels(body.Labels); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	for _, k := range sortedKeys(body.Set) {
		if err := sdk.ValidateKey(k); err != nil {
			var fe *sdk.FieldError
			errors.As(err, &fe)
			r.fail(invalidArg("set", "%s", fe.Reason))
			return false
		}
	}
	for _, k := range body.Unset {
		if err := sdk.ValidateKey(k); err != nil {
			var fe *sdk.FieldError
			errors.As(err, &fe)
			r.fail(invalidArg("unset", "%s", fe.Reason))
			return false
		}
		if _, both := body.Set[k]; both {
			r.fail(invalidArg("unset", "key %q is also in set", k))
			return false
		}
	}
	return true
}

// patchLoop reads the latest version, applies the patch and writes it with
// check-and-set, retrying with jittered backoff when another writer got
// there first. With If-Match there is no retry: a mismatch is the answer.
func (s *Server) patchLoop(ctx context.Context, r *request, b sdk.Backend, body patchBody, expected int64) (sdk.Meta, error) {
	ref := sdk.Ref{Project: r.route.Project, Name: r.secret}
	for attempt := 0; attempt < patchAttempts; attempt++ {
		cur, err := b.Read(ctx, ref)
		if err != nil {
			return sdk.Meta{}, err
		}
		if expected > 0 && cur.Version != expected {
			return sdk.Meta{}, sdk.VersionMismatch(ref.Project, ref.Name, expected, cur.Version)
		}
		data := sdk.CloneData(cur.Data)
		if data == nil {
			data = map[string]string{}
		}
		for k, v := range body.Set {
			data[k] = v
		}
		for _, k := range body.Unset {
			delete(data, k)
		}
		if len(data) == 0 {
			return sdk.Meta{}, &apiError{Status: http.StatusBadRequest, Code: CodeInvalidArgument,
				Message: "invalid unset: the patch would remove every key; delete the secret instead"}
		}
		if err := sdk.ValidateData(data); err != nil {
			// The merged map holds stored values the caller may not be
			// allowed to read: the answer names the limits, never a size
			// or count computed from them (one bit remains: fits or not).
			return sdk.Meta{}, &apiError{Status: http.StatusBadRequest, Code: CodeInvalidArgument,
				Message: fmt.Sprintf("invalid set: the patched secret would exceed the limits of a secret (at most %d keys and %d bytes of JSON); nothing was changed", sdk.MaxKeys, sdk.MaxPayloadBytes)}
		}
		m, err := b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data, Labels: body.Labels, Mode: sdk.WriteReplace, ExpectedVersion: cur.Version})
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, sdk.ErrVersionMismatch) || expected > 0 {
			return sdk.Meta{}, err
		}
		if err := sleepJitter(ctx, attempt); err != nil {
			return sdk.Meta{}, err
		}
	}
	return sdk.Meta{}, &apiError{Status: http.StatusPreconditionFailed, Code: CodeVersionMismatch,
		Message: fmt.Sprintf("secret %q kept changing during %d patch attempts; retry", r.secret, patchAttempts)}
}

// sleepJitter waits a random time up to 2ms * 2^attempt (capped at 250ms).
func sleepJitter(ctx context.Context, attempt int) error {
	return sdk.Sleep(ctx, sdk.Jitter(min(2*time.Millisecond<<min(attempt, 8), 250*time.Millisecond)))
}

// lockSecret takes one of 256 striped locks for a secret, honouring ctx.
func (s *Server) lockSecret(ctx context.Context, project, name string) (func(), error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(project))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(name))
	l := s.locks[h.Sum32()%uint32(len(s.locks))]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for concurrent patches: %w", ctx.Err())
	}
}

func (s *Server) delete(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.allowed(ActionDelete) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	if err := b.Delete(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret, Version: expected}); err != nil {
		r.backendErr(err)
		return
	}
	r.version = expected
	if r.ok() {
		c.Status(http.StatusNoContent)
	}
}

func sortStrings(s []string) { sort.Strings(s) }
