package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// readCounter counts the backend reads of each secret version.
type readCounter struct {
	Backends
	mu    sync.Mutex
	reads map[sdk.Ref]int
}

type countingBackend struct {
	sdk.Backend
	c *readCounter
}

func (c *readCounter) Backend(name string) (sdk.Backend, error) {
	b, err := c.Backends.Backend(name)
	if err != nil {
		return nil, err
	}
	return countingBackend{Backend: b, c: c}, nil
}

func (b countingBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	b.c.mu.Lock()
	b.c.reads[ref]++
	b.c.mu.Unlock()
	return b.Backend.Read(ctx, ref)
}

func (c *readCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.reads {
		n += v
	}
	return n
}

func newResolveHarness(t *testing.T) (*harness, *readCounter) {
	t.Helper()
	h := newHarness(t)
	rc := &readCounter{Backends: h.srv.backends, reads: map[sdk.Ref]int{}}
	h.srv.backends = rc
	h.create(t, "db", map[string]string{"user": "app", "password": canary})
	r := h.do(t, http.MethodPut, base+"/db", "t-admin", map[string]any{"data": map[string]string{"user": "app2", "password": canary + "-v2"}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	h.create(t, "stripe-key", map[string]string{"key": canary + "-stripe"})
	h.create(t, "other-db", map[string]string{"k": canary})
	return h, rc
}

// resolve posts refs; unlike h.do it lets values through, which is the
// point of the route (failures are checked for the canary by the tests).
func (h *harness) resolve(t *testing.T, token string, refs ...string) resp {
	t.Helper()
	body, err := json.Marshal(api.ResolveRequest{Refs: refs})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/v1/resolve", bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	return resp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}

func TestResolveValues(t *testing.T) {
	h, rc := newResolveHarness(t)
	before := len(h.audit.records())
	refs := []string{
		"sg://payments/db/user", "sg://payments/db/password",
		"sg://payments/db/user?version=1", "sg://payments/stripe-key/key",
		"sg://payments/db/user", // repeated: answered once, read once
	}
	r := h.resolve(t, "t-admin", refs...)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, "no-store", r.hdr.Get("Cache-Control"))
	var out api.ResolveResponse
	require.NoError(t, json.Unmarshal(r.body, &out))
	require.Equal(t, map[string]string{
		"sg://payments/db/user": "app2", "sg://payments/db/password": canary + "-v2",
		"sg://payments/db/user?version=1": "app", "sg://payments/stripe-key/key": canary + "-stripe",
	}, out.Values)
	// Each secret version is read once, however many of its keys are asked.
	require.Equal(t, map[sdk.Ref]int{
		{Project: "payments", Name: "db"}:             1,
		{Project: "payments", Name: "db", Version: 1}: 1,
		{Project: "payments", Name: "stripe-key"}:     1,
	}, rc.reads)

	// One read record per reference, as GET writes, with the version read.
	recs := h.audit.records()[before:]
	require.Len(t, recs, len(refs))
	wantVersions := []int64{2, 2, 1, 1, 2}
	wantSecrets := []string{"db", "db", "db", "stripe-key", "db"}
	for i, rec := range recs {
		require.Equal(t, ActionRead, rec.Action)
		require.Equal(t, PhaseOutcome, rec.Phase)
		require.Equal(t, "ok", rec.Outcome)
		require.Equal(t, "admin", rec.Subject)
		require.Equal(t, "payments", rec.Project)
		require.Equal(t, "mem", rec.Backend)
		require.Equal(t, wantSecrets[i], rec.Secret)
		require.Equal(t, wantVersions[i], rec.Version)
		require.NotEmpty(t, rec.RequestID)
	}
	require.NotContains(t, h.logs.String(), canary)
}

// All or nothing: the first reference that fails decides the answer, which
// names it and holds no value.
func TestResolveFailures(t *testing.T) {
	h, rc := newResolveHarness(t)
	ok := "sg://payments/db/password"
	tests := []struct {
		name, token string
		refs        []string
		status      int
		code        string
		msg         string
		reads       int
	}{
		{"project unknown", "t-admin", []string{ok, "sg://nope/db/user"}, 404, api.CodeNotFound, `project "nope" not found (reference "sg://nope/db/user")`, 0},
		{"project without binding", "t-reader", []string{"sg://other/other-db/k"}, 404, api.CodeNotFound, `project "other" not found (reference "sg://other/other-db/k")`, 0},
		{"read denied", "t-editor", []string{"sg://payments/db/user"}, 403, api.CodePermissionDenied, `(reference "sg://payments/db/user")`, 0},
		{"read denied on one secret", "t-stripe", []string{"sg://payments/stripe-key/key", "sg://payments/db/user"}, 403, api.CodePermissionDenied, `secrets.read on secret "db"`, 0},
		{"secret missing", "t-admin", []string{ok, "sg://payments/nope/k"}, 404, api.CodeNotFound, `secret "nope" not found in project "payments" (reference "sg://payments/nope/k")`, 2},
		{"version missing", "t-admin", []string{"sg://payments/db/user?version=9", ok}, 404, api.CodeNotFound, `version 9 of secret "db" not found in project "payments" (reference "sg://payments/db/user?version=9")`, 2},
		{"key missing", "t-admin", []string{ok, "sg://payments/db/nokey"}, 404, api.CodeNotFound, `key "nokey" not found in version 2 of secret "db" in project "payments" (reference "sg://payments/db/nokey")`, 1},
		{"malformed", "t-admin", []string{ok, "sg://payments/db"}, 400, api.CodeInvalidArgument, `invalid refs[1]: "sg://payments/db" must be`, 0},
		{"none", "t-admin", []string{}, 400, api.CodeInvalidArgument, "invalid refs: holds 0 references", 0},
		{"too many", "t-admin", manyRefs(101), 400, api.CodeInvalidArgument, "invalid refs: holds 101 references; 1 to 100", 0},
		{"no token", "", []string{ok}, 401, api.CodeUnauthenticated, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, readsBefore := len(h.audit.records()), rc.total()
			r := h.resolve(t, tc.token, tc.refs...)
			require.Equal(t, tc.status, r.code, "%s", r.body)
			code, msg := errCode(t, r)
			require.Equal(t, tc.code, code)
			require.Contains(t, msg, tc.msg)
			require.NotContains(t, string(r.body), canary)
			require.NotContains(t, string(r.body), "app2")
			require.Equal(t, tc.reads, rc.total()-readsBefore, "backend reads")
			// One failure record, of the failing reference.
			recs := h.audit.records()[before:]
			require.Len(t, recs, 1)
			require.Equal(t, tc.code, recs[0].Outcome)
			require.Equal(t, ActionRead, recs[0].Action)
		})
	}
	require.NotContains(t, h.logs.String(), canary)
}

func manyRefs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("sg://payments/db/k%d", i)
	}
	return out
}

func TestResolveStrictBody(t *testing.T) {
	h, _ := newResolveHarness(t)
	for _, body := range []string{
		`{"refs":["sg://payments/db/user"],"extra":1}`,
		`{"refs":null}`,
		`{"Refs":["sg://payments/db/user"]}`,
		`{"refs":"sg://payments/db/user"}`,
		``,
	} {
		r := h.do(t, http.MethodPost, "/v1/resolve", "t-admin", body)
		require.Equal(t, http.StatusBadRequest, r.code, "%s: %s", body, r.body)
		code, _ := errCode(t, r)
		require.Equal(t, api.CodeInvalidArgument, code)
	}
}

func TestResolveBackendDown(t *testing.T) {
	h, _ := newResolveHarness(t)
	h.mem.mu.Lock()
	h.mem.down = true
	h.mem.mu.Unlock()
	r := h.resolve(t, "t-admin", "sg://payments/db/user")
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	_, msg := errCode(t, r)
	require.True(t, strings.HasSuffix(msg, `(reference "sg://payments/db/user")`), msg)
}

// A failed audit write answers 503 and returns no value.
func TestResolveAuditFailsClosed(t *testing.T) {
	h, _ := newResolveHarness(t)
	h.audit.mu.Lock()
	h.audit.failing = true
	h.audit.mu.Unlock()
	r := h.resolve(t, "t-admin", "sg://payments/db/password")
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	require.NotContains(t, string(r.body), canary)
}
