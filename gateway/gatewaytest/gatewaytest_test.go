package gatewaytest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway"
	"github.com/secretgate/secretgate/gateway/gatewaytest"
)

// do sends one request with a bearer token ("" = none) and returns the
// status, the headers and the error code of the envelope ("" on success).
func do(t *testing.T, s *gatewaytest.Server, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(b, &env), "error body %s", b)
	}
	return resp.StatusCode, resp.Header, env.Error.Code
}

func create(t *testing.T, s *gatewaytest.Server, project, name, value string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "data": map[string]string{"k": value}})
	require.NoError(t, err)
	status, _, code := do(t, s, http.MethodPost, "/v1/projects/"+project+"/secrets", gatewaytest.AdminToken, string(body))
	require.Equal(t, http.StatusCreated, status, code)
}

// The tokens map to the subjects and bindings the package doc promises,
// through the real policy.
func TestTokensAndBindings(t *testing.T) {
	s := gatewaytest.Start(t)
	for _, p := range gatewaytest.Projects() {
		create(t, s, p, "db", "v")
	}
	create(t, s, "payments", "stripe-key", "v")
	const pay = "/v1/projects/payments/secrets/"
	tests := []struct {
		name, token, method, path string
		status                    int
		code                      string
	}{
		{"no token", "", "GET", pay + "db", 401, "unauthenticated"},
		{"unknown token", "sg_wrong", "GET", pay + "db", 401, "unauthenticated"},
		{"admin reads", gatewaytest.AdminToken, "GET", pay + "db", 200, ""},
		{"admin on default", gatewaytest.AdminToken, "GET", "/v1/projects/default/secrets/db", 200, ""},
		{"admin, unconfigured project", gatewaytest.AdminToken, "GET", "/v1/projects/elsewhere/secrets", 404, "not_found"},
		{"reader reads", gatewaytest.ReaderToken, "GET", pay + "db", 200, ""},
		{"editor cannot read values", gatewaytest.EditorToken, "GET", pay + "db", 403, "permission_denied"},
		{"editor describes", gatewaytest.EditorToken, "GET", pay + "db/metadata", 200, ""},
		{"editor deletes", gatewaytest.EditorToken, "DELETE", "/v1/projects/default/secrets/db", 204, ""},
		{"viewer lists", gatewaytest.ViewerToken, "GET", "/v1/projects/payments/secrets", 200, ""},
		{"viewer cannot read values", gatewaytest.ViewerToken, "GET", pay + "db", 403, "permission_denied"},
		{"viewer cannot delete", gatewaytest.ViewerToken, "DELETE", pay + "db", 403, "permission_denied"},
		{"narrow reads its glob", gatewaytest.NarrowToken, "GET", pay + "stripe-key", 200, ""},
		// docs/api.md: 403 is answered before the backend is asked, so it
		// says nothing about whether the name exists.
		{"narrow: a name outside its globs", gatewaytest.NarrowToken, "GET", pay + "db", 403, "permission_denied"},
		{"narrow: no binding on default", gatewaytest.NarrowToken, "GET", "/v1/projects/default/secrets", 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, code := do(t, s, tc.method, tc.path, tc.token, "")
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.code, code)
		})
	}
}

func TestUnavailable(t *testing.T) {
	s := gatewaytest.Start(t)
	create(t, s, "payments", "db", "v")
	s.SetUnavailable(true)
	status, hdr, code := do(t, s, "GET", "/v1/projects/payments/secrets/db", gatewaytest.AdminToken, "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "backend_unavailable", code)
	require.Equal(t, "1", hdr.Get("Retry-After"))
	status, _, _ = do(t, s, "GET", "/readyz", "", "")
	require.Equal(t, http.StatusServiceUnavailable, status, "readyz pings the backend")

	s.SetUnavailable(false)
	status, _, _ = do(t, s, "GET", "/v1/projects/payments/secrets/db", gatewaytest.AdminToken, "")
	require.Equal(t, http.StatusOK, status)
}

// Requests records every request, refused ones too, headers and all;
// Value reads what the backend stored; Audit holds the gateway's records.
func TestRecordingValueAndAudit(t *testing.T) {
	s := gatewaytest.Start(t)
	create(t, s, "default", "db", "stored-value")
	do(t, s, "GET", "/v1/projects/default/secrets?prefix=d", "sg_wrong", "")

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "POST", reqs[0].Method)
	require.Equal(t, "/v1/projects/default/secrets", reqs[0].Path)
	require.Equal(t, "Bearer "+gatewaytest.AdminToken, reqs[0].Header.Get("Authorization"))
	require.Equal(t, "prefix=d", reqs[1].RawQuery)

	v, ok := s.Value("default", "db", "k")
	require.True(t, ok)
	require.Equal(t, "stored-value", v)
	_, ok = s.Value("default", "db", "nope")
	require.False(t, ok)
	_, ok = s.Value("payments", "db", "k")
	require.False(t, ok)

	var outcomes []string
	for _, r := range s.Audit() {
		require.NotContains(t, r.Secret+r.Outcome, "stored-value")
		if r.Action == gateway.ActionCreate && r.Secret == "db" {
			outcomes = append(outcomes, r.Phase+"/"+r.Outcome)
		}
	}
	require.Equal(t, []string{gateway.PhaseIntent + "/", gateway.PhaseOutcome + "/ok"}, outcomes, "the create is audited before and after")
}
