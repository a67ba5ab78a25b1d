package vault

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

func TestMain(m *testing.M) {
	plugintest.ServeIfChild(New)
	testenv.Main(m) // runs the tests, removes the secretgate binary built for the e2e test

}

// rootSettings are the settings of a plugin that uses the dev server's root
// token.
func rootSettings(s *vaulttest.Server) map[string]string {
	return map[string]string{"address": s.Addr, "token": s.RootToken}
}

// inProcess configures a backend in the test process, for tests that look
// at its internals (login generations); the others go through a plugin.
func inProcess(t *testing.T, settings map[string]string) *Backend {
	t.Helper()
	b := newBackend()
	t.Cleanup(b.Close)
	require.NoError(t, b.Configure(t.Context(), settings))
	return b
}

// putPolicy installs the documented minimal policy for the default mount
// and prefix under the name "secretgate".
func putPolicy(t *testing.T, c *api.Client) {
	t.Helper()
	require.NoError(t, c.Sys().PutPolicyWithContext(t.Context(), "secretgate", MinimalPolicy("secret", "secretgate/")))
}

// policyToken makes a token with the given policies (plus "default").
func policyToken(t *testing.T, c *api.Client, policies ...string) string {
	t.Helper()
	sec, err := c.Auth().Token().CreateWithContext(t.Context(), &api.TokenCreateRequest{Policies: policies})
	require.NoError(t, err)
	return sec.Auth.ClientToken
}

// enableAppRole enables AppRole and creates role "secretgate" holding the
// minimal policy, with the given token lifetimes; it returns a role_id and
// a secret_id_file (0600) holding a fresh secret_id.
func enableAppRole(t *testing.T, c *api.Client, tokenTTL, tokenMaxTTL string) (roleID, secretIDFile string) {
	t.Helper()
	ctx := t.Context()
	putPolicy(t, c)
	require.NoError(t, c.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &api.EnableAuthOptions{Type: "approle"}))
	_, err := c.Logical().WriteWithContext(ctx, "auth/approle/role/secretgate", map[string]any{
		"token_policies": "secretgate",
		"token_ttl":      tokenTTL,
		"token_max_ttl":  tokenMaxTTL,
	})
	require.NoError(t, err)
	sec, err := c.Logical().ReadWithContext(ctx, "auth/approle/role/secretgate/role-id")
	require.NoError(t, err)
	roleID = sec.Data["role_id"].(string)
	sec, err = c.Logical().WriteWithContext(ctx, "auth/approle/role/secretgate/secret-id", nil)
	require.NoError(t, err)
	secretIDFile = filepath.Join(t.TempDir(), "secret-id")
	require.NoError(t, os.WriteFile(secretIDFile, []byte(sec.Data["secret_id"].(string)+"\n"), 0o600))
	return roleID, secretIDFile
}

// eventually retries f until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func sampleWrite(project, name string, mode sdk.WriteMode) sdk.WriteRequest {
	return sdk.WriteRequest{Project: project, Name: name, Mode: mode,
		Data: map[string]string{"username": "app", "password": "s3cr3t-" + name}}
}
