package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/policy"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// reloadEnv is a server with a real policy (no fixed authorizer), so that
// reloads change who may do what, over two in-memory backends.
type reloadEnv struct {
	srv  *Server
	mems map[string]*memBackend
	logs *bytes.Buffer
}

func subjectOf(name, token string) SubjectConfig {
	h := policy.HashToken(token)
	return SubjectConfig{Name: name, TokenSHA256: TokenHashes{encodeHex(h[:])}}
}

func encodeHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// reloadCfg: alice admin on payments, bob reader on payments.
func reloadCfg() *Config {
	return &Config{
		Backends: []BackendConfig{{Name: "mem", Plugin: "file"}, {Name: "mem2", Plugin: "file"}},
		Projects: []ProjectConfig{{Name: "payments", Backend: "mem"}},
		Subjects: []SubjectConfig{subjectOf("alice", "t-alice"), subjectOf("bob", "t-bob")},
		Bindings: []BindingConfig{
			{Subject: "alice", Project: "payments", Role: "admin"},
			{Subject: "bob", Project: "payments", Role: "reader"},
		},
	}
}

func newReloadEnv(t *testing.T, wrap ...func(Backends) Backends) *reloadEnv {
	t.Helper()
	mems := map[string]*memBackend{"mem": newMemBackend(), "mem2": newMemBackend()}
	var backends Backends = &memBackends{m: mems}
	for _, w := range wrap {
		backends = w(backends)
	}
	logs := &bytes.Buffer{}
	srv, err := New(context.Background(), reloadCfg(), Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Auditor: &memAuditor{}, Backends: backends,
	})
	require.NoError(t, err)
	return &reloadEnv{srv: srv, mems: mems, logs: logs}
}

func (e *reloadEnv) code(t *testing.T, method, path, token string, body string) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	return w.Code
}

// Subjects, tokens, bindings and projects change with a reload; what the
// new configuration removes stops working at the next request.
func TestReloadChangesWhoMayDoWhat(t *testing.T) {
	e := newReloadEnv(t)
	const sec = "/v1/projects/payments/secrets"
	require.Equal(t, 201, e.code(t, "POST", sec, "t-alice", `{"name":"db","data":{"k":"v"}}`))
	require.Equal(t, 200, e.code(t, "GET", sec+"/db", "t-bob", ""))

	cfg := reloadCfg()
	cfg.Projects = append(cfg.Projects, ProjectConfig{Name: "other", Backend: "mem2"})
	carol := subjectOf("carol", "t-carol-new")
	carol.TokenSHA256 = append(carol.TokenSHA256, subjectOf("carol", "t-carol-old").TokenSHA256...)
	cfg.Subjects = []SubjectConfig{subjectOf("alice", "t-alice"), carol} // bob removed
	cfg.Bindings = []BindingConfig{
		{Subject: "alice", Project: "other", Role: "admin"}, // alice loses payments
		{Subject: "carol", Project: "payments", Role: "reader"},
	}
	rep, err := e.srv.Reload(context.Background(), cfg)
	require.NoError(t, err)
	require.Empty(t, rep.Kept)

	require.Equal(t, 401, e.code(t, "GET", sec+"/db", "t-bob", ""), "a removed subject's token")
	require.Equal(t, 404, e.code(t, "GET", sec+"/db", "t-alice", ""), "a removed binding")
	require.Equal(t, 201, e.code(t, "POST", "/v1/projects/other/secrets", "t-alice", `{"name":"x","data":{"k":"v"}}`), "a new project on a new backend")
	_, err = e.mems["mem2"].Describe(context.Background(), sdk.Ref{Project: "other", Name: "x"})
	require.NoError(t, err, "the new project's backend")
	for _, tok := range []string{"t-carol-new", "t-carol-old"} {
		require.Equal(t, 200, e.code(t, "GET", sec+"/db", tok, ""), "both tokens of a rotation work")
	}
	require.Contains(t, e.metrics(t), `secretgate_config_reloads_total{outcome="ok"} 1`)
}

func (e *reloadEnv) metrics(t *testing.T) string {
	t.Helper()
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

// An invalid file changes nothing: the error names the field, the old
// configuration keeps serving, and the metric counts the failure.
func TestReloadInvalidFileChangesNothing(t *testing.T) {
	e := newReloadEnv(t)
	path := filepath.Join(t.TempDir(), "secretgate.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(goodYAML(), "role: editor", "role: owner", 1)), 0o600))
	err := e.srv.ReloadFile(context.Background(), path, env(nil), nil)
	require.ErrorContains(t, err, "bindings[0].role")
	require.Contains(t, e.logs.String(), "bindings[0].role")
	require.Contains(t, e.logs.String(), "the previous configuration keeps serving")
	require.Equal(t, 200, e.code(t, "GET", "/v1/projects/payments/secrets", "t-bob", ""))
	require.Contains(t, e.metrics(t), `secretgate_config_reloads_total{outcome="error"} 1`)

	// A valid file that removes a backend a project still uses (through a
	// migration's binding) is refused as a whole.
	require.NoError(t, e.srv.Routing().SetBackend("payments", "mem2"))
	cfg := reloadCfg()
	cfg.Backends = cfg.Backends[:1]
	_, err = e.srv.Reload(context.Background(), cfg)
	require.ErrorContains(t, err, `backend "mem2" is still used by project "payments"`)
	require.Equal(t, 200, e.code(t, "GET", "/v1/projects/payments/secrets", "t-bob", ""))
}

// A project a migration is moving keeps its binding through a reload; a
// project a finished migration moved keeps the migration's binding while
// the file still names the old backend (as at start-up).
func TestReloadKeepsMigrationBindings(t *testing.T) {
	e := newReloadEnv(t)
	mg := e.srv.migrator
	m := &migration{rep: api.MigrationReport{ID: "m1", State: "running", Source: "mem", Target: "mem2", Projects: []string{"payments"}}}
	other, _ := mg.claim(m)
	require.Empty(t, other)
	require.NoError(t, e.srv.Routing().SetReadOnly("payments", true))

	cfg := reloadCfg()
	cfg.Projects = []ProjectConfig{{Name: "payments", Backend: "mem2"}}
	rep, err := e.srv.Reload(context.Background(), cfg)
	require.NoError(t, err)
	require.Contains(t, rep.Kept, "payments")
	rt, _ := e.srv.Routing().Lookup("payments")
	require.Equal(t, Route{Project: "payments", Backend: "mem", ReadOnly: true}, rt)

	// Back to a file naming mem; the migration ends and switches to mem2.
	// A reload of that unchanged file keeps the switch.
	_, err = e.srv.Reload(context.Background(), reloadCfg())
	require.NoError(t, err)
	mg.release([]string{"payments"})
	require.NoError(t, e.srv.Routing().SetBackend("payments", "mem2"))
	require.NoError(t, e.srv.Routing().SetReadOnly("payments", false))
	_, err = e.srv.Reload(context.Background(), reloadCfg())
	require.NoError(t, err)
	rt, _ = e.srv.Routing().Lookup("payments")
	require.Equal(t, Route{Project: "payments", Backend: "mem2"}, rt, "the migration's binding stands")
	// A file that changes the binding itself is obeyed.
	_, err = e.srv.Reload(context.Background(), cfg) // names mem2: agrees
	require.NoError(t, err)
	back := reloadCfg()
	_, err = e.srv.Reload(context.Background(), back) // an explicit rebinding to mem
	require.NoError(t, err)
	rt, _ = e.srv.Routing().Lookup("payments")
	require.Equal(t, "mem", rt.Backend)
}

// A request in flight finishes on the configuration it was authenticated
// with: a listing that started before a reload narrowed the caller's globs
// shows what the old policy allowed, and the next listing what the new one
// allows.
func TestReloadInFlightKeepsItsSnapshot(t *testing.T) {
	gate := &listGate{entered: make(chan struct{}), release: make(chan struct{})}
	e := newReloadEnv(t, func(b Backends) Backends { return gatedBackends{Backends: b, gate: gate} })
	for _, n := range []string{"api-key", "db"} {
		_, err := e.mems["mem"].Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: n, Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	var inflight *httptest.ResponseRecorder
	wg.Add(1)
	go func() {
		defer wg.Done()
		req := httptest.NewRequest("GET", "/v1/projects/payments/secrets", nil)
		req.Header.Set("Authorization", "Bearer t-bob")
		inflight = httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(inflight, req)
	}()
	<-gate.entered
	cfg := reloadCfg()
	cfg.Bindings[1].Secrets = []string{"db"}
	_, err := e.srv.Reload(context.Background(), cfg)
	require.NoError(t, err)
	gate.open()
	wg.Wait()
	require.Equal(t, http.StatusOK, inflight.Code)
	require.Contains(t, inflight.Body.String(), `"api-key"`, "the in-flight listing decided with the old policy")

	req := httptest.NewRequest("GET", "/v1/projects/payments/secrets", nil)
	req.Header.Set("Authorization", "Bearer t-bob")
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	require.NotContains(t, w.Body.String(), `"api-key"`, "the next listing decides with the new one")
	require.Contains(t, w.Body.String(), `"db"`)
}

// A subject's token past its expires_at answers 401 saying it expired.
func TestExpiredTokenSaysSo(t *testing.T) {
	e := newReloadEnv(t)
	cfg := reloadCfg()
	cfg.Subjects[1].ExpiresAt = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	_, err := e.srv.Reload(context.Background(), cfg)
	require.NoError(t, err)
	req := httptest.NewRequest("GET", "/v1/projects/payments/secrets", nil)
	req.Header.Set("Authorization", "Bearer t-bob")
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	require.Equal(t, 401, w.Code)
	require.Contains(t, w.Body.String(), "token expired at "+cfg.Subjects[1].ExpiresAt.Format(time.RFC3339))
	require.Equal(t, 200, e.code(t, "GET", "/v1/projects/payments/secrets", "t-alice", ""))
}

type listGate struct {
	entered, release chan struct{}
	once             sync.Once
}

func (g *listGate) open() { close(g.release) }

type gatedBackends struct {
	Backends
	gate *listGate
}

func (b gatedBackends) Backend(name string) (sdk.Backend, error) {
	be, err := b.Backends.Backend(name)
	if err != nil {
		return nil, err
	}
	return gatedBackend{Backend: be, gate: b.gate}, nil
}

type gatedBackend struct {
	sdk.Backend
	gate *listGate
}

func (g gatedBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	first := false
	g.gate.once.Do(func() { first = true })
	if first {
		close(g.gate.entered)
		<-g.gate.release
	}
	return g.Backend.List(ctx, req)
}

// An open event stream follows reloads: once its subject loses the project,
// the next event ends the stream instead of reaching it.
func TestReloadEndsStreamsOfRemovedBindings(t *testing.T) {
	e := newReloadEnv(t)
	ts := httptest.NewServer(e.srv.Handler())
	t.Cleanup(ts.Close)
	req, err := http.NewRequest("GET", ts.URL+"/v1/projects/payments/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer t-bob")
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body) // until the gateway ends the stream
		body <- string(b)
	}()
	require.Eventually(t, func() bool {
		pl := e.srv.events().project("payments")
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return len(pl.subs) == 1
	}, 5*time.Second, 10*time.Millisecond)

	cfg := reloadCfg()
	cfg.Bindings = cfg.Bindings[:1] // bob loses payments
	_, err = e.srv.Reload(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, e.code(t, "POST", "/v1/projects/payments/secrets", "t-alice", `{"name":"after","data":{"k":"v"}}`))
	select {
	case b := <-body:
		require.NotContains(t, b, "after", "an event reached a subject the reload took the project from")
	case <-time.After(5 * time.Second):
		t.Fatal("the stream of a subject without a binding was not ended")
	}
}
