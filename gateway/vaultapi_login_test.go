package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func (e *vaultEnv) jwt(t *testing.T, ttl time.Duration) string {
	t.Helper()
	return e.idp.Sign(e.idp.Claims("secretgate", ttl, map[string]any{"sub": "system:serviceaccount:payments:api", "kubernetes.io": map[string]any{"namespace": "payments"}}))
}

func (e *vaultEnv) login(t *testing.T, method, jwt, role string) vresp {
	t.Helper()
	body := map[string]string{"jwt": jwt}
	if role != "" {
		body["role"] = role
	}
	return e.do(t, "POST", "/v1/auth/"+method+"/login", "", body)
}

// A workload's JWT buys a login token (min(exp, 1h)) that works as a token
// on both APIs, as its rule's subject, audited with the issuer; it is
// looked up, not renewed, and revoked.
func TestVaultAPILogin(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "db", map[string]any{"password": vcanary})
	jwt := e.jwt(t, 2*time.Hour)

	r := e.login(t, "kubernetes", jwt, "k8s-payments")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	auth := r.json(t)["auth"].(map[string]any)
	tok := auth["client_token"].(string)
	require.True(t, strings.HasPrefix(tok, loginTokenPrefix))
	require.Equal(t, []any{"secretgate-reader"}, auth["policies"])
	require.InDelta(t, 3600, auth["lease_duration"], 2, "a login token lasts 1h at most")
	require.Equal(t, false, auth["renewable"])
	rec := e.lastAudit(t)
	require.Equal(t, actionLogin, rec.Action)
	require.Equal(t, "k8s-payments", rec.Subject)
	require.Equal(t, "test-idp", rec.Issuer)
	require.Equal(t, "ok", rec.Outcome)

	r = e.do(t, "GET", "/v1/secret/data/payments/db", tok, nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	rec = e.lastAudit(t)
	require.Equal(t, "k8s-payments", rec.Subject)
	require.Equal(t, "test-idp", rec.Issuer)
	require.Equal(t, map[string]string{"sub": "system:serviceaccount:payments:api"}, rec.Claims)
	require.Equal(t, http.StatusOK, e.native(t, "GET", "/v1/projects/payments/secrets/db", tok, nil).code)
	require.Equal(t, http.StatusForbidden, e.do(t, "PUT", "/v1/secret/data/payments/db", tok, map[string]any{"data": map[string]string{"a": "b"}}).code)

	r = e.do(t, "GET", "/v1/auth/token/lookup-self", tok, nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	d := r.json(t)["data"].(map[string]any)
	require.Equal(t, "service", d["type"])
	require.InDelta(t, 3600, d["ttl"], 2)
	exp, err := time.Parse(time.RFC3339Nano, d["expire_time"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), exp, 5*time.Second)
	require.Equal(t, []any{"secretgate-reader"}, d["policies"])
	require.NotContains(t, string(r.body), tok, "lookup-self does not echo the token")

	r = e.do(t, "POST", "/v1/auth/token/renew-self", tok, map[string]any{"increment": "1h"})
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	require.True(t, strings.HasPrefix(r.errs(t)[0], "lease is not renewable"), r.errs(t)[0])

	r = e.do(t, "PUT", "/v1/auth/token/revoke-self", tok, nil)
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	require.Equal(t, actionRevoke, e.lastAudit(t).Action)
	r = e.do(t, "GET", "/v1/secret/data/payments/db", tok, nil)
	require.Equal(t, http.StatusForbidden, r.code, "a revoked token")

	// A JWT that expires sooner bounds the login token.
	r = e.login(t, "jwt", e.jwt(t, 10*time.Minute), "")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.InDelta(t, 600, r.json(t)["auth"].(map[string]any)["lease_duration"], 5)

	require.NotContains(t, e.logs.String(), vcanary)
	require.NotContains(t, e.logs.String(), tok)
	for _, rec := range e.auditSince(0) {
		require.NotContains(t, rec.Subject+rec.Secret+rec.Action, tok)
	}
}

// Every refused login is a Vault 4xx naming what is wrong, never the token.
func TestVaultAPILoginRefused(t *testing.T) {
	e := newVaultEnv(t)
	good := e.jwt(t, time.Hour)
	other := e.idp.Sign(e.idp.Claims("secretgate", time.Hour, map[string]any{"kubernetes.io": map[string]any{"namespace": "elsewhere"}}))
	tests := []struct {
		name, body, want string
		code             int
	}{
		{"role of another subject", `{"role":"alice","jwt":"` + good + `"}`, `invalid role: "alice" is not the subject`, 400},
		{"no jwt", `{"role":"x"}`, "invalid jwt", 400},
		{"not a JWT", `{"jwt":"t-alice"}`, "not a JWT", 403},
		{"no rule matches", `{"jwt":"` + other + `"}`, "invalid workload identity token", 403},
		{"unknown member", `{"jwt":"` + good + `","password":"x"}`, "unknown field", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/auth/jwt/login", "", tc.body)
			require.Equal(t, tc.code, r.code, "%s", r.body)
			require.Contains(t, strings.Join(r.errs(t), " "), tc.want)
			require.NotContains(t, string(r.body), "\"client_token\"")
			for _, seg := range strings.Split(good, ".") {
				require.NotContains(t, string(r.body), seg)
			}
		})
	}
}

// A login token ends at its expiry, and when a reload removes its issuer.
func TestVaultAPILoginTokenEnds(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "db", map[string]any{"k": "v"})
	issue := func() string {
		r := e.login(t, "jwt", e.jwt(t, time.Hour), "")
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		return r.json(t)["auth"].(map[string]any)["client_token"].(string)
	}
	tok := issue()
	e.srv.vault.logins.mu.Lock()
	for h, cl := range e.srv.vault.logins.m {
		cl.expires = time.Now().Add(-time.Second)
		e.srv.vault.logins.m[h] = cl
	}
	e.srv.vault.logins.mu.Unlock()
	r := e.do(t, "GET", "/v1/secret/data/payments/db", tok, nil)
	require.Equal(t, http.StatusForbidden, r.code, "%s", r.body)
	require.Contains(t, r.errs(t)[0], "login token expired")
	require.Equal(t, "unauthenticated", e.lastAudit(t).Outcome)

	tok = issue()
	require.Equal(t, http.StatusOK, e.do(t, "GET", "/v1/secret/data/payments/db", tok, nil).code)
	cfg := vaultCfg(e.idp)
	cfg.Auth.JWT = nil
	cfg.Subjects = cfg.Subjects[:len(cfg.Subjects)-1]
	cfg.Bindings = cfg.Bindings[:len(cfg.Bindings)-1]
	_, err := e.srv.Reload(context.Background(), cfg)
	require.NoError(t, err)
	r = e.do(t, "GET", "/v1/secret/data/payments/db", tok, nil)
	require.Equal(t, http.StatusForbidden, r.code, "%s", r.body)
	require.Contains(t, r.errs(t)[0], "no longer configured")
}

// lookup-self of a static token: no expiry (ttl 0, expire_time null, which
// ESO takes as a token that does not expire), the subject's roles.
func TestVaultAPILookupSelfStatic(t *testing.T) {
	e := newVaultEnv(t)
	r := e.do(t, "GET", "/v1/auth/token/lookup-self", "t-alice", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	d := r.json(t)["data"].(map[string]any)
	require.Equal(t, float64(0), d["ttl"])
	require.Nil(t, d["expire_time"])
	require.Equal(t, "service", d["type"])
	require.Equal(t, []any{"secretgate-admin", "secretgate-viewer"}, d["policies"])
	r = e.do(t, "POST", "/v1/auth/token/revoke-self", "t-alice", nil)
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	require.Equal(t, http.StatusForbidden, e.do(t, "GET", "/v1/auth/token/lookup-self", "t-wrong", nil).code)
}
