package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/internal/testenv"
)

// TestAWSEndToEnd runs the real secretgate binary with a project on the
// built-in aws plugin, itself talking to moto behind the fault proxy (AWS's
// lag, delete propagation, rate, version and tag limits: faultproxy.CI):
// CRUD over HTTP, roles, a check-and-set race, and a canary value that must
// never appear in the server's output or audit log.
func TestAWSEndToEnd(t *testing.T) {
	moto := faultproxy.StartMoto(t, faultproxy.CI)
	var env []string
	for k, v := range mototest.DummyCredentials {
		env = append(env, k+"="+v)
	}
	// A second stand-in where a secret reaches AWS's versions quota after 2.
	tight := faultproxy.StartMoto(t, faultproxy.Config{MaxVersions: 2})
	srv := testenv.Start(t, testenv.Options{
		Backends: []testenv.Backend{
			{Name: "cloud", Plugin: "aws", Settings: map[string]string{
				"region": mototest.Region, "endpoint": moto.Endpoint, "prefix": "e2e/", "tags": "suite=e2e",
			}},
			{Name: "tight", Plugin: "aws", Settings: map[string]string{"region": mototest.Region, "endpoint": tight.Endpoint}},
		},
		Projects: []testenv.Project{{Name: "payments", Backend: "cloud"}, {Name: "quota", Backend: "tight"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "payments", Role: "editor"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
			{Name: "viewer", Grants: []testenv.Grant{{Project: "payments", Role: "viewer"}}},
		},
		Env: env,
	})
	canary := "canary-" + awsRandHex(t)
	base := "/v1/projects/payments/secrets"

	// Create as editor; the answer is metadata only.
	resp := srv.Do(t, "POST", base, srv.Token("editor"), map[string]any{
		"name": "stripe-key", "data": map[string]string{"api_key": canary, "account": "acct_1"}, "labels": map[string]string{"env": "prod"},
	})
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	require.NotContains(t, string(resp.Body), canary)
	var meta struct {
		Name    string            `json:"name"`
		Keys    []string          `json:"keys"`
		Version int64             `json:"version"`
		Labels  map[string]string `json:"labels"`
	}
	resp.JSON(t, &meta)
	require.Equal(t, int64(1), meta.Version)
	require.Equal(t, []string{"account", "api_key"}, meta.Keys)
	require.Equal(t, map[string]string{"env": "prod"}, meta.Labels)

	resp = srv.Do(t, "POST", base, srv.Token("editor"), map[string]any{"name": "stripe-key", "data": map[string]string{"a": "b"}})
	require.Equal(t, http.StatusConflict, resp.Status, "%s", resp.Body)

	// Reader reads values; editor and viewer do not.
	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	var sec struct {
		Version int64             `json:"version"`
		Data    map[string]string `json:"data"`
	}
	resp.JSON(t, &sec)
	require.Equal(t, canary, sec.Data["api_key"])
	require.Equal(t, `"1"`, resp.Header.Get("ETag"))
	for _, who := range []string{"editor", "viewer"} {
		resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token(who), nil)
		require.NotContains(t, string(resp.Body), canary, who)
		if resp.Status == http.StatusOK {
			require.Nil(t, awsDecodeData(t, resp), "%s must not get values", who)
		} else {
			require.Equal(t, http.StatusForbidden, resp.Status, "%s: %s", who, resp.Body)
		}
	}
	resp = srv.Do(t, "GET", base+"/stripe-key/metadata", srv.Token("viewer"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "POST", base, srv.Token("reader"), map[string]any{"name": "nope", "data": map[string]string{"a": "b"}})
	require.Equal(t, http.StatusForbidden, resp.Status, "a reader cannot create: %s", resp.Body)
	resp = srv.Do(t, "DELETE", base+"/stripe-key", srv.Token("viewer"), nil)
	require.Equal(t, http.StatusForbidden, resp.Status, "a viewer cannot delete: %s", resp.Body)

	// List as viewer: metadata, no values.
	resp = srv.Do(t, "GET", base, srv.Token("viewer"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), `"stripe-key"`)
	require.NotContains(t, string(resp.Body), canary)

	// Check-and-set race: every writer sends If-Match "1" with its own data;
	// exactly one gets 200, the others 412.
	ifMatchRace(t, srv, base+"/stripe-key", srv.Token("editor"), canary, 6)

	resp = srv.Do(t, "GET", base+"/stripe-key/versions", srv.Token("viewer"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	var vs struct {
		Versions []struct {
			Version int64 `json:"version"`
		} `json:"versions"`
	}
	resp.JSON(t, &vs)
	require.Len(t, vs.Versions, 2)
	resp = srv.Do(t, "GET", base+"/stripe-key?version=1", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	resp.JSON(t, &sec)
	require.Equal(t, canary, sec.Data["api_key"], "version 1 stays readable")

	// Delete with a stale If-Match fails; then delete, and the name is free.
	resp = srv.Do(t, "DELETE", base+"/stripe-key", srv.Token("editor"), nil, "If-Match", `"1"`)
	require.Equal(t, http.StatusPreconditionFailed, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "DELETE", base+"/stripe-key", srv.Token("editor"), nil)
	require.Less(t, resp.Status, 300, "%s", resp.Body)
	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("reader"), nil)
	require.Equal(t, http.StatusNotFound, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "POST", base, srv.Token("editor"), map[string]any{"name": "stripe-key", "data": map[string]string{"api_key": "new"}})
	require.Equal(t, http.StatusCreated, resp.Status, "a deleted name is reusable once AWS frees it (the plugin waits): %s", resp.Body)
	resp.JSON(t, &meta)
	require.Equal(t, int64(1), meta.Version)

	// The versions quota is 429 backend_throttled naming the limit, with the
	// 10 minutes AWS advises between writes, not a retried 503.
	qbase := "/v1/projects/quota/secrets"
	resp = srv.Do(t, "POST", qbase, srv.Token("admin"), map[string]any{"name": "busy", "data": map[string]string{"v": "1"}})
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "PUT", qbase+"/busy", srv.Token("admin"), map[string]any{"data": map[string]string{"v": "2"}})
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "PUT", qbase+"/busy", srv.Token("admin"), map[string]any{"data": map[string]string{"v": "3"}})
	require.Equal(t, http.StatusTooManyRequests, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), "backend_throttled")
	require.Contains(t, string(resp.Body), "versions per secret")
	require.Equal(t, "600", resp.Header.Get("Retry-After"))

	srv.Stop(t)
	for what, text := range map[string]string{"stdout": srv.Stdout(), "stderr": srv.Stderr(), "audit log": srv.Audit()} {
		require.False(t, strings.Contains(text, canary), "the canary value appeared in the server's %s", what)
	}
	require.NotEmpty(t, srv.Audit(), "requests were audited")
}

func awsDecodeData(t *testing.T, resp *testenv.Response) map[string]string {
	t.Helper()
	var v struct {
		Data map[string]string `json:"data"`
	}
	resp.JSON(t, &v)
	return v.Data
}

func awsRandHex(t *testing.T) string {
	t.Helper()
	var b [12]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return hex.EncodeToString(b[:])
}
