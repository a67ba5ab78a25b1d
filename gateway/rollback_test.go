package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// An editor, who can never read values, undoes a bad rotation: version 1's
// data becomes version 3, the labels stay, the answer holds no value, and
// If-Match makes it conditional.
func TestRollback(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"password": canary, "user": "app"})
	r := h.do(t, "PATCH", base+"/db", "t-admin", map[string]any{"set": map[string]string{"password": "bad-rotation"}, "labels": map[string]string{"env": "prod"}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)

	tests := []struct {
		name    string
		token   string
		body    string
		hdrs    []string
		status  int
		code    string
		message string
	}{
		{"reader may not", "t-reader", `{"version":1}`, nil, 403, api.CodePermissionDenied, "secrets.update"},
		{"version missing", "t-editor", `{}`, nil, 400, api.CodeInvalidArgument, "version"},
		{"version zero", "t-editor", `{"version":0}`, nil, 400, api.CodeInvalidArgument, "version"},
		{"unknown field", "t-editor", `{"version":1,"data":{}}`, nil, 400, api.CodeInvalidArgument, "data"},
		{"no such version", "t-editor", `{"version":9}`, nil, 404, api.CodeNotFound, "9"},
		{"stale If-Match", "t-editor", `{"version":1}`, []string{"If-Match", `"1"`}, 412, api.CodeVersionMismatch, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, "POST", base+"/db/rollback", tc.token, tc.body, append([]string{"Content-Type", "application/json"}, tc.hdrs...)...)
			require.Equal(t, tc.status, r.code, "%s", r.body)
			code, msg := errCode(t, r)
			require.Equal(t, tc.code, code)
			require.Contains(t, msg, tc.message)
		})
	}

	r = h.do(t, "POST", base+"/db/rollback", "t-editor", `{"version":1}`, "Content-Type", "application/json", "If-Match", `"2"`)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.NotContains(t, string(r.body), canary)
	require.Equal(t, `"3"`, r.hdr.Get("ETag"))
	var m api.Metadata
	require.NoError(t, json.Unmarshal(r.body, &m))
	require.EqualValues(t, 3, m.Version)
	require.Equal(t, map[string]string{"env": "prod"}, m.Labels, "the labels stay")
	sec, err := h.mem.Read(context.Background(), sdk.Ref{Project: "payments", Name: "db"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"password": canary, "user": "app"}, sec.Data)

	// Audited as an update of the secret, with the new version.
	h.audit.mu.Lock()
	last := h.audit.recs[len(h.audit.recs)-1]
	h.audit.mu.Unlock()
	require.Equal(t, ActionUpdate, last.Action)
	require.Equal(t, "editor", last.Subject)
	require.EqualValues(t, 3, last.Version)
}

// ?keys=true tells which keys each version held (for a history that shows
// what a rotation changed), to a viewer that may not read values.
func TestVersionKeys(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"password": canary, "user": "app"})
	r := h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"password": canary, "host": "db1"}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	r = h.do(t, "GET", base+"/db/versions?keys=true", "t-editor", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.NotContains(t, string(r.body), canary)
	var vl api.VersionList
	require.NoError(t, json.Unmarshal(r.body, &vl))
	require.Len(t, vl.Versions, 2)
	require.Equal(t, []string{"password", "user"}, vl.Versions[0].Keys)
	require.Equal(t, []string{"host", "password"}, vl.Versions[1].Keys)
	r = h.do(t, "GET", base+"/db/versions", "t-editor", nil)
	require.NotContains(t, string(r.body), `"keys"`, "keys only when asked")
	r = h.do(t, "GET", base+"/db/versions?keys=yes", "t-editor", nil)
	require.Equal(t, http.StatusBadRequest, r.code)
	_, msg := errCode(t, r)
	require.Contains(t, msg, "keys")
}
