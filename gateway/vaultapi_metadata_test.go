package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// custom_metadata is the labels: a change writes a new version with the
// same data; PATCH merges (null removes); Vault's per-secret settings are
// taken at their defaults only.
func TestVaultAPIMetadata(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "m", map[string]any{"password": vcanary})
	r := e.do(t, "POST", "/v1/secret/metadata/payments/m", "t-carol", map[string]any{"custom_metadata": map[string]string{"owner": "team-a", "env": "prod"}, "max_versions": 0, "cas_required": false, "delete_version_after": "0s"})
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	r = e.do(t, "PATCH", "/v1/secret/metadata/payments/m", "t-carol", map[string]any{"custom_metadata": map[string]any{"env": nil, "tier": "1"}}, "Content-Type", "application/merge-patch+json")
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)

	r = e.do(t, "GET", "/v1/secret/metadata/payments/m", "t-carol", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.NotContains(t, string(r.body), vcanary)
	md := r.json(t)["data"].(map[string]any)
	require.Equal(t, map[string]any{"owner": "team-a", "tier": "1"}, md["custom_metadata"])
	require.Equal(t, float64(3), md["current_version"])
	require.Len(t, md["versions"], 3)
	require.Contains(t, md["versions"], "1")
	r = e.do(t, "GET", "/v1/secret/data/payments/m", "t-alice", nil)
	require.Equal(t, map[string]any{"password": vcanary}, r.json(t)["data"].(map[string]any)["data"], "a label change keeps the data")

	// The same labels again write nothing.
	r = e.do(t, "PUT", "/v1/secret/metadata/payments/m", "t-carol", map[string]any{"custom_metadata": map[string]string{"owner": "team-a", "tier": "1"}})
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	r = e.do(t, "GET", "/v1/secret/metadata/payments/m", "t-carol", nil)
	require.Equal(t, float64(3), r.json(t)["data"].(map[string]any)["current_version"])

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"max_versions": 5}, "max_versions"},
		{map[string]any{"cas_required": true}, "cas_required"},
		{map[string]any{"delete_version_after": "1h"}, "delete_version_after"},
		{map[string]any{"custom_metadata": map[string]string{"Owner": "x"}}, "custom_metadata"},
		{map[string]any{"custom_metadata": map[string]any{"n": 1}}, "custom_metadata.n"},
	} {
		r = e.do(t, "POST", "/v1/secret/metadata/payments/m", "t-alice", tc.body)
		require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
		require.True(t, strings.HasPrefix(r.errs(t)[0], "invalid "+tc.field), "%v", r.errs(t))
	}
	// No metadata without a secret.
	r = e.do(t, "POST", "/v1/secret/metadata/payments/none", "t-alice", map[string]any{"custom_metadata": map[string]string{"a": "b"}})
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	require.Equal(t, []string{"payments/m secret.created", "payments/m secret.updated", "payments/m secret.updated"}, e.events.all())
}

// LIST metadata/ shows the caller's projects as folders; LIST of a project
// its visible secrets (GET ?list=true alike); an empty listing is 404.
func TestVaultAPIListing(t *testing.T) {
	e := newVaultEnv(t)
	for _, n := range []string{"db", "stripe-a", "stripe-b"} {
		e.put(t, n, map[string]any{"k": "v"})
	}
	keys := func(r vresp) []any {
		t.Helper()
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		return r.json(t)["data"].(map[string]any)["keys"].([]any)
	}
	require.Equal(t, []any{"payments/"}, keys(e.do(t, "LIST", "/v1/secret/metadata/", "t-bob", nil)))
	require.Equal(t, []any{"payments/"}, keys(e.do(t, "GET", "/v1/secret/metadata?list=true", "t-bob", nil)))
	require.Equal(t, []any{"other/", "payments/"}, keys(e.do(t, "LIST", "/v1/secret/metadata", "t-alice", nil)))
	require.Equal(t, []any{"db", "stripe-a", "stripe-b"}, keys(e.do(t, "LIST", "/v1/secret/metadata/payments", "t-bob", nil)))
	require.Equal(t, []any{"stripe-a", "stripe-b"}, keys(e.do(t, "GET", "/v1/secret/metadata/payments/?list=true", "t-dave", nil)))
	r := e.do(t, "LIST", "/v1/secret/metadata/other/", "t-erin", nil)
	require.Equal(t, http.StatusNotFound, r.code, "an empty listing")
	r = e.do(t, "LIST", "/v1/secret/metadata/other/", "t-bob", nil)
	require.Equal(t, http.StatusNotFound, r.code, "no binding")
	r = e.do(t, "LIST", "/v1/secret/data/payments/", "t-bob", nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.code)
	require.NotEmpty(t, r.errs(t))
}

// DELETE data/ and metadata/ delete the secret with every version (the data
// route says so in a warning); deleting nothing succeeds as in Vault,
// audited not_found; single-version delete, undelete and destroy are
// refused with the reason.
func TestVaultAPIDeletes(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "d", map[string]any{"k": "v"})
	e.put(t, "d", map[string]any{"k": "w"})
	for _, op := range []string{"delete", "undelete", "destroy"} {
		r := e.do(t, "POST", "/v1/secret/"+op+"/payments/d", "t-alice", map[string]any{"versions": []int{1}})
		require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
		require.Contains(t, r.errs(t)[0], "not supported")
	}
	r := e.do(t, "DELETE", "/v1/secret/data/payments/d", "t-carol", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Contains(t, r.json(t)["warnings"].([]any)[0], "every version")
	require.Equal(t, http.StatusNotFound, e.do(t, "GET", "/v1/secret/data/payments/d?version=1", "t-alice", nil).code)
	r = e.do(t, "DELETE", "/v1/secret/data/payments/d", "t-carol", nil)
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	rec := e.lastAudit(t)
	require.Equal(t, "not_found", rec.Outcome)
	require.Equal(t, ActionDelete, rec.Action)
	r = e.do(t, "DELETE", "/v1/secret/metadata/payments/d", "t-carol", nil)
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	require.Equal(t, "payments/d secret.deleted", e.events.all()[2])
	require.Len(t, e.events.all(), 3)
}
