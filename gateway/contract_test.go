package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// Every answer of a secret route, success or error, keeps out of caches.
func TestSecretRoutesAreNeverCached(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"password": canary})
	routes := []struct {
		method, path, token string
		body                any
		status              int
	}{
		{"GET", base, "t-admin", nil, 200},
		{"POST", base, "t-admin", map[string]any{"name": "n2", "data": map[string]string{"k": "v"}}, 201},
		{"GET", base + "/db", "t-admin", nil, 200},
		{"GET", base + "/db/metadata", "t-admin", nil, 200},
		{"GET", base + "/db/versions", "t-admin", nil, 200},
		{"PUT", base + "/db", "t-admin", map[string]any{"data": map[string]string{"password": canary}}, 200},
		{"PATCH", base + "/db", "t-admin", map[string]any{"set": map[string]string{"user": "u"}}, 200},
		{"POST", base + "/db/copy", "t-admin", map[string]any{"as": "db2"}, 201},
		{"DELETE", base + "/n2", "t-admin", nil, 204},
		{"GET", base + "/db", "t-editor", nil, 403},
		{"GET", base + "/nope", "t-admin", nil, 404},
		{"GET", base + "/db", "", nil, 401},
		{"POST", base, "t-admin", `{"name":`, 400},
		{"GET", "/v1/projects", "t-admin", nil, 200},
		{"GET", "/v1/migrations", "t-admin", nil, 200},
	}
	for _, rt := range routes {
		r := h.do(t, rt.method, rt.path, rt.token, rt.body)
		require.Equal(t, rt.status, r.code, "%s %s: %s", rt.method, rt.path, r.body)
		require.Equal(t, "no-store", r.hdr.Get("Cache-Control"), "%s %s", rt.method, rt.path)
	}
}

// Each audit record names who did what to which secret, on both phases.
func TestAuditRecordsNameSubjectActionAndSecret(t *testing.T) {
	tests := []struct {
		name, method, path, token string
		body                      any
		subject, action, secret   string
		outcome                   string
		intent                    bool
	}{
		{"create", "POST", base, "t-editor", map[string]any{"name": "n1", "data": map[string]string{"k": canary}}, "editor", ActionCreate, "n1", "ok", true},
		{"read", "GET", base + "/db", "t-reader", nil, "reader", ActionRead, "db", "ok", false},
		{"read denied", "GET", base + "/db", "t-editor", nil, "editor", ActionRead, "db", api.CodePermissionDenied, false},
		{"metadata", "GET", base + "/db/metadata", "t-reader", nil, "reader", ActionList, "db", "ok", false},
		{"replace", "PUT", base + "/db", "t-editor", map[string]any{"data": map[string]string{"k": canary}}, "editor", ActionUpdate, "db", "ok", true},
		{"patch", "PATCH", base + "/db", "t-editor", map[string]any{"set": map[string]string{"k": canary}}, "editor", ActionUpdate, "db", "ok", true},
		{"delete", "DELETE", base + "/db", "t-editor", nil, "editor", ActionDelete, "db", "ok", true},
		{"list", "GET", base, "t-reader", nil, "reader", ActionList, "", "ok", false},
		{"not found", "GET", base + "/nope", "t-reader", nil, "reader", ActionRead, "nope", api.CodeNotFound, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, "db", map[string]string{"password": canary})
			before := len(h.audit.records())
			r := h.do(t, tc.method, tc.path, tc.token, tc.body)
			recs := h.audit.records()[before:]
			want := 1
			if tc.intent {
				want = 2
			}
			require.Len(t, recs, want, "%s", r.body)
			for i, rec := range recs {
				require.Equal(t, tc.subject, rec.Subject)
				require.Equal(t, tc.action, rec.Action)
				require.Equal(t, tc.secret, rec.Secret)
				require.Equal(t, "payments", rec.Project)
				require.Equal(t, r.hdr.Get("X-Request-Id"), rec.RequestID)
				require.NotContains(t, rec.Subject+rec.Action+rec.Secret+rec.Outcome, canary)
				if tc.intent && i == 0 {
					require.Equal(t, PhaseIntent, rec.Phase)
					require.Empty(t, rec.Outcome)
					continue
				}
				require.Equal(t, PhaseOutcome, rec.Phase)
				require.Equal(t, tc.outcome, rec.Outcome)
			}
		})
	}
}

// PATCH checks If-Match against the version it read before writing
// anything: a stale ETag is 412 and the backend sees no write.
func TestPatchIfMatchIsCheckedBeforeWriting(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"password": canary})
	r := h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"password": canary, "user": "u"}})
	require.Equal(t, http.StatusOK, r.code)
	writes := h.mem.writes
	r = h.do(t, "PATCH", base+"/db", "t-admin", map[string]any{"set": map[string]string{"user": "mallory"}}, "If-Match", `"1"`)
	require.Equal(t, http.StatusPreconditionFailed, r.code, "%s", r.body)
	code, _ := errCode(t, r)
	require.Equal(t, api.CodeVersionMismatch, code)
	require.Equal(t, writes, h.mem.writes, "no write may reach the backend")
	sec := h.mem.secrets[key("payments", "db")]
	require.Equal(t, int64(2), sec.meta.Version)
	require.Equal(t, "u", sec.versions[1]["user"])
	// The current ETag works.
	r = h.do(t, "PATCH", base+"/db", "t-admin", map[string]any{"set": map[string]string{"user": "v"}}, "If-Match", `"2"`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
}

// A backend's quota refusal is 429 with the limit named and Retry-After,
// not a generic 503.
func TestThrottledBackendAnswers429(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		retryAfter string
	}{
		{"with delay", sdk.Throttled("GCP Secret Manager: 600 reads per minute per project", 2500*time.Millisecond), "3"},
		{"without delay", sdk.Throttled("AWS: 50 writes per second", 0), "1"},
		{"wrapped", fmt.Errorf("reading db: %w", sdk.Throttled("per-secret writes", 40*time.Second)), "40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			abortWith(c, mapBackendError(tc.err, opContext{project: "p", name: "db", backend: "cloud"}))
			require.Equal(t, http.StatusTooManyRequests, w.Code)
			require.Equal(t, tc.retryAfter, w.Header().Get("Retry-After"))
			var e api.ErrorBody
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			require.Equal(t, api.CodeBackendThrottled, e.Error.Code)
			var te *sdk.ThrottleError
			require.ErrorAs(t, tc.err, &te)
			require.Contains(t, e.Error.Message, te.Limit)
			require.Contains(t, e.Error.Message, `"cloud"`)
		})
	}
}

// net/http's error log (a line per bad TLS handshake) is rate-limited, and
// says how many lines it dropped.
func TestHTTPErrorLogIsBounded(t *testing.T) {
	var buf bytes.Buffer
	w := &slogWriter{log: slog.New(slog.NewTextHandler(&buf, nil)), limit: newBurstLimiter(httpLogRate, httpLogBurst)}
	now := time.Unix(0, 0)
	w.limit.now = func() time.Time { return now }
	for i := 0; i < 10000; i++ {
		_, _ = w.Write([]byte("http: TLS handshake error from 127.0.0.1:1: EOF\n"))
	}
	require.Equal(t, httpLogBurst, strings.Count(buf.String(), "\n"))
	now = now.Add(time.Second)
	_, _ = w.Write([]byte("http: TLS handshake error from 127.0.0.1:2: EOF\n"))
	require.Contains(t, buf.String(), fmt.Sprintf("similar_lines_dropped=%d", 10000-httpLogBurst))
}
