// Package clienttest serves an in-memory imitation of the secretgate HTTP API
// for unit tests of API clients (sdk/client and the CLI). It follows the
// routes, shapes, status codes, ETag/If-Match and error envelope of
// docs/api.md and enforces a real policy.Policy, but it is not the gateway: no
// backends, no audit, no persistence. End-to-end tests use the real binary.
package clienttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretgate/secretgate/policy"
	"github.com/secretgate/secretgate/sdk"
)

// Tokens of the subjects every Server knows. Each is bound on project
// "default" and "payments" with the role of its name; "narrow" is an editor
// and reader of "stripe-*" in "payments" only.
const (
	AdminToken  = "sg_test_admin"
	EditorToken = "sg_test_editor"
	ReaderToken = "sg_test_reader"
	ViewerToken = "sg_test_viewer"
	NarrowToken = "sg_test_narrow"
)

// Server is the fake API. Its zero value is not usable; call Start.
type Server struct {
	*httptest.Server
	pol *policy.Policy

	mu          sync.Mutex
	secrets     map[string]*stored // project + "/" + name
	now         func() time.Time
	unavailable bool
	requests    []Recorded
}

// Recorded is what the fake saw of one request (headers only, never bodies).
type Recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
}

type stored struct {
	created  time.Time
	labels   map[string]string
	versions []version // index i holds version i+1
}

type version struct {
	data    map[string]string
	created time.Time
}

// Start serves the fake on a loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	type s = policy.Subject
	subjects := []s{
		{Name: "admin", TokenSHA256: policy.HashToken(AdminToken)},
		{Name: "editor", TokenSHA256: policy.HashToken(EditorToken)},
		{Name: "reader", TokenSHA256: policy.HashToken(ReaderToken)},
		{Name: "viewer", TokenSHA256: policy.HashToken(ViewerToken)},
		{Name: "narrow", TokenSHA256: policy.HashToken(NarrowToken)},
	}
	var bindings []policy.Binding
	for _, p := range []string{"default", "payments"} {
		for _, r := range policy.Roles() {
			bindings = append(bindings, policy.Binding{Subject: r, Project: p, Role: r})
		}
	}
	bindings = append(bindings,
		policy.Binding{Subject: "narrow", Project: "payments", Role: policy.RoleEditor, Secrets: []string{"stripe-*"}},
		policy.Binding{Subject: "narrow", Project: "payments", Role: policy.RoleReader, Secrets: []string{"stripe-*"}})
	pol, err := policy.New(subjects, bindings)
	if err != nil {
		t.Fatalf("clienttest: policy: %v", err)
	}
	f := &Server{pol: pol, secrets: map[string]*stored{}, now: func() time.Time { return time.Now().UTC().Truncate(time.Second) }}
	f.Server = httptest.NewServer(f.handler())
	t.Cleanup(f.Close)
	return f
}

// SetUnavailable makes every request answer 503 backend_unavailable.
func (f *Server) SetUnavailable(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unavailable = down
}

// Requests returns what the fake has seen so far.
func (f *Server) Requests() []Recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Recorded(nil), f.requests...)
}

// Value returns the latest stored value of a key, for assertions.
func (f *Server) Value(project, name, key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[project+"/"+name]
	if !ok {
		return "", false
	}
	v, ok := s.versions[len(s.versions)-1].data[key]
	return v, ok
}

type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return e.msg }

func fail(status int, code, format string, args ...any) *apiErr {
	return &apiErr{status, code, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, e *apiErr) {
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]string{"code": e.code, "message": e.msg}})
}

type call struct {
	w       http.ResponseWriter
	r       *http.Request
	subject string
	project string
	name    string
}

func (f *Server) handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, action string, h func(*call) (int, any, *apiErr)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			f.serve(w, r, action, h)
		})
	}
	route("GET /v1/projects/{p}/secrets", policy.ActionList, f.list)
	route("POST /v1/projects/{p}/secrets", policy.ActionCreate, f.create)
	route("GET /v1/projects/{p}/secrets/{name}", policy.ActionRead, f.get)
	route("GET /v1/projects/{p}/secrets/{name}/metadata", policy.ActionList, f.describe)
	route("GET /v1/projects/{p}/secrets/{name}/versions", policy.ActionList, f.versions)
	route("PUT /v1/projects/{p}/secrets/{name}", policy.ActionUpdate, f.replace)
	route("PATCH /v1/projects/{p}/secrets/{name}", policy.ActionUpdate, f.patch)
	route("DELETE /v1/projects/{p}/secrets/{name}", policy.ActionDelete, f.delete)
	return mux
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request, action string, h func(*call) (int, any, *apiErr)) {
	rid := r.Header.Get("X-Request-Id")
	if rid == "" {
		rid = "fake-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	w.Header().Set("X-Request-Id", rid)
	f.mu.Lock()
	f.requests = append(f.requests, Recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
	down := f.unavailable
	f.mu.Unlock()

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	subj, authed := f.pol.Authenticate(token)
	if !ok || !authed {
		writeErr(w, fail(http.StatusUnauthorized, "unauthenticated", "missing or unknown bearer token"))
		return
	}
	c := &call{w: w, r: r, subject: subj.Name, project: r.PathValue("p"), name: r.PathValue("name")}
	if err := sdk.ValidateProject(c.project); err != nil {
		writeErr(w, fail(http.StatusBadRequest, "invalid_argument", "%v", err))
		return
	}
	if !f.pol.HasAnyBinding(c.subject, c.project) {
		writeErr(w, fail(http.StatusNotFound, "not_found", "project %q not found", c.project))
		return
	}
	if c.name != "" {
		if err := sdk.ValidateName(c.name); err != nil {
			writeErr(w, fail(http.StatusBadRequest, "invalid_argument", "%v", err))
			return
		}
	}
	if action != policy.ActionCreate {
		if d := f.pol.Decide(c.subject, c.project, action, c.name); !d.Allowed {
			if action != policy.ActionList && c.name != "" && !f.pol.CanSee(c.subject, c.project, c.name) {
				// A name the caller cannot even list does not exist for it.
				writeErr(w, fail(http.StatusNotFound, "not_found", "secret %q not found in project %q", c.name, c.project))
				return
			}
			writeErr(w, fail(http.StatusForbidden, "permission_denied", "%s on %q in project %q: %s", action, c.name, c.project, d.Reason))
			return
		}
	}
	if down {
		writeErr(w, fail(http.StatusServiceUnavailable, "backend_unavailable", "backend of project %q is unavailable", c.project))
		return
	}
	status, body, apiE := h(c)
	if apiE != nil {
		writeErr(w, apiE)
		return
	}
	if m, ok := body.(map[string]any); ok {
		if v, ok := m["version"].(int64); ok {
			w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(v, 10)))
		}
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func (c *call) decode(v any) *apiErr {
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 1<<20))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fail(http.StatusRequestEntityTooLarge, "payload_too_large", "request body is larger than 1 MiB")
	}
	if err != nil {
		return fail(http.StatusBadRequest, "invalid_argument", "body: cannot read")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, "invalid_argument", "body: must be a JSON object of the documented shape")
	}
	return nil
}

// ifMatch parses If-Match: a quoted (or bare) version; 0 when absent.
func (c *call) ifMatch() (int64, *apiErr) {
	h := c.r.Header.Get("If-Match")
	if h == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || v <= 0 {
		return 0, fail(http.StatusBadRequest, "invalid_argument", "If-Match: must be a version number")
	}
	return v, nil
}

func metaJSON(project, name string, s *stored, v int) map[string]any {
	labels := s.labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"project": project, "name": name, "keys": sdk.SortedKeys(s.versions[v-1].data),
		"version": int64(v), "labels": labels,
		"created_at": s.created.Format(time.RFC3339), "updated_at": s.versions[v-1].created.Format(time.RFC3339),
	}
}

func (f *Server) lookup(c *call) (*stored, *apiErr) {
	s, ok := f.secrets[c.project+"/"+c.name]
	if !ok {
		return nil, fail(http.StatusNotFound, "not_found", "secret %q not found in project %q", c.name, c.project)
	}
	return s, nil
}

func (f *Server) list(c *call) (int, any, *apiErr) {
	q := c.r.URL.Query()
	size := 0
	if ps := q.Get("page_size"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 0 || n > sdk.MaxPageSize {
			return 0, nil, fail(http.StatusBadRequest, "invalid_argument", "page_size: must be between 0 and %d", sdk.MaxPageSize)
		}
		size = n
	}
	size = sdk.PageSize(size)
	prefix, after := q.Get("prefix"), q.Get("page_token")
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for k := range f.secrets {
		p, n, _ := strings.Cut(k, "/")
		if p == c.project && strings.HasPrefix(n, prefix) && n > after && f.pol.CanSee(c.subject, c.project, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	next := ""
	if len(names) > size {
		names = names[:size]
		next = names[size-1]
	}
	out := []map[string]any{}
	for _, n := range names {
		s := f.secrets[c.project+"/"+n]
		out = append(out, metaJSON(c.project, n, s, len(s.versions)))
	}
	return http.StatusOK, map[string]any{"secrets": out, "next_page_token": next}, nil
}

func (f *Server) get(c *call) (int, any, *apiErr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, e := f.lookup(c)
	if e != nil {
		return 0, nil, e
	}
	v := len(s.versions)
	if vs := c.r.URL.Query().Get("version"); vs != "" {
		n, err := strconv.Atoi(vs)
		if err != nil || n <= 0 {
			return 0, nil, fail(http.StatusBadRequest, "invalid_argument", "version: must be a positive integer")
		}
		if n > v {
			return 0, nil, fail(http.StatusNotFound, "not_found", "version %d of secret %q not found", n, c.name)
		}
		v = n
	}
	m := metaJSON(c.project, c.name, s, v)
	m["data"] = sdk.CloneData(s.versions[v-1].data)
	return http.StatusOK, m, nil
}

func (f *Server) describe(c *call) (int, any, *apiErr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, e := f.lookup(c)
	if e != nil {
		return 0, nil, e
	}
	return http.StatusOK, metaJSON(c.project, c.name, s, len(s.versions)), nil
}

func (f *Server) versions(c *call) (int, any, *apiErr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, e := f.lookup(c)
	if e != nil {
		return 0, nil, e
	}
	out := []map[string]any{}
	for i, v := range s.versions {
		out = append(out, map[string]any{"version": i + 1, "created_at": v.created.Format(time.RFC3339)})
	}
	return http.StatusOK, map[string]any{"versions": out}, nil
}

type writeBody struct {
	Name   string            `json:"name"`
	Data   map[string]string `json:"data"`
	Labels map[string]string `json:"labels"`
}

func validateWrite(data, labels map[string]string) *apiErr {
	if err := sdk.ValidateData(data); err != nil {
		return fail(http.StatusBadRequest, "invalid_argument", "%v", err)
	}
	if err := sdk.ValidateLabels(labels); err != nil {
		return fail(http.StatusBadRequest, "invalid_argument", "%v", err)
	}
	return nil
}

func (f *Server) create(c *call) (int, any, *apiErr) {
	var b writeBody
	if e := c.decode(&b); e != nil {
		return 0, nil, e
	}
	if err := sdk.ValidateName(b.Name); err != nil {
		return 0, nil, fail(http.StatusBadRequest, "invalid_argument", "%v", err)
	}
	c.name = b.Name
	if d := f.pol.Decide(c.subject, c.project, policy.ActionCreate, c.name); !d.Allowed {
		return 0, nil, fail(http.StatusForbidden, "permission_denied", "%s on %q: %s", policy.ActionCreate, c.name, d.Reason)
	}
	if e := validateWrite(b.Data, b.Labels); e != nil {
		return 0, nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, exists := f.secrets[c.project+"/"+c.name]; exists {
		return 0, nil, fail(http.StatusConflict, "already_exists", "secret %q already exists in project %q", c.name, c.project)
	}
	now := f.now()
	s := &stored{created: now, labels: b.Labels, versions: []version{{data: b.Data, created: now}}}
	f.secrets[c.project+"/"+c.name] = s
	return http.StatusCreated, metaJSON(c.project, c.name, s, 1), nil
}

// write appends a version computed by next from the latest data, under the
// lock, honouring If-Match.
func (f *Server) write(c *call, labels map[string]string, next func(old map[string]string) map[string]string) (int, any, *apiErr) {
	want, e := c.ifMatch()
	if e != nil {
		return 0, nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, e := f.matching(c, want)
	if e != nil {
		return 0, nil, e
	}
	data := next(s.versions[len(s.versions)-1].data)
	if e := validateWrite(data, labels); e != nil {
		return 0, nil, e
	}
	if labels != nil {
		s.labels = labels
	}
	s.versions = append(s.versions, version{data: data, created: f.now()})
	return http.StatusOK, metaJSON(c.project, c.name, s, len(s.versions)), nil
}

// matching finds the secret and checks If-Match (want 0: no check); the
// caller holds f.mu.
func (f *Server) matching(c *call, want int64) (*stored, *apiErr) {
	s, e := f.lookup(c)
	if e != nil {
		return nil, e
	}
	if want > 0 && int(want) != len(s.versions) {
		return nil, fail(http.StatusPreconditionFailed, "version_mismatch", "secret %q: expected version %d, current is %d", c.name, want, len(s.versions))
	}
	return s, nil
}

func (f *Server) replace(c *call) (int, any, *apiErr) {
	var b writeBody
	if e := c.decode(&b); e != nil {
		return 0, nil, e
	}
	if b.Name != "" && b.Name != c.name {
		return 0, nil, fail(http.StatusBadRequest, "invalid_argument", "name: must match the path")
	}
	return f.write(c, b.Labels, func(map[string]string) map[string]string { return b.Data })
}

func (f *Server) patch(c *call) (int, any, *apiErr) {
	var b struct {
		Set    map[string]string `json:"set"`
		Unset  []string          `json:"unset"`
		Labels map[string]string `json:"labels"`
	}
	if e := c.decode(&b); e != nil {
		return 0, nil, e
	}
	if len(b.Set) == 0 && len(b.Unset) == 0 && b.Labels == nil {
		return 0, nil, fail(http.StatusBadRequest, "invalid_argument", "set: a patch must set or unset at least one key, or give labels")
	}
	return f.write(c, b.Labels, func(old map[string]string) map[string]string {
		data := sdk.CloneData(old)
		for k, v := range b.Set {
			data[k] = v
		}
		for _, k := range b.Unset {
			delete(data, k)
		}
		return data
	})
}

func (f *Server) delete(c *call) (int, any, *apiErr) {
	want, e := c.ifMatch()
	if e != nil {
		return 0, nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, e := f.matching(c, want); e != nil {
		return 0, nil, e
	}
	delete(f.secrets, c.project+"/"+c.name)
	return http.StatusNoContent, nil, nil
}
