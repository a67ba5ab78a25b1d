package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/policy"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func hashHex(tok string) string {
	h := policy.HashToken(tok)
	return hex.EncodeToString(h[:])
}

func TestPolicyExplain(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "secretgate.yaml", `
listen: 127.0.0.1:8270
backends:
  - name: local
    plugin: file
    settings: {path: ./x.db}
projects:
  - name: payments
    backend: local
subjects:
  - name: alice
    token_sha256: `+hashHex("a")+`
  - name: bob
    token_sha256: `+hashHex("b")+`
bindings:
  - subject: alice
    project: payments
    role: viewer
  - subject: alice
    project: "*"
    role: editor
    secrets: ["stripe-*"]
`)
	base := []string{"policy", "explain", "--config", cfg, "--project", "payments"}

	out, stderr, code := runCLI(t, "", append(base, "--subject", "alice", "--action", "secrets.update", "--secret", "stripe-key")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `ALLOWED: subject "alice" may secrets.update on secret "stripe-key"`)
	require.Contains(t, out, `granted by bindings[1]: role editor on project "*"`)

	out, stderr, code = runCLI(t, "", append(base, "--subject", "alice", "--action", "secrets.read", "--secret", "stripe-key")...)
	require.Equal(t, exitDenied, code)
	require.Contains(t, out, "DENIED")
	require.Contains(t, out, "no bound role grants the action")
	require.Contains(t, stderr, "denied")

	out, _, code = runCLI(t, "", append(base, "--subject", "alice", "--action", "secrets.delete", "--secret", "db")...)
	require.Equal(t, exitDenied, code)
	require.Contains(t, out, "do not cover the secret name")

	out, _, code = runCLI(t, "", append(base, "--subject", "bob", "--action", "secrets.list")...)
	require.Equal(t, exitDenied, code)
	require.Contains(t, out, "no binding on the project")

	out, _, code = runCLI(t, "", append(base, "--subject", "alice", "--action", "secrets.list", "-o", "json")...)
	require.Equal(t, 0, code)
	var e struct {
		Allowed bool
		Reason  string
		Binding struct{ Index int }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &e))
	require.True(t, e.Allowed)
	require.Equal(t, "allowed", e.Reason)
	require.Equal(t, 0, e.Binding.Index)

	_, stderr, code = runCLI(t, "", append(base, "--subject", "alice", "--action", "secrets.steal")...)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `unknown action "secrets.steal"`)

	_, stderr, code = runCLI(t, "", "policy", "explain", "--subject", "alice", "--project", "p")
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "action")
}

func TestPolicyExplainBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, yaml, want string }{
		{"unknown role", "subjects:\n  - name: a\n    token_sha256: " + hashHex("a") + "\nbindings:\n  - {subject: a, project: p, role: viewer}\n  - {subject: a, project: p, role: owner}\n", `bindings[1].role: unknown role "owner"`},
		{"unknown subject", "subjects: []\nbindings:\n  - {subject: zed, project: p, role: viewer}\n", `bindings[0].subject: unknown subject "zed"`},
		{"bad hash", "subjects:\n  - name: a\n    token_sha256: nothex\n", `subjects[0].token_sha256: must be 64 hex digits`},
		{"bad glob", "subjects:\n  - name: a\n    token_sha256: " + hashHex("a") + "\nbindings:\n  - {subject: a, project: p, role: viewer, secrets: ['[x']}\n", `bindings[0].secrets[0]`},
		{"not yaml", "subjects: [", "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeFile(t, dir, "c.yaml", tc.yaml)
			_, stderr, code := runCLI(t, "", "policy", "explain", "--config", cfg, "--subject", "a", "--project", "p", "--action", "secrets.list")
			require.Equal(t, exitUsage, code)
			require.Contains(t, stderr, tc.want)
		})
	}
	_, stderr, code := runCLI(t, "", "policy", "explain", "--config", filepath.Join(dir, "missing.yaml"), "--subject", "a", "--project", "p", "--action", "secrets.list")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "missing.yaml")

	t.Setenv(envConfig, writeFile(t, dir, "env.yaml", "subjects:\n  - name: a\n    token_sha256: "+hashHex("a")+"\nbindings:\n  - {subject: a, project: '*', role: admin}\n"))
	_, _, code = runCLI(t, "", "policy", "explain", "--subject", "a", "--project", "p", "--action", "project.migrate")
	require.Equal(t, 0, code, "SECRETGATE_CONFIG names the default config")
}

func TestPolicyRoles(t *testing.T) {
	out, _, code := runCLI(t, "", "policy", "roles")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^viewer\s+yes\s+-\s+-\s+-\s+-\s+-\s*$`, out)
	require.Regexp(t, `(?m)^editor\s+yes\s+-\s+yes\s+yes\s+yes\s+-\s*$`, out)
	require.Regexp(t, `(?m)^reader\s+yes\s+yes\s+-\s+-\s+-\s+-\s*$`, out)
	require.Regexp(t, `(?m)^admin\s+yes\s+yes\s+yes\s+yes\s+yes\s+yes\s*$`, out)
	out, _, code = runCLI(t, "", "policy", "roles", "-o", "json")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"reader": [`)
}
