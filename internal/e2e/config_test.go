package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

const goodHash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

func baseConfig(keyFile string) string {
	return `audit:
  path: ./audit.log
backends:
  - name: local
    plugin: file
    settings:
      path: ./secrets.db
      key_file: ` + keyFile + `
projects:
  - name: payments
    backend: local
subjects:
  - name: alice
    token_sha256: ` + goodHash + `
bindings:
  - subject: alice
    project: payments
    role: editor
`
}

func TestBadConfigsStopStartup(t *testing.T) {
	keyDir := filepath.Join(t.TempDir(), "a-directory")
	require.NoError(t, os.Mkdir(keyDir, 0o700))
	g := baseConfig("./master.key")
	tests := []struct {
		name, yaml, field string
		env               []string
	}{
		{"unknown plugin", strings.Replace(g, "plugin: file", "plugin: nosuch", 1), "backends[0].plugin", nil},
		{"project without backend", strings.Replace(g, "    backend: local\n", "", 1), "projects[0].backend", nil},
		{"project on unknown backend", strings.Replace(g, "backend: local", "backend: elsewhere", 1), "projects[0].backend", nil},
		{"duplicate project", strings.Replace(g, "subjects:", "  - name: payments\n    backend: local\nsubjects:", 1), "projects[1].name", nil},
		{"duplicate backend", strings.Replace(g, "projects:", "  - name: local\n    plugin: file\nprojects:", 1), "backends[1].name", nil},
		{"unknown role", strings.Replace(g, "role: editor", "role: superuser", 1), "bindings[0].role", nil},
		{"unknown subject", strings.Replace(g, "subject: alice", "subject: mallory", 1), "bindings[0].subject", nil},
		{"bad project name", strings.Replace(g, "name: payments", "name: -Payments", 1), "projects[0].name", nil},
		{"unreadable key file", baseConfig(keyDir), "backends[0].settings.key_file", nil},
		{"external without sha256", strings.Replace(g, "plugin: file", "plugin: /usr/local/bin/x", 1), "backends[0].sha256", nil},
		{"unknown field", g + "listn: 1.2.3.4:1\n", "listn", nil},
		{"unset variable", strings.Replace(g, "path: ./secrets.db", "path: ${SG_E2E_UNSET_VAR}", 1), "backends[0].settings.path", nil},
		{"bad env override", g, "SECRETGATE_BACKENDS_NOPE_PATH", []string{"SECRETGATE_BACKENDS_NOPE_PATH=/x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := testenv.RunServer(t, tc.yaml, tc.env)
			require.NotEqual(t, 0, res.Code)
			require.Contains(t, res.Stderr, tc.field)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		res := testenv.Run(t, os.Environ(), t.TempDir(), "", "server", "--config", "/nonexistent/secretgate.yaml")
		require.NotEqual(t, 0, res.Code)
		require.Contains(t, res.Stderr, "/nonexistent/secretgate.yaml")
	})
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	// The YAML points the database somewhere unwritable; the environment
	// fixes it and moves the audit log.
	path, tokens := testenv.WriteConfig(t, testenv.Options{Dir: dir, Backends: []testenv.Backend{{
		Name: "local", Plugin: "file", Settings: map[string]string{"path": "${SG_E2E_DATA}/secrets.db", "key_file": "/nonexistent-dir/x.key"},
	}}})
	audit := filepath.Join(dir, "moved-audit.log")
	srv := testenv.StartConfig(t, path, []string{
		"SG_E2E_DATA=" + dir,
		"SECRETGATE_BACKENDS_LOCAL_KEY_FILE=" + filepath.Join(dir, "env.key"),
		"SECRETGATE_AUDIT_PATH=" + audit,
	})
	r := srv.Do(t, "POST", "/v1/projects/default/secrets", tokens["admin"], map[string]any{"name": "x", "data": map[string]string{"k": "v"}})
	require.Equal(t, 201, r.Status, "%s", r.Body)
	require.FileExists(t, filepath.Join(dir, "env.key"))
	require.FileExists(t, filepath.Join(dir, "secrets.db"))
	b, err := os.ReadFile(audit)
	require.NoError(t, err)
	require.Contains(t, string(b), `"secret":"x"`)
}

func TestDevServer(t *testing.T) {
	dir := t.TempDir()
	srv := startDev(t, dir)
	tok := "dev-token-for-e2e"
	r := srv.Do(t, "POST", "/v1/projects/default/secrets", tok, map[string]any{"name": "x", "data": map[string]string{"k": "v"}})
	require.Equal(t, 201, r.Status, "%s", r.Body)
	require.FileExists(t, filepath.Join(dir, ".secretgate", "master.key"))
	require.FileExists(t, filepath.Join(dir, ".secretgate", "audit.log"))
	out := srv.Stdout()
	require.Contains(t, out, "export SECRETGATE_ADDR="+srv.URL)
	require.Contains(t, out, "export SECRETGATE_TOKEN="+tok)
	require.Equal(t, 0, srv.Stop(t))

	// Without --dev-token a random token is printed, and it works.
	srv2 := startDev(t, dir, "--dev-token=")
	m := regexp.MustCompile(`export SECRETGATE_TOKEN=(\S+)`).FindStringSubmatch(srv2.Stdout())
	require.NotNil(t, m)
	require.NotEqual(t, tok, m[1])
	r = srv2.Do(t, "GET", "/v1/projects/default/secrets/x", m[1], nil)
	require.Equal(t, 200, r.Status, "%s", r.Body)
	var sec map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &sec))
	require.Equal(t, map[string]any{"k": "v"}, sec["data"])
	require.Equal(t, 401, srv2.Do(t, "GET", "/v1/projects/default/secrets/x", tok, nil).Status)
}

// --dev answers reads from the read cache (its file plugin is the
// database's only opener, so nothing can change behind the cache);
// --dev-cache=false sends every read to the plugin.
func TestDevServerReadCache(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		hits    string
		backend int64 // read calls the plugin sees for the three GETs
	}{
		{"default", nil, `secretgate_cache_hits_total{backend="local"} 3`, 0},
		{"dev-cache=false", []string{"--dev-cache=false"}, "", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startDev(t, t.TempDir(), append([]string{"--dev-token", "dev-token-for-e2e"}, tc.args...)...)
			tok := "dev-token-for-e2e"
			r := srv.Do(t, "POST", "/v1/projects/default/secrets", tok, map[string]any{"name": "x", "data": map[string]string{"k": "v1"}})
			require.Equal(t, 201, r.Status, "%s", r.Body)
			before := backendReads(t, srv)
			for range 3 {
				r = srv.Do(t, "GET", "/v1/projects/default/secrets/x", tok, nil)
				require.Equal(t, 200, r.Status, "%s", r.Body)
				require.Contains(t, string(r.Body), `"k":"v1"`)
			}
			require.Equal(t, tc.backend, backendReads(t, srv)-before)
			metrics := string(srv.Do(t, "GET", "/metrics", "", nil).Body)
			if tc.hits != "" {
				require.Contains(t, metrics, tc.hits)
			} else {
				require.NotContains(t, metrics, `secretgate_cache_hits_total{backend="local"}`)
			}
			// A write is read back at once, cache or not.
			r = srv.Do(t, "PUT", "/v1/projects/default/secrets/x", tok, map[string]any{"data": map[string]string{"k": "v2"}})
			require.Equal(t, 200, r.Status, "%s", r.Body)
			require.Contains(t, string(srv.Do(t, "GET", "/v1/projects/default/secrets/x", tok, nil).Body), `"k":"v2"`)
		})
	}
}

// startDev runs `secretgate server --dev` in dir, with a known token
// unless other arguments are given.
func startDev(t *testing.T, dir string, extra ...string) *testenv.Server {
	t.Helper()
	args := []string{"--dev-token", "dev-token-for-e2e"}
	if len(extra) > 0 {
		args = extra
	}
	return testenv.StartDev(t, dir, args...)
}
