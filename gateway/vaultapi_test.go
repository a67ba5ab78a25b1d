package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/idtoken"
	"github.com/secretgate/secretgate/internal/oidctest"
	"github.com/secretgate/secretgate/sdk"
)

// vaultEnv is a gateway with vault_api on and the real policy: on
// payments alice is admin (and viewer of other), bob reader, carol editor, dave admin of
// stripe-* only; erin is admin of other only. The workload k8s-payments
// (a JWT of the test issuer) is a reader of payments.
type vaultEnv struct {
	srv    *Server
	mem    *memBackend
	audit  *memAuditor
	logs   *bytes.Buffer
	idp    *oidctest.Server
	events *eventLog
}

// eventLog records the change notifications the gateway publishes.
type eventLog struct {
	mu    sync.Mutex
	kinds []string
}

func (l *eventLog) add(project, kind string, m sdk.Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds = append(l.kinds, project+"/"+m.Name+" "+kind)
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.kinds...)
}

func vaultCfg(idp *oidctest.Server) *Config {
	cfg := reloadCfg()
	cfg.Projects = append(cfg.Projects, ProjectConfig{Name: "other", Backend: "mem"})
	cfg.Subjects = append(cfg.Subjects, subjectOf("carol", "t-carol"), subjectOf("dave", "t-dave"), subjectOf("erin", "t-erin"), SubjectConfig{Name: "k8s-payments"})
	cfg.Bindings = append(cfg.Bindings,
		BindingConfig{Subject: "carol", Project: "payments", Role: "editor"},
		BindingConfig{Subject: "dave", Project: "payments", Role: "admin", Secrets: []string{"stripe-*"}},
		BindingConfig{Subject: "erin", Project: "other", Role: "admin"},
		BindingConfig{Subject: "alice", Project: "other", Role: "viewer"},
		BindingConfig{Subject: "k8s-payments", Project: "payments", Role: "reader"},
	)
	cfg.Auth.JWT = []idtoken.Issuer{{
		Name: "test-idp", IssuerURL: idp.URL, Discovery: true, Audiences: []string{"secretgate"}, AuditClaims: []string{"sub"},
		Rules: []idtoken.Rule{{Subject: "k8s-payments", Claims: map[string]string{"kubernetes.io/namespace": "payments"}}},
	}}
	cfg.VaultAPI = VaultAPIConfig{Enabled: true}
	return cfg
}

func newVaultEnv(t *testing.T) *vaultEnv {
	t.Helper()
	idp := oidctest.New(t)
	e := &vaultEnv{mem: newMemBackend(), audit: &memAuditor{}, logs: &bytes.Buffer{}, idp: idp, events: &eventLog{}}
	srv, err := New(context.Background(), vaultCfg(idp), Options{
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)), Auditor: e.audit,
		Backends: &memBackends{m: map[string]*memBackend{"mem": e.mem, "mem2": newMemBackend()}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	srv.events().observe(e.events.add)
	e.srv = srv
	return e
}

// vresp is an answer, with its body decoded when it is JSON.
type vresp struct {
	code int
	hdr  http.Header
	body []byte
}

func (r vresp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "%d %s", r.code, r.body)
	return m
}

// errs is the errors list of a Vault error answer.
func (r vresp) errs(t *testing.T) []string {
	t.Helper()
	var e struct {
		Errors []string `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "%d %s", r.code, r.body)
	require.NotNil(t, e.Errors, "not Vault's error envelope: %s", r.body)
	return e.Errors
}

// do sends a request with the token in X-Vault-Token (as vault/api does)
// unless hdrs set Authorization.
func (e *vaultEnv) do(t *testing.T, method, path, token string, body any, hdrs ...string) vresp {
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
		req.Header.Set("X-Vault-Token", token)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	return vresp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}

func (e *vaultEnv) put(t *testing.T, name string, data map[string]any) {
	t.Helper()
	r := e.do(t, "PUT", "/v1/secret/data/payments/"+name, "t-alice", map[string]any{"data": data})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
}

const vcanary = "CANARY-vault-3c19e"

// A secret written through the Vault API reads back the same through
// both APIs, in Vault's envelopes; no value reaches the log or the audit.
func TestVaultAPIRoundTrip(t *testing.T) {
	e := newVaultEnv(t)
	r := e.do(t, "PUT", "/v1/secret/data/payments/db", "t-alice", map[string]any{"data": map[string]string{"user": "app", "password": vcanary}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.NotContains(t, string(r.body), vcanary)
	w := r.json(t)
	require.Equal(t, r.hdr.Get("X-Request-Id"), w["request_id"])
	for _, k := range []string{"lease_id", "renewable", "lease_duration", "wrap_info", "warnings", "auth"} {
		require.Contains(t, w, k)
	}
	meta := w["data"].(map[string]any)
	require.Equal(t, float64(1), meta["version"])
	require.Equal(t, "", meta["deletion_time"])
	_, err := time.Parse(time.RFC3339Nano, meta["created_time"].(string))
	require.NoError(t, err)
	require.Equal(t, "no-store", r.hdr.Get("Cache-Control"))

	r = e.do(t, "GET", "/v1/secret/data/payments/db", "t-bob", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	d := r.json(t)["data"].(map[string]any)
	require.Equal(t, map[string]any{"user": "app", "password": vcanary}, d["data"])
	require.Equal(t, float64(1), d["metadata"].(map[string]any)["version"])

	req := httptest.NewRequest("GET", "/v1/projects/payments/secrets/db", nil)
	req.Header.Set("Authorization", "Bearer t-bob")
	nw := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(nw, req)
	var native struct {
		Data    map[string]any `json:"data"`
		Version int64          `json:"version"`
	}
	require.NoError(t, json.Unmarshal(nw.Body.Bytes(), &native))
	require.Equal(t, native.Data, d["data"], "the native API and the Vault API read the same data")

	// A second version, then the first by number.
	e.put(t, "db", map[string]any{"user": "app", "password": "rotated"})
	r = e.do(t, "GET", "/v1/secret/data/payments/db?version=1", "t-bob", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	d = r.json(t)["data"].(map[string]any)
	require.Equal(t, vcanary, d["data"].(map[string]any)["password"])
	require.Equal(t, float64(1), d["metadata"].(map[string]any)["version"])
	r = e.do(t, "GET", "/v1/secret/data/payments/db?version=9", "t-bob", nil)
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	require.Empty(t, r.errs(t))

	require.NotContains(t, e.logs.String(), vcanary)
	b, _ := json.Marshal(e.auditSince(0))
	require.NotContains(t, string(b), vcanary)
	require.Equal(t, []string{"payments/db secret.created", "payments/db secret.updated"}, e.events.all())
}

// Vault's API is off unless configured: none of its routes exist.
func TestVaultAPIOffByDefault(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/v1/secret/data/payments/db", "/v1/sys/internal/ui/mounts/secret", "/v1/auth/token/lookup-self"} {
		r := h.do(t, "GET", p, "t-admin", nil)
		require.Equal(t, http.StatusNotFound, r.code)
		code, msg := errCode(t, r)
		require.Equal(t, "not_found", code)
		require.Equal(t, "no such route", msg)
	}
}

// Each operation is decided as its native twin: the same status for the
// same caller (403 and 404 keep their meaning), in Vault's envelope, and
// an audit record with the same action and outcome.
func TestVaultAPIPermissionsMatchNative(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "db", map[string]any{"password": vcanary})
	e.put(t, "stripe-key", map[string]any{"k": "v"})
	tests := []struct {
		name           string
		token          string
		vmethod, vpath string
		vbody          any
		nmethod, npath string
		nbody          any
		want           int // native status; Vault's is the same but 401 -> 403
		action         string
	}{
		{"reader reads", "t-bob", "GET", "/data/payments/db", nil, "GET", "/db", nil, 200, ActionRead},
		{"editor cannot read", "t-carol", "GET", "/data/payments/db", nil, "GET", "/db", nil, 403, ActionRead},
		{"reader cannot write", "t-bob", "POST", "/data/payments/db", map[string]any{"data": map[string]string{"a": "b"}, "options": map[string]int{"cas": 2}}, "PUT", "/db", map[string]any{"data": map[string]string{"a": "b"}}, 403, ActionUpdate},
		{"glob outside dave's", "t-dave", "GET", "/data/payments/db", nil, "GET", "/db", nil, 403, ActionRead},
		{"glob inside dave's", "t-dave", "GET", "/data/payments/stripe-key", nil, "GET", "/stripe-key", nil, 200, ActionRead},
		{"no binding: 404", "t-erin", "GET", "/data/payments/db", nil, "GET", "/db", nil, 404, ActionRead},
		{"missing secret: 404", "t-bob", "GET", "/data/payments/nope", nil, "GET", "/nope", nil, 404, ActionRead},
		{"reader cannot delete", "t-bob", "DELETE", "/metadata/payments/db", nil, "DELETE", "/db", nil, 403, ActionDelete},
		{"viewer of metadata", "t-carol", "GET", "/metadata/payments/db", nil, "GET", "/db/metadata", nil, 200, ActionList},
		{"unknown token", "t-nobody", "GET", "/data/payments/db", nil, "GET", "/db", nil, 401, ""},
		{"no token", "", "GET", "/data/payments/db", nil, "GET", "/db", nil, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := e.native(t, tc.nmethod, "/v1/projects/payments/secrets"+tc.npath, tc.token, tc.nbody)
			require.Equal(t, tc.want, n.code, "native: %s", n.body)
			nrec := e.lastAudit(t)
			v := e.do(t, tc.vmethod, "/v1/secret"+tc.vpath, tc.token, tc.vbody)
			want := tc.want
			if want == 401 {
				want = 403
			}
			require.Equal(t, want, v.code, "vault: %s", v.body)
			if want >= 400 {
				errs := v.errs(t)
				if want == 403 {
					require.True(t, strings.HasPrefix(errs[0], vaultPermissionDenied+": "), errs[0])
				}
			}
			vrec := e.lastAudit(t)
			require.Equal(t, nrec.Subject, vrec.Subject)
			require.Equal(t, nrec.Outcome, vrec.Outcome)
			require.Equal(t, nrec.Project, vrec.Project)
			require.Equal(t, nrec.Secret, vrec.Secret)
			if tc.action != "" {
				require.Equal(t, tc.action, vrec.Action)
			}
		})
	}
}

func (e *vaultEnv) native(t *testing.T, method, path, token string, body any) vresp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	return vresp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}

func (e *vaultEnv) lastAudit(t *testing.T) AuditRecord {
	t.Helper()
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	require.NotEmpty(t, e.audit.recs)
	return e.audit.recs[len(e.audit.recs)-1]
}

// auditSince returns the records written after n, without the fields that
// differ between two requests (time, request id).
func (e *vaultEnv) auditSince(n int) []AuditRecord {
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	out := append([]AuditRecord(nil), e.audit.recs[n:]...)
	for i := range out {
		out[i].Time, out[i].RequestID = "", ""
	}
	return out
}

func (e *vaultEnv) auditLen() int {
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	return len(e.audit.recs)
}

// The same write through either API leaves the same audit records.
func TestVaultAPIAuditsWritesAsNative(t *testing.T) {
	e := newVaultEnv(t)
	steps := []struct {
		name           string
		nmethod, npath string
		nbody          any
		nhdrs          []string
		vmethod, vpath string
		vbody          any
	}{
		{"create", "POST", "", map[string]any{"name": "s", "data": map[string]string{"a": "1"}}, nil,
			"POST", "/data/payments/s", map[string]any{"data": map[string]string{"a": "1"}, "options": map[string]int{"cas": 0}}},
		{"replace with check-and-set", "PUT", "/s", map[string]any{"data": map[string]string{"a": "2"}}, []string{"If-Match", `"1"`},
			"PUT", "/data/payments/s", map[string]any{"data": map[string]string{"a": "2"}, "options": map[string]int{"cas": 1}}},
		{"patch", "PATCH", "/s", map[string]any{"set": map[string]string{"b": "3"}}, nil,
			"PATCH", "/data/payments/s", map[string]any{"data": map[string]string{"b": "3"}}},
		{"read", "GET", "/s", nil, nil, "GET", "/data/payments/s", nil},
		{"delete", "DELETE", "/s", nil, nil, "DELETE", "/metadata/payments/s", nil},
	}
	var nativeRecs, vaultRecs []AuditRecord
	for _, st := range steps {
		n := e.auditLen()
		var rd io.Reader
		if st.nbody != nil {
			j, _ := json.Marshal(st.nbody)
			rd = bytes.NewReader(j)
		}
		req := httptest.NewRequest(st.nmethod, "/v1/projects/payments/secrets"+st.npath, rd)
		req.Header.Set("Authorization", "Bearer t-alice")
		for i := 0; i+1 < len(st.nhdrs); i += 2 {
			req.Header.Set(st.nhdrs[i], st.nhdrs[i+1])
		}
		w := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(w, req)
		require.Less(t, w.Code, 300, "native %s: %s", st.name, w.Body)
		nativeRecs = append(nativeRecs, e.auditSince(n)...)
	}
	for _, st := range steps {
		n := e.auditLen()
		var hdrs []string
		if st.vmethod == "PATCH" {
			hdrs = []string{"Content-Type", "application/merge-patch+json"}
		}
		r := e.do(t, st.vmethod, "/v1/secret"+st.vpath, "t-alice", st.vbody, hdrs...)
		require.Less(t, r.code, 300, "vault %s: %s", st.name, r.body)
		vaultRecs = append(vaultRecs, e.auditSince(n)...)
	}
	require.Equal(t, nativeRecs, vaultRecs)
	require.Len(t, vaultRecs, 9) // intent+outcome for each write, one for the read
}

// KV v2 takes any JSON value; secretgate stores strings. Anything else is
// a 400 naming the key, and nothing is stored; so is what encoding/json
// would silently alter.
func TestVaultAPIRefusesNonStrings(t *testing.T) {
	e := newVaultEnv(t)
	tests := []struct {
		name, body, field string
	}{
		{"number", `{"data":{"port":5432}}`, "data.port"},
		{"boolean", `{"data":{"tls":true}}`, "data.tls"},
		{"null", `{"data":{"gone":null}}`, "data.gone"},
		{"object", `{"data":{"nested":{"a":"b"}}}`, "data.nested"},
		{"array", `{"data":{"list":["a"]}}`, "data.list"},
		{"duplicate key", `{"data":{"a":"1","a":"2"}}`, "data.a"},
		{"lone surrogate", `{"data":{"a":"\ud800"}}`, "data.a"},
		{"invalid key", `{"data":{"a b":"1"}}`, "data"},
		{"no data", `{"options":{}}`, "data"},
		{"unknown member", `{"data":{"a":"1"},"extra":1}`, "body"},
		{"cas not a number", `{"data":{"a":"1"},"options":{"cas":"x"}}`, "options.cas"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/secret/data/payments/typed", "t-alice", tc.body)
			require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
			errs := r.errs(t)
			require.Len(t, errs, 1)
			require.True(t, strings.HasPrefix(errs[0], "invalid "+tc.field), "%q does not name %s", errs[0], tc.field)
			require.NotContains(t, errs[0], "5432")
		})
	}
	e.mem.mu.Lock()
	defer e.mem.mu.Unlock()
	require.Empty(t, e.mem.secrets, "nothing was stored")
}

// options.cas: 0 writes only a new secret, N only over version N; a
// mismatch is Vault's 400 with Vault's text (not 412, which vault/api
// would retry).
func TestVaultAPICheckAndSet(t *testing.T) {
	e := newVaultEnv(t)
	write := func(cas int) vresp {
		return e.do(t, "POST", "/v1/secret/data/payments/c", "t-alice", map[string]any{"data": map[string]string{"a": "b"}, "options": map[string]int{"cas": cas}})
	}
	require.Equal(t, http.StatusBadRequest, write(1).code, "cas 1 on a missing secret")
	require.Equal(t, http.StatusOK, write(0).code)
	for _, cas := range []int{0, 2} {
		r := write(cas)
		require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
		require.True(t, strings.HasPrefix(r.errs(t)[0], vaultCASMismatch+": "), r.errs(t)[0])
	}
	r := write(1)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, float64(2), r.json(t)["data"].(map[string]any)["version"])
}

// PATCH is a JSON merge patch of the data: a string sets a key, null
// removes it; the content type is required, as in Vault.
func TestVaultAPIMergePatch(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "p", map[string]any{"a": "1", "b": "2"})
	mp := []string{"Content-Type", "application/merge-patch+json"}
	r := e.do(t, "PATCH", "/v1/secret/data/payments/p", "t-carol", map[string]any{"data": map[string]any{"a": "9", "b": nil, "c": "3"}}, mp...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, float64(2), r.json(t)["data"].(map[string]any)["version"])
	e.mem.mu.Lock()
	v := e.mem.secrets[key("payments", "p")]
	require.Equal(t, map[string]string{"a": "9", "c": "3"}, v.versions[len(v.versions)-1])
	e.mem.mu.Unlock()

	r = e.do(t, "PATCH", "/v1/secret/data/payments/p", "t-carol", map[string]any{"data": map[string]any{"a": "1"}})
	require.Equal(t, http.StatusUnsupportedMediaType, r.code, "%s", r.body)
	r = e.do(t, "PATCH", "/v1/secret/data/payments/p", "t-carol", map[string]any{"data": map[string]any{}}, mp...)
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	r = e.do(t, "PATCH", "/v1/secret/data/payments/p", "t-carol", map[string]any{"data": map[string]any{"a": "1"}, "options": map[string]int{"cas": 1}}, mp...)
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	require.True(t, strings.HasPrefix(r.errs(t)[0], vaultCASMismatch+": "), r.errs(t)[0])
	r = e.do(t, "PATCH", "/v1/secret/data/payments/missing", "t-carol", map[string]any{"data": map[string]any{"a": "1"}}, mp...)
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
}
