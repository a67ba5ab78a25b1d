package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/idtoken"
	"github.com/secretgate/secretgate/internal/oidctest"
)

// jwtEnv is a gateway whose auth.jwt trusts a test OIDC issuer on
// 127.0.0.1: deploy-api for acme/api's main branch, k8s-payments for the
// payments namespace (a nested claim), ci for any acme repository (a glob).
type jwtEnv struct {
	srv   *Server
	idp   *oidctest.Server
	audit *memAuditor
}

func newJWTEnv(t *testing.T) *jwtEnv {
	t.Helper()
	idp := oidctest.New(t)
	cfg := reloadCfg()
	cfg.Subjects = append(cfg.Subjects, SubjectConfig{Name: "deploy-api"}, SubjectConfig{Name: "k8s-payments"}, SubjectConfig{Name: "ci"})
	cfg.Bindings = append(cfg.Bindings,
		BindingConfig{Subject: "deploy-api", Project: "payments", Role: "reader"},
		BindingConfig{Subject: "k8s-payments", Project: "payments", Role: "reader"},
		BindingConfig{Subject: "ci", Project: "payments", Role: "viewer"},
	)
	cfg.Auth.JWT = []idtoken.Issuer{{
		Name: "test-idp", IssuerURL: idp.URL, Discovery: true, Audiences: []string{"secretgate"},
		Algorithms: []string{"RS256", "ES256"}, MaxTokenLifetime: 2 * time.Hour, AuditClaims: []string{"sub", "repository"},
		Rules: []idtoken.Rule{
			{Subject: "deploy-api", Claims: map[string]string{"repository": "acme/api", "ref": "refs/heads/main"}},
			{Subject: "k8s-payments", Claims: map[string]string{"kubernetes.io/namespace": "payments"}},
			{Subject: "ci", Claims: map[string]string{"repository": "acme/*"}},
		},
	}}
	var errs []string
	cfg.validateAuth(func(field, format string, args ...any) { errs = append(errs, field) }, map[string]bool{"alice": true, "bob": true, "deploy-api": true, "k8s-payments": true, "ci": true})
	require.Empty(t, errs)
	audit := &memAuditor{}
	srv, err := New(context.Background(), cfg, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auditor: audit,
		Backends: &memBackends{m: map[string]*memBackend{"mem": newMemBackend(), "mem2": newMemBackend()}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &jwtEnv{srv: srv, idp: idp, audit: audit}
}

func (e *jwtEnv) get(t *testing.T, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	return w
}

// Every way a workload identity token can be wrong answers 401 with a
// message naming what is wrong, never a 5xx and never the token; each
// rule's token signs in as its subject.
func TestJWTSignIn(t *testing.T) {
	e := newJWTEnv(t)
	claims := func(extra map[string]any) map[string]any {
		return e.idp.Claims("secretgate", 10*time.Minute, extra)
	}
	main := map[string]any{"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"}
	with := func(base map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	now := time.Now()
	tests := []struct {
		name    string
		token   string
		subject string // "" = refused
		message string
	}{
		{"rule with two claims (RS256)", e.idp.Sign(claims(main)), "deploy-api", ""},
		{"nested claim (ES256)", e.idp.Sign(claims(map[string]any{"sub": "system:serviceaccount:payments:api", "kubernetes.io": map[string]any{"namespace": "payments"}}), oidctest.WithAlg("ES256")), "k8s-payments", ""},
		{"glob rule", e.idp.Sign(claims(map[string]any{"sub": "x", "repository": "acme/web", "ref": "refs/heads/dev"})), "ci", ""},
		{"no rule matches", e.idp.Sign(claims(map[string]any{"repository": "other/api"})), "", "no rule"},
		{"wrong issuer", e.idp.Sign(claims(with(main, "iss", "https://evil.example"))), "", "issuer"},
		{"wrong audience", e.idp.Sign(e.idp.Claims("vault", 10*time.Minute, main)), "", "aud"},
		{"expired", e.idp.Sign(claims(with(main, "iat", now.Add(-time.Hour).Unix(), "nbf", now.Add(-time.Hour).Unix(), "exp", now.Add(-10*time.Minute).Unix()))), "", "expired"},
		{"not yet valid", e.idp.Sign(claims(with(main, "nbf", now.Add(10*time.Minute).Unix()))), "", "not valid before"},
		{"lifetime too long", e.idp.Sign(e.idp.Claims("secretgate", 5*time.Hour, main)), "", "lifetime"},
		{"alg none", e.idp.Sign(claims(main), oidctest.AlgNone()), "", ""},
		{"HS256 signed with the public key", e.idp.Sign(claims(main), oidctest.HS256WithPublicKey()), "", ""},
		{"unknown kid", e.idp.Sign(claims(main), oidctest.WithKID("no-such-kid")), "", "kid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := e.get(t, "/v1/projects", tc.token)
			if tc.subject == "" {
				require.Equal(t, http.StatusUnauthorized, w.Code, "%s", w.Body)
				require.Contains(t, w.Body.String(), "invalid workload identity token")
				require.Contains(t, strings.ToLower(w.Body.String()), tc.message)
				for _, seg := range strings.Split(tc.token, ".") {
					if len(seg) > 8 {
						require.NotContains(t, w.Body.String(), seg, "the answer quotes the token")
					}
				}
				return
			}
			require.Equal(t, http.StatusOK, w.Code, "%s", w.Body)
			var list struct {
				Subject   string    `json:"subject"`
				Issuer    string    `json:"issuer"`
				ExpiresAt time.Time `json:"expires_at"`
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &list))
			require.Equal(t, tc.subject, list.Subject)
			require.Equal(t, "test-idp", list.Issuer)
			require.WithinDuration(t, now.Add(10*time.Minute), list.ExpiresAt, 5*time.Second)
		})
	}

	// A secret read with a JWT is audited under the rule's subject with the
	// issuer and the audit_claims, never the token.
	tok := e.idp.Sign(claims(main))
	w := e.get(t, "/v1/projects/payments/secrets", tok)
	require.Equal(t, http.StatusOK, w.Code, "%s", w.Body)
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	last := e.audit.recs[len(e.audit.recs)-1]
	require.Equal(t, "deploy-api", last.Subject)
	require.Equal(t, "test-idp", last.Issuer)
	require.Equal(t, map[string]string{"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api"}, last.Claims)
	b, _ := json.Marshal(e.audit.recs)
	for _, seg := range strings.Split(tok, ".") {
		require.NotContains(t, string(b), seg)
	}
}

// The issuer rotates its key: a token with the new kid costs one refetch;
// once the issuer is down, the cached keys keep working and a token with a
// kid never seen answers 401 (not 5xx).
func TestJWTKeyRotationAndIssuerDown(t *testing.T) {
	e := newJWTEnv(t)
	main := map[string]any{"repository": "acme/api", "ref": "refs/heads/main"}
	require.Equal(t, 200, e.get(t, "/v1/projects", e.idp.Sign(e.idp.Claims("secretgate", time.Minute, main))).Code)
	before := e.idp.JWKSFetches()
	e.idp.Rotate(false)
	// The refetch limit (10 s) counts from the first fetch: wait it out as
	// a workload would retry.
	require.Eventually(t, func() bool {
		return e.get(t, "/v1/projects", e.idp.Sign(e.idp.Claims("secretgate", time.Minute, main))).Code == 200
	}, 20*time.Second, 500*time.Millisecond)
	require.LessOrEqual(t, e.idp.JWKSFetches()-before, int64(2))

	e.idp.SetDown(true)
	require.Equal(t, 200, e.get(t, "/v1/projects", e.idp.Sign(e.idp.Claims("secretgate", time.Minute, main))).Code, "cached keys work while the issuer is down")
	w := e.get(t, "/v1/projects", e.idp.Sign(e.idp.Claims("secretgate", time.Minute, main), oidctest.WithKID("brand-new")))
	require.Equal(t, http.StatusUnauthorized, w.Code, "%s", w.Body)
}
