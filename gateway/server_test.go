package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/secretgate/secretgate/sdk/api"
	"github.com/stretchr/testify/require"
)

var errAuditTest = errors.New("audit sink is broken")

const canary = "CANARY-value-7f3a9"

type harness struct {
	srv   *Server
	mem   *memBackend
	audit *memAuditor
	logs  *bytes.Buffer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	mem := newMemBackend()
	audit := &memAuditor{}
	logs := &bytes.Buffer{}
	cfg := &Config{Projects: []ProjectConfig{{Name: "payments", Backend: "mem"}, {Name: "other", Backend: "mem"}}}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete}
	authz := fakeAuthz{
		tokens: map[string]string{"t-admin": "admin", "t-editor": "editor", "t-reader": "reader", "t-stripe": "stripe"},
		grants: map[string]fakeGrant{
			"admin/payments":  {actions: all},
			"admin/other":     {actions: all},
			"editor/payments": {actions: []string{ActionList, ActionCreate, ActionUpdate, ActionDelete}},
			"reader/payments": {actions: []string{ActionList, ActionRead}},
			"stripe/payments": {actions: all, prefix: "stripe-"},
		},
	}
	srv, err := New(context.Background(), cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Authorizer: authz, Auditor: audit,
		Backends: &memBackends{m: map[string]*memBackend{"mem": mem}},
	})
	require.NoError(t, err)
	return &harness{srv: srv, mem: mem, audit: audit, logs: logs}
}

type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func (h *harness) do(t *testing.T, method, path, token string, body any, hdrs ...string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	if w.Code >= 300 || method != http.MethodGet {
		require.NotContains(t, w.Body.String(), canary, "a value leaked into a response of %s %s", method, path)
	}
	return resp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}

func errCode(t *testing.T, r resp) (string, string) {
	t.Helper()
	var e api.ErrorBody
	require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
	return e.Error.Code, e.Error.Message
}

const base = "/v1/projects/payments/secrets"

func (h *harness) create(t *testing.T, name string, data map[string]string) {
	t.Helper()
	r := h.do(t, "POST", base, "t-admin", map[string]any{"name": name, "data": data})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
}

func TestErrorCodes(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"password": canary})
	big := strings.Repeat("x", MaxBodyBytes+10)
	tests := []struct {
		name, method, path, token string
		body                      any
		hdrs                      []string
		status                    int
		code, field               string
	}{
		{"no token", "GET", base + "/db", "", nil, nil, 401, api.CodeUnauthenticated, ""},
		{"bad token", "GET", base + "/db", "nope", nil, nil, 401, api.CodeUnauthenticated, ""},
		{"no binding", "GET", "/v1/projects/other/secrets/db", "t-editor", nil, nil, 404, api.CodeNotFound, ""},
		{"unknown project", "GET", "/v1/projects/nowhere/secrets", "t-admin", nil, nil, 404, api.CodeNotFound, ""},
		{"bad project", "GET", "/v1/projects/Bad_P/secrets", "t-admin", nil, nil, 400, api.CodeInvalidArgument, "project"},
		{"editor reads", "GET", base + "/db", "t-editor", nil, nil, 403, api.CodePermissionDenied, ""},
		{"missing", "GET", base + "/nope", "t-admin", nil, nil, 404, api.CodeNotFound, ""},
		{"missing version", "GET", base + "/db?version=9", "t-admin", nil, nil, 404, api.CodeNotFound, ""},
		{"bad version", "GET", base + "/db?version=x", "t-admin", nil, nil, 400, api.CodeInvalidArgument, "version"},
		{"exists", "POST", base, "t-admin", map[string]any{"name": "db", "data": map[string]string{"a": "b"}}, nil, 409, api.CodeAlreadyExists, ""},
		{"if-match", "PUT", base + "/db", "t-admin", map[string]any{"data": map[string]string{"a": canary}}, []string{"If-Match", `"7"`}, 412, api.CodeVersionMismatch, ""},
		{"bad if-match", "PUT", base + "/db", "t-admin", map[string]any{"data": map[string]string{"a": "b"}}, []string{"If-Match", "abc"}, 400, api.CodeInvalidArgument, "If-Match"},
		{"too large", "POST", base, "t-admin", `{"name":"x","data":{"a":"` + big + `"}}`, nil, 413, api.CodePayloadTooLarge, ""},
		{"unknown field", "POST", base, "t-admin", `{"name":"x","data":{"a":"b"},"valu":"` + canary + `"}`, nil, 400, api.CodeInvalidArgument, "body"},
		{"value not string", "POST", base, "t-admin", `{"name":"x","data":{"a":12345}}`, nil, 400, api.CodeInvalidArgument, "data"},
		{"bad json", "POST", base, "t-admin", `{"name":"x","data":{"a":"` + canary + `"`, nil, 400, api.CodeInvalidArgument, "body"},
		{"two objects", "POST", base, "t-admin", `{"name":"x","data":{"a":"b"}} {}`, nil, 400, api.CodeInvalidArgument, "body"},
		{"no name", "POST", base, "t-admin", map[string]any{"data": map[string]string{"a": "b"}}, nil, 400, api.CodeInvalidArgument, "name"},
		{"bad name", "POST", base, "t-admin", map[string]any{"name": "a/b", "data": map[string]string{"a": "b"}}, nil, 400, api.CodeInvalidArgument, "name"},
		{"no data", "POST", base, "t-admin", map[string]any{"name": "x"}, nil, 400, api.CodeInvalidArgument, "data"},
		{"bad key", "POST", base, "t-admin", map[string]any{"name": "x", "data": map[string]string{"a b": canary}}, nil, 400, api.CodeInvalidArgument, "data"},
		{"bad label", "POST", base, "t-admin", map[string]any{"name": "x", "data": map[string]string{"a": "b"}, "labels": map[string]string{"Bad": "x"}}, nil, 400, api.CodeInvalidArgument, "labels"},
		{"put name mismatch", "PUT", base + "/db", "t-admin", map[string]any{"name": "other", "data": map[string]string{"a": "b"}}, nil, 400, api.CodeInvalidArgument, "name"},
		{"put missing", "PUT", base + "/nope", "t-admin", map[string]any{"data": map[string]string{"a": "b"}}, nil, 404, api.CodeNotFound, ""},
		{"empty patch", "PATCH", base + "/db", "t-admin", map[string]any{}, nil, 400, api.CodeInvalidArgument, "set"},
		{"patch all away", "PATCH", base + "/db", "t-admin", map[string]any{"unset": []string{"password"}}, nil, 400, api.CodeInvalidArgument, "unset"},
		{"patch both", "PATCH", base + "/db", "t-admin", map[string]any{"set": map[string]string{"k": canary}, "unset": []string{"k"}}, nil, 400, api.CodeInvalidArgument, "unset"},
		{"page size", "GET", base + "?page_size=0", "t-admin", nil, nil, 400, api.CodeInvalidArgument, "page_size"},
		{"prefix", "GET", base + "?prefix=a/b", "t-admin", nil, nil, 400, api.CodeInvalidArgument, "prefix"},
		{"glob narrowing", "GET", base + "/db/metadata", "t-stripe", nil, nil, 403, api.CodePermissionDenied, ""},
		{"no route", "GET", "/v2/x", "t-admin", nil, nil, 404, api.CodeNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, tc.method, tc.path, tc.token, tc.body, tc.hdrs...)
			require.Equal(t, tc.status, r.code, "%s", r.body)
			code, msg := errCode(t, r)
			require.Equal(t, tc.code, code)
			if tc.field != "" {
				require.Contains(t, msg, tc.field)
			}
			require.NotEmpty(t, r.hdr.Get("X-Request-Id"))
		})
	}
	// Nothing above changed the secret.
	r := h.do(t, "GET", base+"/db", "t-admin", nil)
	require.Equal(t, `"1"`, r.hdr.Get("ETag"))
}

func TestRoundTripAndShapes(t *testing.T) {
	h := newHarness(t)
	r := h.do(t, "POST", base, "t-editor", map[string]any{"name": "db", "data": map[string]string{"user": "u", "password": "p"}, "labels": map[string]string{"env": "prod"}})
	require.Equal(t, 201, r.code, "%s", r.body)
	require.Equal(t, `"1"`, r.hdr.Get("ETag"))
	require.Equal(t, base+"/db", r.hdr.Get("Location"))
	var meta map[string]any
	require.NoError(t, json.Unmarshal(r.body, &meta))
	require.NotContains(t, meta, "data")
	require.Equal(t, []any{"password", "user"}, meta["keys"])

	r = h.do(t, "GET", base+"/db", "t-reader", nil)
	require.Equal(t, 200, r.code)
	var sec struct {
		Data    map[string]string `json:"data"`
		Version int64             `json:"version"`
		Labels  map[string]string `json:"labels"`
	}
	require.NoError(t, json.Unmarshal(r.body, &sec))
	require.Equal(t, map[string]string{"user": "u", "password": "p"}, sec.Data)
	require.Equal(t, map[string]string{"env": "prod"}, sec.Labels)

	r = h.do(t, "PATCH", base+"/db", "t-editor", map[string]any{"set": map[string]string{"password": "p2"}}, "If-Match", `"1"`)
	require.Equal(t, 200, r.code, "%s", r.body)
	require.Equal(t, `"2"`, r.hdr.Get("ETag"))
	r = h.do(t, "PUT", base+"/db", "t-editor", map[string]any{"data": map[string]string{"only": "x"}}, "If-Match", `"2"`)
	require.Equal(t, 200, r.code, "%s", r.body)

	r = h.do(t, "GET", base+"/db?version=2", "t-reader", nil)
	require.Equal(t, 200, r.code)
	require.NoError(t, json.Unmarshal(r.body, &sec))
	require.Equal(t, map[string]string{"user": "u", "password": "p2"}, sec.Data)
	require.Equal(t, int64(2), sec.Version)

	r = h.do(t, "GET", base+"/db/versions", "t-editor", nil)
	require.Equal(t, 200, r.code)
	var vs api.VersionList
	require.NoError(t, json.Unmarshal(r.body, &vs))
	require.Len(t, vs.Versions, 3)

	r = h.do(t, "GET", base+"/db/metadata", "t-editor", nil)
	require.Equal(t, 200, r.code)
	require.Equal(t, `"3"`, r.hdr.Get("ETag"))

	r = h.do(t, "DELETE", base+"/db", "t-editor", nil, "If-Match", `"2"`)
	require.Equal(t, 412, r.code)
	r = h.do(t, "DELETE", base+"/db", "t-editor", nil, "If-Match", `"3"`)
	require.Equal(t, 204, r.code)
	r = h.do(t, "GET", base+"/db/metadata", "t-editor", nil)
	require.Equal(t, 404, r.code)
}

func TestListFiltersAndPages(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"a1", "stripe-a", "stripe-b", "z9"} {
		h.create(t, n, map[string]string{"k": canary})
	}
	var page api.SecretList
	r := h.do(t, "GET", base, "t-stripe", nil)
	require.Equal(t, 200, r.code)
	require.NoError(t, json.Unmarshal(r.body, &page))
	var names []string
	for _, m := range page.Secrets {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"stripe-a", "stripe-b"}, names)

	var all []string
	tok := ""
	for i := 0; i < 10; i++ {
		r = h.do(t, "GET", base+"?page_size=3&page_token="+tok, "t-admin", nil)
		require.Equal(t, 200, r.code)
		page = api.SecretList{}
		require.NoError(t, json.Unmarshal(r.body, &page))
		for _, m := range page.Secrets {
			all = append(all, m.Name)
		}
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	require.Equal(t, []string{"a1", "stripe-a", "stripe-b", "z9"}, all)
}

func TestConcurrentPatchesAllSurvive(t *testing.T) {
	h := newHarness(t)
	h.create(t, "cfg", map[string]string{"base": "x"})
	const n = 50
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			body := fmt.Sprintf(`{"set":{"k%d":"v%d"}}`, i, i)
			req := httptest.NewRequest("PATCH", base+"/cfg", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer t-editor")
			h.srv.Handler().ServeHTTP(w, req)
			codes[i] = w.Code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		require.Equal(t, 200, c, "patch %d", i)
	}
	s, err := h.mem.Read(context.Background(), refOf("payments", "cfg"))
	require.NoError(t, err)
	require.Equal(t, int64(1+n), s.Version)
	require.Len(t, s.Data, n+1)
}

func TestPatchRetriesAgainstOtherWriters(t *testing.T) {
	h := newHarness(t)
	h.create(t, "cfg", map[string]string{"base": "x"})
	// A racing writer outside the gateway's lock bumps the version between
	// the gateway's read and its write, a few times.
	racer := &racingBackend{memBackend: h.mem, races: 3}
	h.srv.backends = &memBackends{m: map[string]*memBackend{}}
	h.srv.backends = singleBackend{racer}
	r := h.do(t, "PATCH", base+"/cfg", "t-editor", map[string]any{"set": map[string]string{"k": "v"}})
	require.Equal(t, 200, r.code, "%s", r.body)
	s, err := h.mem.Read(context.Background(), refOf("payments", "cfg"))
	require.NoError(t, err)
	require.Equal(t, "v", s.Data["k"])
	require.Equal(t, int64(5), s.Version) // 1 + 3 racing writes + the patch

	racer.races = 1
	r = h.do(t, "PATCH", base+"/cfg", "t-editor", map[string]any{"set": map[string]string{"k": "w"}}, "If-Match", `"5"`)
	require.Equal(t, 412, r.code, "%s", r.body)
}

func TestAuditFailsClosed(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"a": "b"})
	before := h.mem.writes
	h.audit.failing = true
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"POST", base, map[string]any{"name": "new", "data": map[string]string{"a": canary}}},
		{"PUT", base + "/db", map[string]any{"data": map[string]string{"a": canary}}},
		{"PATCH", base + "/db", map[string]any{"set": map[string]string{"a": canary}}},
		{"DELETE", base + "/db", nil},
		{"GET", base + "/db", nil},
	} {
		r := h.do(t, tc.method, tc.path, "t-admin", tc.body)
		require.Equal(t, 503, r.code, "%s %s", tc.method, r.body)
		require.Equal(t, "1", r.hdr.Get("Retry-After"))
	}
	require.Equal(t, before, h.mem.writes, "the backend changed although the audit log failed")
	h.audit.failing = false
	r := h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"a": canary}})
	require.Equal(t, 200, r.code)
	recs := h.audit.records()
	require.GreaterOrEqual(t, len(recs), 3)
	last := recs[len(recs)-2:]
	require.Equal(t, PhaseIntent, last[0].Phase)
	require.Equal(t, PhaseOutcome, last[1].Phase)
	require.Equal(t, "ok", last[1].Outcome)
	require.Equal(t, int64(2), last[1].Version)
	require.Equal(t, last[0].RequestID, last[1].RequestID)
	b, _ := json.Marshal(recs)
	require.NotContains(t, string(b), canary)
}

func TestRequestIDs(t *testing.T) {
	h := newHarness(t)
	// The gateway always makes the id; a client's sane id is kept apart.
	r := h.do(t, "GET", base, "t-admin", nil, "X-Request-Id", "abc-123")
	id := r.hdr.Get("X-Request-Id")
	require.Len(t, id, 36)
	require.NotEqual(t, "abc-123", id)
	r = h.do(t, "GET", base, "t-admin", nil, "X-Request-Id", "bad id\twith<stuff>")
	require.Len(t, r.hdr.Get("X-Request-Id"), 36)
	r = h.do(t, "GET", base, "t-admin", nil)
	require.Len(t, r.hdr.Get("X-Request-Id"), 36)
	recs := h.audit.records()
	require.Len(t, recs, 3)
	require.Equal(t, id, recs[0].RequestID)
	require.Equal(t, "abc-123", recs[0].ClientRequestID)
	require.Empty(t, recs[1].ClientRequestID, "an insane client id is dropped")
	require.Empty(t, recs[2].ClientRequestID)
	require.NotEqual(t, recs[0].RequestID, recs[1].RequestID)
}

func TestUnavailableAndReadOnly(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"a": "b"})
	require.NoError(t, h.srv.Routing().SetReadOnly("payments", true))
	r := h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"a": "c"}})
	require.Equal(t, 409, r.code)
	code, _ := errCode(t, r)
	require.Equal(t, "migration_in_progress", code)
	r = h.do(t, "GET", base+"/db", "t-admin", nil)
	require.Equal(t, 200, r.code, "reads go on during a migration")
	require.NoError(t, h.srv.Routing().SetReadOnly("payments", false))

	h.mem.mu.Lock()
	h.mem.down = true
	h.mem.mu.Unlock()
	r = h.do(t, "GET", base+"/db", "t-admin", nil)
	require.Equal(t, 503, r.code)
	require.Equal(t, "1", r.hdr.Get("Retry-After"))
	code, _ = errCode(t, r)
	require.Equal(t, api.CodeBackendUnavailable, code)
	r = h.do(t, "GET", "/readyz", "", nil)
	require.Equal(t, 503, r.code)
	r = h.do(t, "GET", "/healthz", "", nil)
	require.Equal(t, 200, r.code)
}

func TestMetricsHaveNoSecretNames(t *testing.T) {
	h := newHarness(t)
	h.create(t, "very-secret-name", map[string]string{"a": canary})
	h.do(t, "GET", base+"/very-secret-name", "t-admin", nil)
	r := h.do(t, "GET", "/metrics", "", nil)
	require.Equal(t, 200, r.code)
	body := string(r.body)
	require.Contains(t, body, `secretgate_http_requests_total{method="GET",route="/v1/projects/:project/secrets/:name",code="200"} 1`)
	require.Contains(t, body, `secretgate_backend_up{backend="mem"} 1`)
	// One create (a write), one GET (a read): each backend call counted.
	require.Contains(t, body, `secretgate_backend_calls_total{backend="mem",method="write"} 1`+"\n")
	require.Contains(t, body, `secretgate_backend_calls_total{backend="mem",method="read"} 1`+"\n")
	require.Contains(t, body, `secretgate_http_request_duration_seconds_count{route="/v1/projects/:project/secrets/:name"} 1`)
	require.NotContains(t, body, "very-secret-name")
	require.NotContains(t, body, "payments")
}

func TestPanicRecovery(t *testing.T) {
	h := newHarness(t)
	h.srv.engine.GET("/boom", func(*gin.Context) { panic("boom " + canary) })
	r := h.do(t, "GET", "/boom", "", nil)
	require.Equal(t, 500, r.code)
	code, _ := errCode(t, r)
	require.Equal(t, api.CodeInternal, code)
	require.NotContains(t, h.logs.String(), canary)
	require.Contains(t, h.logs.String(), "panic in handler")
}
