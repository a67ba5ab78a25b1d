package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

func TestCLIRoundTrip(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{Subjects: []testenv.Subject{
		{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
		{Name: "editor", Grants: []testenv.Grant{{Project: "default", Role: "editor"}}},
	}})
	admin := srv.Token("admin")
	canary := randomCanary(t)
	ok := func(res testenv.CLIResult) testenv.CLIResult {
		t.Helper()
		require.Equal(t, 0, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
		return res
	}

	// From stdin.
	ok(srv.CLI(t, admin, canary, "secret", "create", "database-config", "user=app", "password=-"))
	// From a file.
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	require.NoError(t, os.WriteFile(certFile, []byte(cert), 0o600))
	ok(srv.CLI(t, admin, "", "secret", "create", "tls", "cert=@"+certFile))

	res := ok(srv.CLI(t, admin, "", "secret", "get", "database-config", "--key", "password"))
	require.Equal(t, canary, strings.TrimRight(res.Stdout, "\n"))
	res = ok(srv.CLI(t, admin, "", "secret", "get", "tls", "--key", "cert"))
	require.Equal(t, cert, strings.TrimSuffix(res.Stdout, "\n"), "the bare value, plus one newline")

	// -o json: metadata by default, no values.
	res = ok(srv.CLI(t, admin, "", "secret", "get", "database-config", "-o", "json"))
	var meta map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &meta), res.Stdout)
	require.Equal(t, "database-config", meta["name"])
	require.Equal(t, []any{"password", "user"}, meta["keys"])
	require.NotContains(t, res.Stdout, canary)

	res = ok(srv.CLI(t, admin, "", "secret", "list", "-o", "json"))
	require.Contains(t, res.Stdout, "database-config")
	require.NotContains(t, res.Stdout, canary)

	// The editor writes but cannot read values back.
	ok(srv.CLI(t, srv.Token("editor"), "", "secret", "patch", "database-config", "user=other"))
	res = ok(srv.CLI(t, srv.Token("editor"), "", "secret", "patch", "database-config", "--label", "env=prod", "--label", "team=db"))
	require.Regexp(t, `(?m)^labels\s+env=prod,team=db$`, res.Stdout)
	res = ok(srv.CLI(t, srv.Token("editor"), "", "secret", "patch", "database-config", "user=third", "--clear-labels"))
	require.Regexp(t, `(?m)^labels\s+-$`, res.Stdout)
	require.Regexp(t, `(?m)^keys\s+password, user$`, res.Stdout, "label patches keep every key")
	res = srv.CLI(t, srv.Token("editor"), "", "secret", "get", "database-config", "--key", "password")
	require.NotEqual(t, 0, res.Code)
	require.NotContains(t, res.Stdout+res.Stderr, canary)

	require.NotContains(t, srv.Stdout()+srv.Stderr()+srv.Audit(), canary)
}
