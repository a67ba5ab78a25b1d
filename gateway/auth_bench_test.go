package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/idtoken"
	"github.com/secretgate/secretgate/internal/oidctest"
	"github.com/secretgate/secretgate/sdk"
)

// What a workload identity token costs next to a static token, in one run:
// GET /v1/projects/payments/secrets/db over loopback HTTP with keep-alive,
// the JWT verified once and then answered from the verification cache (a
// workload reuses its token until it expires).
func BenchmarkAuthStaticVsJWT(b *testing.B) {
	idp := oidctest.New(b)
	cfg := reloadCfg()
	cfg.Subjects = append(cfg.Subjects, SubjectConfig{Name: "deploy-api"})
	cfg.Bindings = append(cfg.Bindings, BindingConfig{Subject: "deploy-api", Project: "payments", Role: "reader"})
	cfg.Auth.JWT = []idtoken.Issuer{{
		Name: "idp", IssuerURL: idp.URL, Discovery: true, Audiences: []string{"secretgate"},
		Rules: []idtoken.Rule{{Subject: "deploy-api", Claims: map[string]string{"repository": "acme/api"}}},
	}}
	mems := map[string]*memBackend{"mem": newMemBackend(), "mem2": newMemBackend()}
	srv, err := New(context.Background(), cfg, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auditor: &memAuditor{}, Backends: &memBackends{m: mems},
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	hc := ts.Client()
	jwt := idp.Sign(idp.Claims("secretgate", time.Hour, map[string]any{"repository": "acme/api"}))
	get := func(b *testing.B, token string) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/projects/payments/secrets/db", nil)
		require.NoError(b, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(b, http.StatusOK, resp.StatusCode)
	}
	_, err = mems["mem"].Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: "db", Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
	require.NoError(b, err)
	get(b, jwt) // the keys fetched, the token verified once
	for _, tc := range []struct{ name, token string }{{"static-token", "t-bob"}, {"jwt-cached", jwt}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				get(b, tc.token)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// How long a SIGHUP reload takes with 100 subjects and 200 bindings (the
// backends unchanged, so no plugin starts: the policy, the routing and the
// swap).
func BenchmarkReload100Subjects200Bindings(b *testing.B) {
	srv, err := New(context.Background(), reloadCfg(), Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auditor: &memAuditor{},
		Backends: &memBackends{m: map[string]*memBackend{"mem": newMemBackend(), "mem2": newMemBackend()}},
	})
	require.NoError(b, err)
	cfg := reloadCfg()
	cfg.Subjects, cfg.Bindings = nil, nil
	for i := range 100 {
		name := fmt.Sprintf("subject-%03d", i)
		cfg.Subjects = append(cfg.Subjects, subjectOf(name, "token-"+name))
		cfg.Bindings = append(cfg.Bindings,
			BindingConfig{Subject: name, Project: "payments", Role: "reader", Secrets: []string{fmt.Sprintf("app-%d-*", i)}},
			BindingConfig{Subject: name, Project: "*", Role: "viewer"})
	}
	for b.Loop() {
		if _, err := srv.Reload(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
}
