package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/oidctest"
	"github.com/secretgate/secretgate/internal/testenv"
)

// identityConfig is a configuration with an admin token, a workload
// identity issuer (the test's own, on 127.0.0.1) whose tokens sign in as
// deploy-api (reader) or ci (viewer), and the extra YAML given.
func identityConfig(dir, adminToken, issuer string, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
audit:
  path: %[1]s/audit.log
backends:
  - name: local
    plugin: file
    settings:
      path: %[1]s/local.db
      key_file: %[1]s/local.key
%[4]s
projects:
  - name: default
    backend: local
%[5]s
subjects:
  - name: admin
    token_sha256: %[2]s
  - name: deploy-api
  - name: ci
%[6]s
bindings:
  - subject: admin
    project: "*"
    role: admin
  - subject: deploy-api
    project: default
    role: reader
  - subject: ci
    project: default
    role: viewer
%[7]s
auth:
  jwt:
    - name: test-idp
      issuer: %[3]s
      discovery: true
      audiences: [secretgate]
      algorithms: [RS256, ES256]
      max_token_lifetime: 1h
      audit_claims: [sub, repository]
      rules:
        - subject: deploy-api
          claims: {repository: acme/api, ref: refs/heads/main}
        - subject: ci
          claims: {repository: "acme/*"}
`, dir, testenv.TokenSHA256(adminToken), issuer, extraOf(extra, "backends"), extraOf(extra, "projects"), extraOf(extra, "subjects"), extraOf(extra, "bindings"))
}

// extraOf picks the lines of extra under "# section" up to the next one.
func extraOf(extra, section string) string {
	var out []string
	in := false
	for _, l := range strings.Split(extra, "\n") {
		if strings.HasPrefix(l, "# ") {
			in = l == "# "+section
			continue
		}
		if in {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Workload identity and configuration reload with the real binary: a JWT
// from the test's issuer signs in through SECRETGATE_TOKEN_FILE, which the
// CLI re-reads when it is rotated; SIGHUP adds and removes subjects,
// bindings and a backend (its plugin process starts, then ends); an
// invalid file changes nothing.
func TestWorkloadIdentityAndReload(t *testing.T) {
	idp := oidctest.New(t)
	dir := t.TempDir()
	admin := testenv.NewToken()
	cfgPath := filepath.Join(dir, "secretgate.yaml")
	writeCfg := func(extra string) {
		t.Helper()
		require.NoError(t, os.WriteFile(cfgPath, []byte(identityConfig(dir, admin, idp.URL, extra)), 0o600))
	}
	writeCfg("")
	srv := testenv.StartConfig(t, cfgPath, nil)
	const canary = "canary-identity-4f1d"
	r := srv.Do(t, "POST", "/v1/projects/default/secrets", admin, map[string]any{"name": "db", "data": map[string]string{"password": canary}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)

	// SECRETGATE_TOKEN_FILE holds ci's token (a viewer): values refused.
	tokenFile := filepath.Join(dir, "token")
	rotate := func(claims map[string]any) string {
		t.Helper()
		tok := idp.Sign(idp.Claims("secretgate", 10*time.Minute, claims))
		tmp := tokenFile + ".new"
		require.NoError(t, os.WriteFile(tmp, []byte(tok), 0o600))
		require.NoError(t, os.Rename(tmp, tokenFile))
		return tok
	}
	ciTok := rotate(map[string]any{"sub": "repo:acme/web", "repository": "acme/web"})
	env := []string{"SECRETGATE_TOKEN_FILE=" + tokenFile}
	res := srv.CLIEnv(t, env, "", "secret", "get", "db", "--reveal", "-o", "json")
	require.Equal(t, 3, res.Code, "%s%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, `not granted to "ci"`)
	res = srv.CLIEnv(t, env, "", "secret", "list", "-o", "json")
	require.Equal(t, 0, res.Code, "%s", res.Stderr)
	require.Contains(t, res.Stdout, `"db"`)

	// The file is rotated to deploy-api's token: the same command, no
	// restart of anything, reads the value.
	deployTok := rotate(map[string]any{"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"})
	res = srv.CLIEnv(t, env, "", "secret", "get", "db", "--reveal", "-o", "json")
	require.Equal(t, 0, res.Code, "%s", res.Stderr)
	require.Contains(t, res.Stdout, canary)

	// GET /v1/projects names the subject, the issuer and the expiry.
	r = srv.Do(t, "GET", "/v1/projects", deployTok, nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), `"subject":"deploy-api","issuer":"test-idp","expires_at":"`)

	// Reload: carol (a static token) appears with a binding, deploy-api
	// loses its binding, a backend "extra" with a project appears.
	plugins := len(srv.WaitPlugins(t, 1, 10*time.Second))
	carol := testenv.NewToken()
	writeCfg(fmt.Sprintf(`# backends
  - name: extra
    plugin: file
    settings:
      path: %[1]s/extra.db
      key_file: %[1]s/extra.key
# projects
  - name: more
    backend: extra
# subjects
  - name: carol
    token_sha256: %[2]s
# bindings
  - subject: carol
    project: more
    role: admin
`, dir, testenv.TokenSHA256(carol)))
	cfg := strings.Replace(identityConfigFile(t, cfgPath), "  - subject: deploy-api\n    project: default\n    role: reader\n", "", 1)
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return srv.Do(t, "POST", "/v1/projects/more/secrets", carol, map[string]any{"name": "x", "data": map[string]string{"k": "v"}}).Status == http.StatusCreated
	}, 10*time.Second, 100*time.Millisecond, "carol, her binding and the new backend after SIGHUP")
	require.Len(t, srv.WaitPlugins(t, plugins+1, 10*time.Second), plugins+1, "the new backend's plugin runs")
	r = srv.Do(t, "GET", "/v1/projects/default/secrets/db", deployTok, nil)
	require.Equal(t, http.StatusNotFound, r.Status, "deploy-api lost its binding: %s", r.Body)
	require.Contains(t, metrics(t, srv), `secretgate_config_reloads_total{outcome="ok"} 1`)

	// An invalid file: the error names the field, the old config serves.
	bad := strings.Replace(identityConfigFile(t, cfgPath), "role: admin\n", "role: owner\n", 1)
	require.NoError(t, os.WriteFile(cfgPath, []byte(bad), 0o600))
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, srv), `secretgate_config_reloads_total{outcome="error"} 1`)
	}, 10*time.Second, 100*time.Millisecond)
	require.Contains(t, srv.Stderr(), "bindings[0].role")
	r = srv.Do(t, "GET", "/v1/projects/more/secrets/x/metadata", carol, nil)
	require.Equal(t, http.StatusOK, r.Status, "the previous configuration keeps serving")

	// The backend and its project are removed again: the project is gone
	// at once, the plugin process after the drain.
	writeCfg("")
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return srv.Do(t, "GET", "/v1/projects/more/secrets", admin, nil).Status == http.StatusNotFound
	}, 10*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return len(srv.PluginPIDs()) == plugins }, 30*time.Second, 200*time.Millisecond,
		"the removed backend's plugin ends after the drain")
	r = srv.Do(t, "GET", "/v1/projects/default/secrets/db", deployTok, nil)
	require.Equal(t, http.StatusOK, r.Status, "deploy-api's binding is back: %s", r.Body)

	// Audit: subjects and claims, never a token or the value.
	srv.Stop(t)
	auditBytes, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	require.NoError(t, err)
	audit := string(auditBytes)
	require.Contains(t, audit, `"subject":"deploy-api","issuer":"test-idp","claims":{"repository":"acme/api","sub":"repo:acme/api:ref:refs/heads/main"}`)
	for _, secret := range []string{canary, ciTok, deployTok, admin, carol} {
		for what, text := range map[string]string{"audit log": audit, "stdout": srv.Stdout(), "stderr": srv.Stderr()} {
			require.NotContains(t, text, secret, "the %s", what)
		}
	}
}

func identityConfigFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func metrics(t *testing.T, srv *testenv.Server) string {
	t.Helper()
	r := srv.Do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	return string(r.Body)
}
