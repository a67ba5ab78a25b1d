package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/internal/vaulttest"
)

// vaultGateway is a secretgate server with vault_api on.
type vaultGateway struct {
	*testenv.Server
	tokens map[string]string
}

func (g *vaultGateway) token(subject string) string { return g.tokens[subject] }

// startVaultGateway starts the real binary with vault_api on (mount
// "secret"), projects default and payments on backend, subjects admin
// (admin everywhere), reader and editor of default, outsider of payments
// only; extra is YAML appended to the configuration.
func startVaultGateway(t testing.TB, backend testenv.Backend, env []string, extra string) *vaultGateway {
	t.Helper()
	dir := t.TempDir()
	path, tokens := testenv.WriteConfig(t, testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{backend},
		Projects: []testenv.Project{{Name: "default", Backend: backend.Name}, {Name: "payments", Backend: backend.Name}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "default", Role: "reader"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "default", Role: "editor"}}},
			{Name: "outsider", Grants: []testenv.Grant{{Project: "payments", Role: "admin"}}},
		},
	})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, "vault_api:\n  enabled: true\n  mount: secret\n%s", extra)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	srv := testenv.StartConfig(t, path, env)
	srv.AuditPath = filepath.Join(dir, "audit.log")
	return &vaultGateway{Server: srv, tokens: tokens}
}

// vaultCLI runs the real vault CLI against addr with token.
type vaultCLI struct {
	bin, addr, home string
}

type cliRun struct {
	out, err string
	code     int
}

func newVaultCLI(t *testing.T, addr string) *vaultCLI {
	t.Helper()
	return &vaultCLI{bin: vaulttest.Binary(t), addr: addr, home: t.TempDir()}
}

func (v *vaultCLI) run(t *testing.T, token string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.bin, args...)
	// Only what the CLI needs: no VAULT_* of the test's own environment,
	// and a HOME without a ~/.vault-token.
	cmd.Env = []string{"VAULT_ADDR=" + v.addr, "VAULT_TOKEN=" + token, "HOME=" + v.home, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = v.home
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vault %v did not finish: %v", args, err)
	}
	return cliRun{out: out.String(), err: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// ok runs a command that must succeed and returns its output.
func (v *vaultCLI) ok(t *testing.T, token string, args ...string) string {
	t.Helper()
	r := v.run(t, token, args...)
	require.Equal(t, 0, r.code, "vault %v:\n%s\n%s", args, r.out, r.err)
	return r.out
}

// fails runs a command that must fail with a message holding want.
func (v *vaultCLI) fails(t *testing.T, token, want string, args ...string) {
	t.Helper()
	r := v.run(t, token, args...)
	require.NotEqual(t, 0, r.code, "vault %v succeeded:\n%s", args, r.out)
	require.Contains(t, r.out+r.err, want, "vault %v", args)
}

// kvJSON is `vault kv get -format=json`.
type kvJSON struct {
	Data struct {
		Data     map[string]any `json:"data"`
		Metadata struct {
			Version        int64             `json:"version"`
			CustomMetadata map[string]string `json:"custom_metadata"`
		} `json:"metadata"`
	} `json:"data"`
}

// TestVaultCLI drives the real vault CLI (Vault 1.21, built by `make
// testservers`) against secretgate over the file backend and over AWS
// (moto behind the fault proxy), through every `vault kv` subcommand:
// what works, and the clear refusals of what the model does not do.
func TestVaultCLI(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		g := startVaultGateway(t, testenv.FileBackend("store", dir), nil, "")
		vaultCLIScenario(t, g)
	})
	t.Run("aws", func(t *testing.T) {
		moto := faultproxy.StartMoto(t, faultproxy.CI)
		var env []string
		for k, v := range mototest.DummyCredentials {
			env = append(env, k+"="+v)
		}
		g := startVaultGateway(t, testenv.Backend{Name: "store", Plugin: "aws", Settings: map[string]string{
			"region": mototest.Region, "endpoint": moto.Endpoint, "prefix": "vaultcli/",
		}}, env, "")
		vaultCLIScenario(t, g)
	})
}

func vaultCLIScenario(t *testing.T, g *vaultGateway) {
	v := newVaultCLI(t, g.URL)
	admin, reader, editor := g.token("admin"), g.token("reader"), g.token("editor")
	canary := randomCanary(t)
	getJSON := func(token string, args ...string) kvJSON {
		t.Helper()
		var out kvJSON
		raw := v.ok(t, token, append([]string{"kv", "get", "-format=json"}, args...)...)
		require.NoError(t, json.Unmarshal([]byte(raw), &out), raw)
		return out
	}

	// put, get (table, -field, -format=json, -version, -mount).
	out := v.ok(t, editor, "kv", "put", "secret/default/db", "user=app", "password="+canary)
	require.Contains(t, out, "secret/data/default/db")
	require.NotContains(t, out, canary)
	require.Contains(t, v.ok(t, reader, "kv", "get", "secret/default/db"), canary)
	require.Equal(t, canary, strings.TrimSpace(v.ok(t, reader, "kv", "get", "-field=password", "secret/default/db")))
	got := getJSON(reader, "secret/default/db")
	require.Equal(t, map[string]any{"user": "app", "password": canary}, got.Data.Data)
	require.Equal(t, int64(1), got.Data.Metadata.Version)
	require.Equal(t, "app", strings.TrimSpace(v.ok(t, reader, "kv", "get", "-mount=secret", "-field=user", "default/db")))

	// Check-and-set: -cas=1 writes version 2, a stale -cas fails, -cas=0
	// on an existing secret fails.
	v.ok(t, editor, "kv", "put", "-cas=1", "secret/default/db", "user=app", "password=second")
	v.fails(t, editor, "check-and-set parameter did not match the current version", "kv", "put", "-cas=1", "secret/default/db", "password=x")
	v.fails(t, editor, "check-and-set parameter did not match the current version", "kv", "put", "-cas=0", "secret/default/db", "password=x")
	require.Equal(t, canary, strings.TrimSpace(v.ok(t, reader, "kv", "get", "-version=1", "-field=password", "secret/default/db")))

	// patch (HTTP PATCH merge patch, then -method=rw, then -remove-data).
	v.ok(t, editor, "kv", "patch", "secret/default/db", "extra=1")
	// -method=rw reads before it writes, so it needs read, as in Vault.
	v.fails(t, editor, "permission denied", "kv", "patch", "-method=rw", "secret/default/db", "more=2")
	v.ok(t, admin, "kv", "patch", "-method=rw", "secret/default/db", "more=2")
	v.ok(t, editor, "kv", "patch", "-remove-data=extra", "secret/default/db")
	got = getJSON(reader, "secret/default/db")
	require.Equal(t, map[string]any{"user": "app", "password": "second", "more": "2"}, got.Data.Data)
	require.Equal(t, int64(5), got.Data.Metadata.Version)

	// rollback reads the old version and writes it with check-and-set, so
	// it needs read (the native rollback needs update only).
	v.fails(t, editor, "permission denied", "kv", "rollback", "-version=1", "secret/default/db")
	v.ok(t, admin, "kv", "rollback", "-version=1", "secret/default/db")
	got = getJSON(reader, "secret/default/db")
	require.Equal(t, canary, got.Data.Data["password"])
	require.Equal(t, int64(6), got.Data.Metadata.Version)

	// list: the caller's projects as folders, then a project's secrets.
	v.ok(t, editor, "kv", "put", "secret/default/api", "key=k")
	out = v.ok(t, reader, "kv", "list", "secret/")
	require.Contains(t, out, "default/")
	require.NotContains(t, out, "payments/")
	require.Contains(t, v.ok(t, admin, "kv", "list", "secret"), "payments/")
	out = v.ok(t, reader, "kv", "list", "secret/default")
	require.Contains(t, out, "api")
	require.Contains(t, out, "db")

	// metadata put / patch / get: custom_metadata is the labels.
	v.ok(t, editor, "kv", "metadata", "put", "-custom-metadata=owner=team-a", "-custom-metadata=env=prod", "secret/default/db")
	v.ok(t, editor, "kv", "metadata", "patch", "-remove-custom-metadata=env", "secret/default/db")
	var md struct {
		Data struct {
			CurrentVersion int64             `json:"current_version"`
			CustomMetadata map[string]string `json:"custom_metadata"`
			Versions       map[string]any    `json:"versions"`
		} `json:"data"`
	}
	// AWS's DescribeSecret lags behind tag changes (faultproxy.CI models
	// it); the labels written are checked once the listing converges.
	var raw string
	require.Eventually(t, func() bool {
		raw = v.ok(t, editor, "kv", "metadata", "get", "-format=json", "secret/default/db")
		md.Data.CustomMetadata = nil
		require.NoError(t, json.Unmarshal([]byte(raw), &md), raw)
		return len(md.Data.CustomMetadata) == 1
	}, 15*time.Second, 500*time.Millisecond, "%s", raw)
	require.Equal(t, map[string]string{"owner": "team-a"}, md.Data.CustomMetadata)
	require.Equal(t, int64(8), md.Data.CurrentVersion)
	require.Contains(t, md.Data.Versions, "1")
	require.NotContains(t, raw, canary)
	v.fails(t, editor, "max_versions", "kv", "metadata", "put", "-max-versions=3", "secret/default/db")
	require.Equal(t, canary, getJSON(reader, "secret/default/db").Data.Data["password"], "labels changes keep the data")

	// Refusals: permission denied, not found, no binding, a non-string value.
	v.fails(t, reader, "permission denied", "kv", "put", "secret/default/db", "a=b")
	v.fails(t, editor, "permission denied", "kv", "get", "secret/default/db")
	v.fails(t, reader, "No value found at secret/data/default/nope", "kv", "get", "secret/default/nope")
	v.fails(t, g.token("outsider"), "No value found at secret/data/default/db", "kv", "get", "secret/default/db")
	v.fails(t, "not-a-token", "permission denied", "kv", "get", "secret/default/db")
	typed := filepath.Join(v.home, "typed.json")
	require.NoError(t, os.WriteFile(typed, []byte(`{"port": 5432}`), 0o600))
	v.fails(t, editor, "data.port", "kv", "put", "secret/default/typed", "@"+typed)

	// delete / undelete / destroy / metadata delete.
	v.fails(t, editor, "not supported", "kv", "delete", "-versions=1", "secret/default/db")
	v.fails(t, editor, "not supported", "kv", "undelete", "-versions=1", "secret/default/db")
	v.fails(t, editor, "not supported", "kv", "destroy", "-versions=1", "secret/default/db")
	// The warning that the delete cannot be undone reaches the terminal.
	del := v.run(t, editor, "kv", "delete", "secret/default/db")
	require.Equal(t, 0, del.code, "%s\n%s", del.out, del.err)
	require.Contains(t, del.out+del.err, "every version", "%s\n%s", del.out, del.err)
	v.fails(t, reader, "No value found", "kv", "get", "secret/default/db")
	v.ok(t, editor, "kv", "metadata", "delete", "secret/default/api")
	v.fails(t, reader, "No value found", "kv", "list", "secret/default")

	// Not served: mount tuning.
	v.fails(t, admin, "404", "kv", "enable-versioning", "secret/")

	// The value never reached the server's output or its audit log.
	for name, text := range map[string]string{"stdout": g.Stdout(), "stderr": g.Stderr(), "audit": g.Audit()} {
		require.NotContains(t, text, canary, "the canary is in the server's %s", name)
	}
}
