package vault

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("x"), 0o600))
	noEnv := func(string) string { return "" }
	cases := []struct {
		name     string
		settings map[string]string
		env      map[string]string
		wantErr  string // field named in the error; "" = valid
		check    func(t *testing.T, c *config)
	}{
		{name: "defaults", settings: map[string]string{"address": "http://v:8200", "token": "hvs.SECRETTOKEN"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, "secret", c.mount)
				require.Equal(t, "secretgate/", c.prefix)
				require.Equal(t, authToken, c.authMethod)
				require.Equal(t, "secret/data/secretgate/p/n", c.dataPath("p", "n"))
				require.Equal(t, "secret/metadata/secretgate/p/n", c.metadataPath("p", "n"))
				require.Equal(t, "secret/metadata/secretgate/p/", c.listPath("p"))
				require.False(t, c.canLogin())
			}},
		{name: "prefix becomes a folder", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "prefix": "/team-a", "mount": "/kv/"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, "kv/data/team-a/p/n", c.dataPath("p", "n"))
			}},
		{name: "empty prefix", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "prefix": ""},
			check: func(t *testing.T, c *config) { require.Equal(t, "secret/data/p/n", c.dataPath("p", "n")) }},
		{name: "VAULT_TOKEN", settings: map[string]string{"address": "https://v"}, env: map[string]string{"VAULT_TOKEN": "envtok"},
			check: func(t *testing.T, c *config) { require.Equal(t, "envtok", c.token) }},
		{name: "token_file can log in again", settings: map[string]string{"address": "https://v", "token_file": ca},
			check: func(t *testing.T, c *config) { require.True(t, c.canLogin()) }},
		{name: "approle inferred", settings: map[string]string{"address": "https://v", "role_id": "r", "secret_id": "SECRETID-VALUE"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, authAppRole, c.authMethod)
				require.Equal(t, "approle", c.appRoleMount)
			}},
		{name: "kubernetes inferred", settings: map[string]string{"address": "https://v", "kubernetes_role": "app"},
			check: func(t *testing.T, c *config) {
				require.Equal(t, authKubernetes, c.authMethod)
				require.Equal(t, defaultK8sTokenPath, c.k8sTokenPath)
				require.Equal(t, "kubernetes", c.k8sMount)
			}},
		{name: "max_versions and tls", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "max_versions": "5", "tls_skip_verify": "true", "ca_cert": ca},
			check: func(t *testing.T, c *config) {
				require.Equal(t, 5, c.maxVersions)
				require.True(t, c.tlsSkipVerify)
			}},
		{name: "no address", settings: map[string]string{"token": "hvs.SECRETTOKEN"}, wantErr: "settings.address"},
		{name: "bad scheme", settings: map[string]string{"address": "v:8200", "token": "hvs.SECRETTOKEN"}, wantErr: "settings.address"},
		{name: "unknown setting", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "tokn": "x"}, wantErr: "tokn"},
		{name: "no credentials", settings: map[string]string{"address": "https://v"}, wantErr: "settings.token"},
		{name: "two methods", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "role_id": "r", "secret_id": "SECRETID-VALUE"}, wantErr: "more than one auth method"},
		{name: "approle without secret id", settings: map[string]string{"address": "https://v", "role_id": "r"}, wantErr: "settings.secret_id"},
		{name: "bad max_versions", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "max_versions": "-1"}, wantErr: "settings.max_versions"},
		{name: "bad bool", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "tls_skip_verify": "maybe"}, wantErr: "settings.tls_skip_verify"},
		{name: "cert without key", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "client_cert": ca}, wantErr: "settings.client_cert"},
		{name: "missing ca file", settings: map[string]string{"address": "https://v", "token": "hvs.SECRETTOKEN", "ca_cert": filepath.Join(dir, "nope")}, wantErr: "settings.ca_cert"},
		{name: "bad auth_method", settings: map[string]string{"address": "https://v", "auth_method": "ldap"}, wantErr: "settings.auth_method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.env != nil {
				getenv = func(k string) string { return tc.env[k] }
			}
			c, err := parseConfig(tc.settings, getenv)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, sdk.ErrInvalid)
				require.Contains(t, err.Error(), tc.wantErr)
				for k, v := range tc.settings {
					if k == "token" || k == "secret_id" {
						require.NotContains(t, err.Error(), v)
					}
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestLabelValueEncoding(t *testing.T) {
	for _, v := range []string{"", "prod", "b64:", "b64:QUJD", "a\nb", "tab\there", "ünïcödé", "  spaced  ", "\x00"} {
		enc := encodeLabelValue(v)
		require.NotEmpty(t, enc, "Vault refuses empty custom_metadata values")
		require.True(t, printable(enc), "Vault refuses unprintable custom_metadata values")
		require.LessOrEqual(t, len(enc), 512)
		require.Equal(t, v, decodeLabelValue(enc), "round trip of %q", v)
	}
	require.Equal(t, "prod", encodeLabelValue("prod"), "ordinary values stay readable in Vault")
	// Longest label value: 63 four-byte runes.
	long := ""
	for range sdk.MaxLabelValLen {
		long += "\U0001F600"
	}
	require.LessOrEqual(t, len(encodeLabelValue(long+"\n")), 512)
	// Hand-written custom_metadata: keys that are not label keys are not labels.
	got := decodeLabels(map[string]any{"Owner": "ops", "env": "prod", "n": 1, "x:y": "z"})
	require.Equal(t, map[string]string{"env": "prod"}, got)
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	resp := func(code int, msgs ...string) error { return &api.ResponseError{StatusCode: code, Errors: msgs} }
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want errKind
	}{
		{"403", ctx, resp(403, "permission denied"), kindPermission},
		{"cas", ctx, resp(400, "check-and-set parameter did not match the current version"), kindCAS},
		{"other 400", ctx, resp(400, "no data provided"), kindOther},
		{"sealed", ctx, resp(503, "Vault is sealed"), kindRetry},
		{"429", ctx, resp(429, "rate limit quota exceeded"), kindRetry},
		{"500", ctx, resp(500, "internal error"), kindMaybeSent},
		{"refused", ctx, &url.Error{Op: "Get", URL: "http://x", Err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}, kindRetry},
		{"reset", ctx, &url.Error{Op: "Get", URL: "http://x", Err: syscall.ECONNRESET}, kindMaybeSent},
		{"caller cancelled", cancelled, errors.New("anything"), kindContext},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, classify(tc.ctx, tc.err))
		})
	}
}

func TestBackoffBounded(t *testing.T) {
	p := retryPolicy{attempts: 4, base: 100 * time.Millisecond, max: time.Second}
	for i := range 40 {
		d := p.backoff(i)
		require.Greater(t, d, time.Duration(0))
		require.LessOrEqual(t, d, time.Second)
	}
}

func TestNotConfigured(t *testing.T) {
	b := newBackend()
	t.Cleanup(b.Close)
	_, err := b.Read(t.Context(), sdk.Ref{Project: "p", Name: "n"})
	require.Error(t, err)
	require.ErrorIs(t, b.Configure(t.Context(), map[string]string{}), sdk.ErrInvalid)
	require.Error(t, b.Configure(t.Context(), map[string]string{}), "Configure runs once")
}

func TestMinimalPolicyPaths(t *testing.T) {
	p := MinimalPolicy("/kv/", "team-a")
	require.Contains(t, p, `path "kv/data/team-a/*"`)
	require.Contains(t, p, `path "kv/metadata/team-a/*"`)
	require.Contains(t, p, `path "kv/config"`)
}

func TestCreatedCacheTrustsOnlyTheSameVersion(t *testing.T) {
	var c createdCache
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	c.put("p", "n", createdEntry{version: 2, versionCreated: t1, createdAt: t0})
	cases := []struct {
		name    string
		version int64
		created time.Time
		hit     bool
	}{
		{"same version", 2, t1, true},
		{"newer version", 3, t1.Add(time.Second), false},
		{"recreated with the same number", 2, t1.Add(time.Nanosecond), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := c.get("p", "n", tc.version, tc.created)
			require.Equal(t, tc.hit, ok)
			if ok {
				require.Equal(t, t0, got)
			}
		})
	}
	c.forget("p", "n")
	_, ok := c.get("p", "n", 2, t1)
	require.False(t, ok)
}
