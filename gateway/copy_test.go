package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// copyHarness: "payments" on backend a, "billing" on backend b, "locked" on
// a; admin holds everything, reader may read payments and create in
// billing, migrator holds only project.migrate on payments (plus create in
// billing), editor may write payments but never read it.
func newCopyHarness(t *testing.T) (*harness, *memBackend, *memBackend) {
	t.Helper()
	a, b := newMemBackend(), newMemBackend()
	audit := &memAuditor{}
	cfg := &Config{
		Backends: []BackendConfig{{Name: "a"}, {Name: "b"}},
		Projects: []ProjectConfig{{Name: "payments", Backend: "a"}, {Name: "billing", Backend: "b"}, {Name: "locked", Backend: "a"}},
	}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}
	authz := fakeAuthz{
		tokens: map[string]string{"t-admin": "admin", "t-reader": "reader", "t-migrator": "migrator", "t-editor": "editor", "t-viewer": "viewer"},
		grants: map[string]fakeGrant{
			"admin/payments":    {actions: all},
			"admin/billing":     {actions: all},
			"admin/locked":      {actions: all},
			"reader/payments":   {actions: []string{ActionList, ActionRead}},
			"reader/billing":    {actions: []string{ActionList, ActionCreate}},
			"migrator/payments": {actions: []string{ActionList, ActionMigrate}},
			"migrator/billing":  {actions: []string{ActionList, ActionCreate}},
			"editor/payments":   {actions: []string{ActionList, ActionCreate, ActionUpdate, ActionDelete}},
			"editor/billing":    {actions: []string{ActionList, ActionCreate, ActionUpdate, ActionDelete}},
			"viewer/billing":    {actions: []string{ActionList}},
		},
	}
	srv, err := New(context.Background(), cfg, Options{
		Logger: slog.New(slog.DiscardHandler), Authorizer: authz, Auditor: audit,
		Backends: &memBackends{m: map[string]*memBackend{"a": a, "b": b}},
	})
	require.NoError(t, err)
	return &harness{srv: srv, mem: a, audit: audit}, a, b
}

func TestCopySecret(t *testing.T) {
	h, a, b := newCopyHarness(t)
	ctx := context.Background()
	for v, val := range []string{"old", canary} {
		mode := sdk.WriteCreate
		if v > 0 {
			mode = sdk.WriteReplace
		}
		_, err := a.Write(ctx, sdk.WriteRequest{Project: "payments", Name: "stripe-key", Data: map[string]string{"api_key": val}, Labels: map[string]string{"env": "prod"}, Mode: mode})
		require.NoError(t, err)
	}
	const url = "/v1/projects/payments/secrets/stripe-key/copy"

	for _, tc := range []struct {
		name, token string
		body        any
		code        int
		want        string // in the body
	}{
		{"no token", "", map[string]any{"to_project": "billing"}, http.StatusUnauthorized, "unauthenticated"},
		{"not json", "t-admin", "{", http.StatusBadRequest, "body"},
		{"unknown field", "t-admin", map[string]any{"to_project": "billing", "data": map[string]string{}}, http.StatusBadRequest, "unknown field"},
		{"bad target project", "t-admin", map[string]any{"to_project": "bad/name"}, http.StatusBadRequest, "to_project"},
		{"bad new name", "t-admin", map[string]any{"to_project": "billing", "as": "no spaces allowed"}, http.StatusBadRequest, "as"},
		{"negative version", "t-admin", map[string]any{"to_project": "billing", "version": -1}, http.StatusBadRequest, "version"},
		{"same place", "t-admin", map[string]any{}, http.StatusBadRequest, "invalid as: must differ"},
		{"editor cannot read the source", "t-editor", map[string]any{"to_project": "billing"}, http.StatusForbidden, "project.migrate"},
		{"target without binding", "t-reader", map[string]any{"to_project": "locked"}, http.StatusNotFound, `project \"locked\" not found`},
		{"target not configured", "t-admin", map[string]any{"to_project": "nowhere"}, http.StatusNotFound, "not found"},
		{"reader cannot overwrite", "t-reader", map[string]any{"to_project": "billing", "overwrite": true}, http.StatusForbidden, "secrets.update"},
		{"missing source", "t-admin", map[string]any{"to_project": "billing", "version": 9}, http.StatusNotFound, "version 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, "POST", url, tc.token, tc.body)
			require.Equal(t, tc.code, r.code, "%s", r.body)
			require.Contains(t, string(r.body), tc.want)
		})
	}
	_, err := b.Read(ctx, sdk.Ref{Project: "billing", Name: "stripe-key"})
	require.ErrorIs(t, err, sdk.ErrNotFound, "no refused copy wrote anything")

	// A reader (secrets.read on the source, create on the target) copies
	// across backends; the answer is metadata only.
	r := h.do(t, "POST", url, "t-reader", map[string]any{"to_project": "billing"})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	require.NotContains(t, string(r.body), canary)
	require.Equal(t, "/v1/projects/billing/secrets/stripe-key", r.hdr.Get("Location"))
	var meta api.Metadata
	require.NoError(t, json.Unmarshal(r.body, &meta))
	require.Equal(t, "billing", meta.Project)
	require.Equal(t, int64(1), meta.Version)
	require.Equal(t, map[string]string{"env": "prod"}, meta.Labels)
	got, err := b.Read(ctx, sdk.Ref{Project: "billing", Name: "stripe-key"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"api_key": canary}, got.Data)

	r = h.do(t, "POST", url, "t-reader", map[string]any{"to_project": "billing"})
	require.Equal(t, http.StatusConflict, r.code, "%s", r.body)
	require.Contains(t, string(r.body), "already_exists")

	// project.migrate alone lets a subject move a value it cannot read.
	r = h.do(t, "GET", "/v1/projects/payments/secrets/stripe-key", "t-migrator", nil)
	require.Equal(t, http.StatusForbidden, r.code)
	r = h.do(t, "POST", url, "t-migrator", map[string]any{"to_project": "billing", "as": "stripe-key-v1", "version": 1})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	got, err = b.Read(ctx, sdk.Ref{Project: "billing", Name: "stripe-key-v1"})
	require.NoError(t, err)
	require.Equal(t, "old", got.Data["api_key"], "version 1 was copied")

	// Overwrite makes a new version of an existing target; within one
	// project a new name is enough.
	r = h.do(t, "POST", url, "t-admin", map[string]any{"to_project": "billing", "as": "stripe-key-v1", "overwrite": true})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, `"2"`, r.hdr.Get("ETag"))
	r = h.do(t, "POST", url, "t-admin", map[string]any{"as": "stripe-key-copy"})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)

	// A project being migrated takes no copies.
	require.NoError(t, h.srv.Routing().SetReadOnly("billing", true))
	r = h.do(t, "POST", url, "t-admin", map[string]any{"to_project": "billing", "as": "late"})
	require.Equal(t, http.StatusConflict, r.code, "%s", r.body)
	require.Contains(t, string(r.body), "migration_in_progress")

	// Audit: the source read and the target write, never the value.
	var srcRead, dstWrite bool
	for _, rec := range h.audit.records() {
		if rec.Project == "payments" && rec.Secret == "stripe-key" && rec.Outcome == "ok" && (rec.Action == ActionRead || rec.Action == ActionMigrate) {
			srcRead = true
		}
		if rec.Project == "billing" && rec.Secret == "stripe-key" && rec.Action == ActionCreate && rec.Phase == PhaseIntent {
			dstWrite = true
		}
	}
	require.True(t, srcRead && dstWrite, "both sides are audited")
	recs, _ := json.Marshal(h.audit.records())
	require.NotContains(t, string(recs), canary)
}

func TestListProjects(t *testing.T) {
	h, _, _ := newCopyHarness(t)
	r := h.do(t, "GET", "/v1/projects", "", nil)
	require.Equal(t, http.StatusUnauthorized, r.code)
	for _, tc := range []struct {
		token string
		want  []api.Project
	}{
		{"t-admin", []api.Project{
			{Name: "billing", Actions: []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}},
			{Name: "locked", Actions: []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}},
			{Name: "payments", Actions: []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}},
		}},
		{"t-reader", []api.Project{
			{Name: "billing", Actions: []string{ActionList, ActionCreate}},
			{Name: "payments", Actions: []string{ActionList, ActionRead}},
		}},
		{"t-viewer", []api.Project{{Name: "billing", Actions: []string{ActionList}}}},
	} {
		r := h.do(t, "GET", "/v1/projects", tc.token, nil)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.Equal(t, "no-store", r.hdr.Get("Cache-Control"))
		var got struct {
			Subject  string
			Projects []api.Project
		}
		require.NoError(t, json.Unmarshal(r.body, &got))
		require.Equal(t, tc.want, got.Projects, tc.token)
		require.Equal(t, strings.TrimPrefix(tc.token, "t-"), got.Subject)
	}
}

// PATCH can change the labels alone (a new version with the same values),
// clear them with {}, and leaves them alone when absent.
func TestPatchLabels(t *testing.T) {
	h := newHarness(t)
	base := "/v1/projects/payments/secrets/"
	r := h.do(t, "POST", "/v1/projects/payments/secrets", "t-editor", map[string]any{"name": "db", "data": map[string]string{"pw": canary}, "labels": map[string]string{"env": "dev"}})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)

	for _, tc := range []struct {
		body   any
		code   int
		labels map[string]string
	}{
		{map[string]any{"labels": map[string]string{"env": "prod", "team": "pay"}}, http.StatusOK, map[string]string{"env": "prod", "team": "pay"}},
		{map[string]any{"set": map[string]string{"user": "app"}}, http.StatusOK, map[string]string{"env": "prod", "team": "pay"}},
		{map[string]any{"labels": map[string]string{}}, http.StatusOK, map[string]string{}},
		{map[string]any{"labels": map[string]string{"Bad Key": "x"}}, http.StatusBadRequest, nil},
		{map[string]any{}, http.StatusBadRequest, nil},
	} {
		r := h.do(t, "PATCH", base+"db", "t-editor", tc.body)
		require.Equal(t, tc.code, r.code, "%v: %s", tc.body, r.body)
		if tc.code != http.StatusOK {
			require.Contains(t, string(r.body), "invalid_argument")
			continue
		}
		var m api.Metadata
		require.NoError(t, json.Unmarshal(r.body, &m))
		require.Equal(t, tc.labels, m.Labels, "%v", tc.body)
	}
	sec, err := h.mem.Read(context.Background(), sdk.Ref{Project: "payments", Name: "db"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"pw": canary, "user": "app"}, sec.Data, "label patches keep the values")
	require.Equal(t, int64(4), sec.Version)
}
