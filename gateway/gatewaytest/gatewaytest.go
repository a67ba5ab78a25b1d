// Package gatewaytest runs the real gateway in a test: the handlers,
// authentication, the policy, audit and paging of package gateway, over an
// in-memory backend, behind an httptest server on a loopback port. Tests of
// API clients (sdk/client, the CLI) talk to it instead of an imitation of the
// API, so they cannot drift from what the gateway answers. End-to-end tests
// of the binary, its plugins and its configuration use internal/testenv.
package gatewaytest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/secretgate/secretgate/gateway"
	"github.com/secretgate/secretgate/policy"
	"github.com/secretgate/secretgate/sdk"
)

// Tokens of the subjects every Server knows. Subjects "admin", "editor",
// "reader" and "viewer" hold the role of their name on projects "default"
// and "payments"; "narrow" is an editor and reader of "stripe-*" in
// "payments" only.
const (
	AdminToken  = "sg_test_admin"
	EditorToken = "sg_test_editor"
	ReaderToken = "sg_test_reader"
	ViewerToken = "sg_test_viewer"
	NarrowToken = "sg_test_narrow"
)

// Projects returns the projects every Server serves, all on one Memory
// backend.
func Projects() []string { return []string{"default", "payments"} }

// BackendName is the name of the Memory backend in the configuration.
const BackendName = "memory"

// Server is a running gateway. Its zero value is not usable; call Start.
type Server struct {
	*httptest.Server
	// Gateway is the server under test; Memory is its only backend.
	Gateway *gateway.Server
	Memory  *Memory

	audit *memAuditor

	mu       sync.Mutex
	requests []Recorded
}

// Recorded is what the server saw of one request: headers only, never
// bodies, which may hold values.
type Recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
}

// Config is the configuration Start builds the gateway from: the projects,
// the subjects of the tokens above and their bindings.
func Config() *gateway.Config {
	cfg := &gateway.Config{Backends: []gateway.BackendConfig{{Name: BackendName, Plugin: BackendName}}}
	for _, p := range Projects() {
		cfg.Projects = append(cfg.Projects, gateway.ProjectConfig{Name: p, Backend: BackendName})
	}
	for name, token := range map[string]string{
		"admin": AdminToken, "editor": EditorToken, "reader": ReaderToken, "viewer": ViewerToken, "narrow": NarrowToken,
	} {
		cfg.Subjects = append(cfg.Subjects, gateway.SubjectConfig{Name: name, TokenSHA256: gateway.TokenHashes{tokenHash(token)}})
	}
	for _, p := range Projects() {
		for _, r := range policy.Roles() {
			cfg.Bindings = append(cfg.Bindings, gateway.BindingConfig{Subject: r, Project: p, Role: r})
		}
	}
	cfg.Bindings = append(cfg.Bindings,
		gateway.BindingConfig{Subject: "narrow", Project: "payments", Role: policy.RoleEditor, Secrets: []string{"stripe-*"}},
		gateway.BindingConfig{Subject: "narrow", Project: "payments", Role: policy.RoleReader, Secrets: []string{"stripe-*"}})
	return cfg
}

// Start serves a new gateway on a loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	cfg := Config()
	pol, err := gateway.NewPolicy(cfg)
	if err != nil {
		t.Fatalf("gatewaytest: policy: %v", err)
	}
	s := &Server{Memory: NewMemory(), audit: &memAuditor{}}
	gw, err := gateway.New(t.Context(), cfg, gateway.Options{
		// The gateway logs no values; its lines would only drown the test's.
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorizer: gateway.PolicyAuthorizer{P: pol},
		Auditor:    s.audit,
		Backends:   memBackends{s.Memory},
	})
	if err != nil {
		t.Fatalf("gatewaytest: gateway: %v", err)
	}
	s.Gateway = gw
	s.Server = httptest.NewServer(s.record(gw.Handler()))
	t.Cleanup(func() {
		s.Close()
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("gatewaytest: shutdown: %v", err)
		}
	})
	return s
}

// record notes every request before the gateway sees it, so that requests
// the gateway refuses are recorded too.
func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, Recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// SetUnavailable makes the backend answer sdk.ErrUnavailable to every call
// (the gateway then answers 503 backend_unavailable), or serve again.
func (s *Server) SetUnavailable(down bool) { s.Memory.SetUnavailable(down) }

// Requests returns what the server has seen so far, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.requests...)
}

// Value returns a key of the latest stored version of a secret, read from
// the backend directly, for assertions.
func (s *Server) Value(project, name, key string) (string, bool) {
	return s.Memory.Value(project, name, key)
}

// Audit returns the audit records written so far, oldest first.
func (s *Server) Audit() []gateway.AuditRecord { return s.audit.records() }

func tokenHash(token string) string {
	h := policy.HashToken(token)
	return hex.EncodeToString(h[:])
}

// memBackends is the gateway's Backends: one Memory, under BackendName.
type memBackends struct{ m *Memory }

func (b memBackends) Backend(name string) (sdk.Backend, error) {
	if name != BackendName {
		return nil, fmt.Errorf("backend %q is not configured: %w", name, sdk.ErrNotFound)
	}
	return b.m, nil
}

// Suspect is a no-op: there is no plugin process to restart.
func (memBackends) Suspect(string) {}

func (b memBackends) Status() map[string]bool {
	return map[string]bool{BackendName: b.m.Ping(context.Background()) == nil}
}

func (b memBackends) PingAll(ctx context.Context) map[string]error {
	if err := b.m.Ping(ctx); err != nil {
		return map[string]error{BackendName: err}
	}
	return map[string]error{}
}

// memAuditor keeps audit records in memory.
type memAuditor struct {
	mu   sync.Mutex
	recs []gateway.AuditRecord
}

func (a *memAuditor) Write(rec gateway.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, rec)
	return nil
}

func (a *memAuditor) Close() error { return nil }

func (a *memAuditor) records() []gateway.AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]gateway.AuditRecord(nil), a.recs...)
}
