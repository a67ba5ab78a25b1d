package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// hookedBackend wraps a memBackend: reads wait for gate to close, the
// first failWrites writes answer ErrUnavailable, and readBack (when set)
// replaces what a successful read answers.
type hookedBackend struct {
	*memBackend
	gate       chan struct{}
	failWrites atomic.Int64
	failed     atomic.Int64
	// readBack models a backend that acknowledges writes and then reads
	// back something else; set before the backend is used, it must not
	// modify sec's maps (they may be the store's own).
	readBack func(sec sdk.Secret) (sdk.Secret, error)
}

func (h *hookedBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if h.gate != nil {
		select {
		case <-h.gate:
		case <-ctx.Done():
			return sdk.Secret{}, ctx.Err()
		}
	}
	sec, err := h.memBackend.Read(ctx, ref)
	if err == nil && h.readBack != nil {
		return h.readBack(sec)
	}
	return sec, err
}

func (h *hookedBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if h.failWrites.Add(-1) >= 0 {
		h.failed.Add(1)
		return sdk.Meta{}, fmt.Errorf("target flaking: %w", sdk.ErrUnavailable)
	}
	return h.memBackend.Write(ctx, req)
}

type hookedBackends struct {
	memBackends
	hooked map[string]*hookedBackend
}

func (b *hookedBackends) Backend(name string) (sdk.Backend, error) {
	if h, ok := b.hooked[name]; ok {
		return h, nil
	}
	return nil, sdk.ErrUnavailable
}

type migrateEnv struct {
	h        *harness
	srv      *Server
	src, dst *hookedBackend
	audit    *memAuditor
	logs     *syncbuf.Buffer
}

func newMigrateEnv(t *testing.T) *migrateEnv {
	t.Helper()
	return newMigrateEnvAt(t, "", &hookedBackend{memBackend: newMemBackend()}, &hookedBackend{memBackend: newMemBackend()}, "a")
}

// newMigrateEnvAt builds a gateway over the given backends; with a state
// dir it keeps its routing overlay and migration journal there, as a
// server does beside its audit log. "payments" is bound to paymentsOn.
func newMigrateEnvAt(t *testing.T, stateDir string, src, dst *hookedBackend, paymentsOn string) *migrateEnv {
	t.Helper()
	logs := &syncbuf.Buffer{}
	audit := &memAuditor{}
	cfg := &Config{
		Backends: []BackendConfig{{Name: "a"}, {Name: "b"}},
		Projects: []ProjectConfig{{Name: "payments", Backend: paymentsOn}, {Name: "other", Backend: "a"}},
	}
	if stateDir != "" {
		cfg.Audit.Path = filepath.Join(stateDir, "audit.log")
	}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}
	authz := fakeAuthz{
		tokens: map[string]string{"t-admin": "admin", "t-editor": "editor"},
		grants: map[string]fakeGrant{
			"admin/payments":  {actions: all},
			"editor/payments": {actions: all[:5]},
		},
	}
	srv, err := New(context.Background(), cfg, Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Authorizer: authz, Auditor: audit,
		Backends: &hookedBackends{hooked: map[string]*hookedBackend{"a": src, "b": dst}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &migrateEnv{h: &harness{srv: srv, audit: audit}, srv: srv, src: src, dst: dst, audit: audit, logs: logs}
}

// wait polls a migration until it ends.
func (e *migrateEnv) wait(t *testing.T, id string) api.MigrationReport {
	t.Helper()
	var rep api.MigrationReport
	require.Eventually(t, func() bool {
		r := e.h.do(t, "GET", "/v1/migrations/"+id, "t-admin", nil)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.NoError(t, json.Unmarshal(r.body, &rep))
		return rep.State != api.MigrationRunning
	}, 30*time.Second, 20*time.Millisecond)
	return rep
}

func TestMigrationEngine(t *testing.T) {
	e := newMigrateEnv(t)
	h, srv, src, dst, audit, logs := e.h, e.srv, e.src, e.dst, e.audit, e.logs
	src.gate = make(chan struct{})
	dst.failWrites.Store(3)

	const canary = "CANARY-migrate-55e1"
	for i := range 20 {
		_, err := src.memBackend.Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: fmt.Sprintf("k%02d", i),
			Data: map[string]string{"v": canary + fmt.Sprint(i)}, Labels: map[string]string{"n": fmt.Sprint(i)}, Mode: sdk.WriteCreate})
		require.NoError(t, err)
	}
	body := map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "versions": "all", "on_conflict": "fail", "switch": true}

	r := h.do(t, "POST", "/v1/migrations", "t-editor", body)
	require.Equal(t, http.StatusForbidden, r.code, "%s", r.body)
	r = h.do(t, "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "b", "projects": []string{"other"}, "versions": "all", "on_conflict": "fail"})
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
	r = h.do(t, "POST", "/v1/migrations", "", body)
	require.Equal(t, http.StatusUnauthorized, r.code, "%s", r.body)

	r = h.do(t, "POST", "/v1/migrations", "t-admin", body)
	require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
	var started struct{ ID string }
	require.NoError(t, json.Unmarshal(r.body, &started))

	// While it runs (held at the source's reads), writes get 409, reads go on,
	// and a second migration of the project is refused.
	r = h.do(t, "PUT", base+"/k01", "t-admin", map[string]any{"data": map[string]string{"v": "x"}})
	require.Equal(t, http.StatusConflict, r.code, "%s", r.body)
	require.Contains(t, string(r.body), "migration_in_progress")
	r = h.do(t, "POST", "/v1/migrations", "t-admin", body)
	require.Equal(t, http.StatusConflict, r.code, "%s", r.body)
	close(src.gate)

	var rep api.MigrationReport
	require.Eventually(t, func() bool {
		r := h.do(t, "GET", "/v1/migrations/"+started.ID, "t-admin", nil)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.NotContains(t, string(r.body), canary)
		require.NoError(t, json.Unmarshal(r.body, &rep))
		return rep.State != api.MigrationRunning
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, api.MigrationSucceeded, rep.State, "%+v", rep)
	require.Equal(t, 20, rep.Total)
	require.Equal(t, 20, rep.Verified)
	require.True(t, rep.Switched)
	require.Equal(t, int64(3), dst.failed.Load(), "ErrUnavailable writes were retried")

	rt, _ := srv.Routing().Lookup("payments")
	require.Equal(t, Route{Project: "payments", Backend: "b"}, rt)
	r = h.do(t, "PUT", base+"/k01", "t-admin", map[string]any{"data": map[string]string{"v": "new"}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	sec, err := dst.memBackend.Read(context.Background(), sdk.Ref{Project: "payments", Name: "k01"})
	require.NoError(t, err)
	require.Equal(t, "new", sec.Data["v"], "writes after the switch land in the target")
	old, err := src.memBackend.Read(context.Background(), sdk.Ref{Project: "payments", Name: "k01"})
	require.NoError(t, err)
	require.Equal(t, int64(1), old.Version, "the source is never modified")

	r = h.do(t, "GET", "/v1/migrations/nope", "t-admin", nil)
	require.Equal(t, http.StatusNotFound, r.code)
	r = h.do(t, "GET", "/v1/migrations", "t-editor", nil)
	require.Equal(t, http.StatusOK, r.code)
	require.NotContains(t, string(r.body), started.ID, "only subjects who may migrate see a migration")

	recs, _ := json.Marshal(audit.records())
	require.NotContains(t, string(recs), canary)
	require.Contains(t, string(recs), ActionMigrate)
	require.NotContains(t, logs.String(), canary)

	// Metrics count by backend pair and outcome, never by secret.
	r = h.do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.code)
	metricsText := string(r.body)
	require.Contains(t, metricsText, `secretgate_migration_secrets_total{source="a",target="b",outcome="copied"} 20`)
	require.Contains(t, metricsText, `secretgate_migration_secrets_total{source="a",target="b",outcome="verified"} 20`)
	require.Contains(t, metricsText, "secretgate_migrations_running 0\n")
	require.NotContains(t, metricsText, "k01")
	require.NotContains(t, metricsText, canary)
}

func TestDigestCoversDataAndLabels(t *testing.T) {
	base, err := digest(map[string]string{"a": "1"}, nil)
	require.NoError(t, err)
	for _, tc := range []struct {
		data, labels map[string]string
		same         bool
	}{
		{map[string]string{"a": "1"}, map[string]string{}, true},
		{map[string]string{"a": "2"}, nil, false},
		{map[string]string{"a": "1"}, map[string]string{"a": "1"}, false},
		{map[string]string{"a": "1", "b": ""}, nil, false},
	} {
		d, err := digest(tc.data, tc.labels)
		require.NoError(t, err)
		require.Equal(t, tc.same, bytes.Equal(base, d), "%v %v", tc.data, tc.labels)
	}
}

// A run cut short leaves a secret whose target history is a prefix of the
// source's; the next run finishes it even with on_conflict fail.
func TestMigrationResumesPartialHistory(t *testing.T) {
	e := newMigrateEnv(t)
	ctx := context.Background()
	for v := 1; v <= 3; v++ {
		mode := sdk.WriteReplace
		if v == 1 {
			mode = sdk.WriteCreate
		}
		_, err := e.src.memBackend.Write(ctx, sdk.WriteRequest{Project: "payments", Name: "db", Data: map[string]string{"v": fmt.Sprint(v)}, Mode: mode})
		require.NoError(t, err)
	}
	_, err := e.dst.memBackend.Write(ctx, sdk.WriteRequest{Project: "payments", Name: "db", Data: map[string]string{"v": "1"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)

	r := e.h.do(t, "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "versions": "all", "on_conflict": "fail"})
	require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
	var started struct{ ID string }
	require.NoError(t, json.Unmarshal(r.body, &started))
	rep := e.wait(t, started.ID)
	require.Equal(t, api.MigrationSucceeded, rep.State, "%+v", rep)
	require.Equal(t, 1, rep.Copied)
	require.Equal(t, 1, rep.Verified)
	for v := int64(1); v <= 3; v++ {
		sec, err := e.dst.memBackend.Read(ctx, sdk.Ref{Project: "payments", Name: "db", Version: v})
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(v), sec.Data["v"])
	}
	_, err = e.dst.memBackend.Read(ctx, sdk.Ref{Project: "payments", Name: "db", Version: 4})
	require.Error(t, err, "no version was written twice")
}
