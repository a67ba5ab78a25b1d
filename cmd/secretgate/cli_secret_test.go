package main

import (
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk/client"
)

const canary = "canary-Zq9x-value"

func TestSecretRoundTrip(t *testing.T) {
	f := useGateway(t, gatewaytest.AdminToken)
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", canary+"-file\n")

	// create: stdin, file and literal; labels; output is metadata only.
	out, stderr, code := runCLI(t, canary+"-stdin", "secret", "create", "database-config",
		"host=db.internal", "password=@"+pwFile, "token=-", "--label", "env=prod")
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, out+stderr, canary)
	require.Regexp(t, `(?m)^name\s+database-config$`, out)
	require.Regexp(t, `(?m)^keys\s+host, password, token$`, out)
	require.Regexp(t, `(?m)^labels\s+env=prod$`, out)
	require.Regexp(t, `(?m)^version\s+1$`, out)
	v, _ := f.Value("default", "database-config", "token")
	require.Equal(t, canary+"-stdin", v, "stdin is stored byte for byte")
	v, _ = f.Value("default", "database-config", "password")
	require.Equal(t, canary+"-file\n", v, "files are stored byte for byte")

	_, stderr, code = runCLI(t, "", "secret", "create", "database-config", "a=b")
	require.Equal(t, exitAlreadyExists, code)
	require.Contains(t, stderr, "already_exists")

	// get: metadata by default, values only when asked.
	out, _, code = runCLI(t, "", "secret", "get", "database-config")
	require.Equal(t, 0, code)
	require.NotContains(t, out, canary)
	require.Contains(t, out, "host, password, token")

	out, _, code = runCLI(t, "", "secret", "get", "database-config", "--key", "token")
	require.Equal(t, 0, code)
	require.Equal(t, canary+"-stdin\n", out, "--key prints the bare value and a newline")

	out, _, code = runCLI(t, "", "secret", "get", "database-config", "--reveal")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^host\s+db.internal$`, out)
	require.Contains(t, out, `"`+canary+`-file\n"`, "a value with a newline is quoted in a table")

	out, _, code = runCLI(t, "", "secret", "get", "database-config", "--reveal", "-o", "json")
	require.Equal(t, 0, code)
	var read map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &read))
	for _, k := range []string{"project", "name", "keys", "version", "labels", "created_at", "updated_at", "data"} {
		require.Contains(t, read, k)
	}
	require.Equal(t, canary+"-stdin", read["data"].(map[string]any)["token"])

	out, _, code = runCLI(t, "", "secret", "get", "database-config", "-o", "json")
	require.Equal(t, 0, code)
	require.NotContains(t, out, canary)
	require.NotContains(t, out, `"data"`)

	_, stderr, code = runCLI(t, "", "secret", "get", "database-config", "--key", "nope")
	require.Equal(t, exitNotFound, code)
	require.Contains(t, stderr, `no key "nope"; its keys are host, password, token`)

	// patch: set one key from stdin, unset another.
	out, stderr, code = runCLI(t, "rotated", "secret", "patch", "database-config", "token=-", "--unset", "host", "--if-match", "1")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^version\s+2$`, out)
	require.Regexp(t, `(?m)^keys\s+password, token$`, out)

	// update: replace; a stale --if-match is exit 6.
	_, stderr, code = runCLI(t, "", "secret", "update", "database-config", "user=app", "--if-match", "1")
	require.Equal(t, exitVersionMismatch, code)
	require.Contains(t, stderr, "version_mismatch")
	out, _, code = runCLI(t, "", "secret", "update", "database-config", "user=app", "--if-match", "2", "-o", "json")
	require.Equal(t, 0, code)
	var meta struct {
		Version int64
		Keys    []string
		Labels  map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(out), &meta))
	require.Equal(t, int64(3), meta.Version)
	require.Equal(t, []string{"user"}, meta.Keys)
	require.Equal(t, map[string]string{"env": "prod"}, meta.Labels)

	// An older version, by number.
	out, _, code = runCLI(t, "", "secret", "get", "database-config", "--version", "2", "--key", "token")
	require.Equal(t, 0, code)
	require.Equal(t, "rotated\n", out)
	out, _, code = runCLI(t, "", "secret", "get", "database-config", "--version", "1")
	require.Equal(t, 0, code)
	require.NotContains(t, out, canary, "--version alone shows metadata")
	require.Regexp(t, `(?m)^version\s+1$`, out)

	// versions
	out, _, code = runCLI(t, "", "secret", "versions", "database-config")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?s)^VERSION\s+CREATED\s+KEYS\s+CHANGES\n`+
		`1\s+\S+Z\s+host,password,token\s+created\n`+
		`2\s+\S+Z\s+password,token\s+-host\n`+
		`3\s+\S+Z\s+user\s+\+user -password -token\n$`, out)
	require.NotContains(t, out, canary)
	out, _, code = runCLI(t, "", "secret", "versions", "database-config", "-o", "json")
	require.Equal(t, 0, code)
	var vs struct {
		Versions []struct {
			Version int64
			Keys    []string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &vs))
	require.Len(t, vs.Versions, 3)
	require.Equal(t, []string{"password", "token"}, vs.Versions[1].Keys)

	// delete
	_, _, code = runCLI(t, "", "secret", "delete", "database-config", "--if-match", "2")
	require.Equal(t, exitVersionMismatch, code)
	out, _, code = runCLI(t, "", "secret", "delete", "database-config", "-o", "json")
	require.Equal(t, 0, code)
	require.JSONEq(t, `{"project":"default","name":"database-config","deleted":true}`, out)
	_, stderr, code = runCLI(t, "", "secret", "get", "database-config")
	require.Equal(t, exitNotFound, code)
	require.Contains(t, stderr, "not_found")
}

func TestSecretList(t *testing.T) {
	useGateway(t, gatewaytest.AdminToken)
	for _, n := range []string{"stripe-a", "stripe-b", "db", "api"} {
		_, stderr, code := runCLI(t, "", "secret", "create", n, "k="+canary, "-p", "payments")
		require.Equal(t, 0, code, stderr)
	}
	out, _, code := runCLI(t, "", "secret", "list", "-p", "payments")
	require.Equal(t, 0, code)
	require.NotContains(t, out, canary)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5)
	require.Regexp(t, `^NAME\s+VERSION\s+KEYS\s+UPDATED\s+LABELS$`, lines[0])
	require.Regexp(t, `^api\s+1\s+k\s+\S+Z\s+-$`, lines[1])

	t.Setenv(envProject, "payments")
	out, _, code = runCLI(t, "", "secret", "list", "--prefix", "stripe-", "-o", "json")
	require.Equal(t, 0, code)
	var page struct {
		Secrets []struct {
			Name string
			Keys []string
		}
		NextPageToken *string `json:"next_page_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &page))
	require.Len(t, page.Secrets, 2)
	require.Equal(t, "stripe-a", page.Secrets[0].Name)
	require.NotNil(t, page.NextPageToken)
	require.Empty(t, *page.NextPageToken)

	// One page at a time.
	out, _, code = runCLI(t, "", "secret", "list", "--page-size", "3")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^stripe-a\s`, out, "the first page ends at stripe-a")
	// The gateway seals page tokens: opaque, not the last name.
	more := regexp.MustCompile(`(?m)^more: --page-token (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, more, "a page that is not the last says how to get the next: %s", out)
	out, _, code = runCLI(t, "", "secret", "list", "--page-size", "3", "--page-token", more[1])
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^stripe-b\s`, out)
	require.NotContains(t, out, "more:")

	// The narrow token sees only what its globs cover.
	t.Setenv(envToken, gatewaytest.NarrowToken)
	out, _, code = runCLI(t, "", "secret", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "stripe-a")
	require.NotContains(t, out, "db")
}

func TestSecretPermissionsAndErrors(t *testing.T) {
	useGateway(t, gatewaytest.AdminToken)
	_, _, code := runCLI(t, "", "secret", "create", "db", "password="+canary)
	require.Equal(t, 0, code)

	t.Setenv(envToken, gatewaytest.EditorToken)
	out, stderr, code := runCLI(t, "", "secret", "get", "db", "--reveal")
	require.Equal(t, exitDenied, code, "an editor cannot read values")
	require.Contains(t, stderr, "permission_denied")
	require.NotContains(t, out+stderr, canary)
	_, _, code = runCLI(t, "", "secret", "get", "db")
	require.Equal(t, 0, code, "but it can describe")
	_, _, code = runCLI(t, "", "secret", "patch", "db", "password=new")
	require.Equal(t, 0, code, "and write")
	_, stderr, code = runCLI(t, "", "secret", "list", "-p", "elsewhere")
	require.Equal(t, exitNotFound, code, "no binding: not found")
	require.Contains(t, stderr, "not_found")

	t.Setenv(envToken, "sg_wrong")
	_, stderr, code = runCLI(t, "", "secret", "list")
	require.Equal(t, exitDenied, code)
	require.Contains(t, stderr, "unauthenticated")

	t.Setenv(envToken, "")
	_, stderr, code = runCLI(t, "", "secret", "list")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "SECRETGATE_TOKEN is not set")

	t.Setenv(envToken, gatewaytest.AdminToken)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "create", "x", "a=-", "b=-"}, "only one key may read standard input"},
		{[]string{"secret", "create", "x", canary}, "argument 1: want key=value"},
		{[]string{"secret", "create", "bad/name", "a=b"}, "invalid name"},
		{[]string{"secret", "patch", "db"}, "at least one key=value, --unset key, --label"},
		{[]string{"secret", "list", "-o", "xml"}, "--output"},
		{[]string{"secret", "get", "db", "--version", "-1"}, "--version"},
		{[]string{"secret", "create", "x", "a=b", "--label", "Bad=1"}, "labels"},
	} {
		_, stderr, code := runCLI(t, "in", tc.args...)
		require.Equal(t, exitUsage, code, tc.args)
		require.Contains(t, stderr, tc.want, tc.args)
		require.NotContains(t, stderr, canary)
	}

	// Nothing listens: exit 7.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	t.Setenv(envAddr, "http://"+addr)
	_, stderr, code = runCLI(t, "", "secret", "list")
	require.Equal(t, exitUnavailable, code)
	require.Contains(t, stderr, "cannot reach the gateway")
}

func TestKeyChanges(t *testing.T) {
	v := func(n int64, keys ...string) client.VersionInfo { return client.VersionInfo{Version: n, Keys: keys} }
	unknown := client.VersionInfo{Version: 2}
	tests := []struct {
		name string
		prev *client.VersionInfo
		cur  client.VersionInfo
		want string
	}{
		{"first version", nil, v(1, "a", "b"), "created"},
		{"first listed, older pruned", nil, v(4, "a"), "?"},
		{"added and removed", &[]client.VersionInfo{v(1, "a", "b")}[0], v(2, "b", "c", "d"), "+c +d -a"},
		{"only values changed", &[]client.VersionInfo{v(1, "a")}[0], v(2, "a"), "same keys"},
		{"previous without keys", &unknown, v(3, "a"), "?"},
		{"this one without keys", &[]client.VersionInfo{v(1, "a")}[0], unknown, "?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, keyChanges(tc.prev, tc.cur))
		})
	}
}
