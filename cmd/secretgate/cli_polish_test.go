package main

import (
	"net"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
)

func TestUnknownSubcommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"secert"}, `unknown command "secert" for "secretgate"; did you mean secret?`},
		{[]string{"secret", "lst"}, `unknown command "lst" for "secretgate secret"; did you mean list?`},
		{[]string{"project", "lsit"}, `unknown command "lsit" for "secretgate project"; did you mean list?`},
		{[]string{"token", "nwe"}, `unknown command "nwe" for "secretgate token"; did you mean new?`},
		{[]string{"policy", "explian"}, `unknown command "explian" for "secretgate policy"; did you mean explain?`},
		{[]string{"migrate", "stauts"}, `unknown command "stauts" for "secretgate migrate"; did you mean status?`},
		{[]string{"plugin", "sha265"}, `unknown command "sha265" for "secretgate plugin"; did you mean sha256?`},
		{[]string{"secret", "zzz"}, `unknown command "zzz" for "secretgate secret" (see 'secretgate secret --help')`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, stderr, code := runCLI(t, "", tc.args...)
			require.Equal(t, exitUsage, code, stderr)
			require.Contains(t, stderr, "secretgate: "+tc.want)
			require.Empty(t, out, "no help page on stdout for a mistake")
		})
	}

	// A group alone still shows its help, with success.
	out, _, code := runCLI(t, "", "secret")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Available Commands:")
}

// Every group of the tree, present and future, refuses an unknown word.
func TestEveryGroupRefusesUnknownSubcommand(t *testing.T) {
	var groups [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.HasSubCommands() {
			groups = append(groups, path)
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRootCmd(), nil)
	require.GreaterOrEqual(t, len(groups), 7, "root, secret, project, token, policy, migrate, plugin")
	for _, g := range groups {
		_, stderr, code := runCLI(t, "", append(g, "no-such-command")...)
		require.Equal(t, exitUsage, code, "%v: %s", g, stderr)
		require.Contains(t, stderr, `unknown command "no-such-command"`, g)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "get"}, "secretgate: secret get: accepts 1 arg(s), received 0 (see 'secretgate secret get --help')"},
		{[]string{"secret", "list", "--bogus"}, "secretgate: unknown flag: --bogus"},
		{[]string{"policy", "explain", "--subject", "a"}, `secretgate: required flag(s) "action", "project" not set`},
		{[]string{"secret", "get", "a", "--reveal", "--key", "k"}, "secretgate: if any flags in the group [reveal key] are set"},
	} {
		_, stderr, code := runCLI(t, "", tc.args...)
		require.Equal(t, exitUsage, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, tc.args)
	}
}

func TestVersionOf(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name   string
		bi     *debug.BuildInfo
		linked string
		want   versionInfo
		text   string
	}{
		{
			"git checkout, modified",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202001831-54e7f87002d3+dirty"},
				Settings: vcs("vcs", "git", "vcs.revision", "54e7f87002d3f356cca003a7a2d7f2d8006994a2", "vcs.time", "2026-12-02T00:18:31Z", "vcs.modified", "true")},
			"",
			versionInfo{Version: "v0.0.0-20261202001831-54e7f87002d3+dirty", Commit: "54e7f87002d3f356cca003a7a2d7f2d8006994a2", Modified: true, CommitTime: "2026-12-02T00:18:31Z", Go: "go1.26.8", Platform: platform},
			"secretgate v0.0.0-20261202001831-54e7f87002d3+dirty\ncommit:    54e7f87002d3f356cca003a7a2d7f2d8006994a2 (with uncommitted changes)\ncommitted: 2026-12-02T00:18:31Z\ngo:        go1.26.8 " + platform + "\n",
		},
		{
			"clean checkout, release version linked in",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
				Settings: vcs("vcs.revision", "abc", "vcs.modified", "false")},
			"v1.2.3",
			versionInfo{Version: "v1.2.3", Commit: "abc", Go: "go1.26.8", Platform: platform},
			"secretgate v1.2.3\ncommit:    abc\ngo:        go1.26.8 " + platform + "\n",
		},
		{
			"no VCS information (-buildvcs=false, or a tarball)",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"",
			versionInfo{Version: "devel", Go: "go1.26.8", Platform: platform},
			"secretgate devel\ncommit:    unknown (built without version control information)\ngo:        go1.26.8 " + platform + "\n",
		},
		{
			"no build information at all",
			nil, "",
			versionInfo{Version: "devel", Go: runtime.Version(), Platform: platform},
			"secretgate devel\ncommit:    unknown (built without version control information)\ngo:        " + runtime.Version() + " " + platform + "\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := versionOf(tc.bi, tc.linked)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.text, got.text())
		})
	}
}

func TestVersionCommandAndFlag(t *testing.T) {
	out, stderr, code := runCLI(t, "", "version")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(out, "secretgate "), out)
	require.Contains(t, out, "go:        "+runtime.Version())
	flag, _, code := runCLI(t, "", "--version")
	require.Equal(t, 0, code)
	require.Equal(t, out, flag, "--version prints what `version` prints")
	js, _, code := runCLI(t, "", "version", "-o", "json")
	require.Equal(t, 0, code)
	require.Contains(t, js, `"go": "`+runtime.Version()+`"`)
}

func TestSecretHelpShowsProjectDefaultOnce(t *testing.T) {
	t.Setenv(envProject, "")
	out, _, code := runCLI(t, "", "secret", "--help")
	require.Equal(t, 0, code)
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "--project") {
			line = l
		}
	}
	require.NotEmpty(t, line, out)
	require.Equal(t, 1, strings.Count(line, "(default"), "the default is said once: %q", line)
	require.Contains(t, line, `(default "default")`)

	t.Setenv(envProject, "payments")
	out, _, _ = runCLI(t, "", "secret", "list", "--help")
	require.Contains(t, out, `$SECRETGATE_PROJECT when not given (default "payments")`)
}

func TestAPIBase(t *testing.T) {
	tests := []struct {
		addr, base, dropped string
	}{
		{"http://127.0.0.1:8270", "http://127.0.0.1:8270", ""},
		{"http://127.0.0.1:8270/", "http://127.0.0.1:8270/", ""},
		{"127.0.0.1:8270", "127.0.0.1:8270", ""},
		{"http://127.0.0.1:8270/ui/", "http://127.0.0.1:8270", "/ui/"},
		{"http://127.0.0.1:8270/ui", "http://127.0.0.1:8270", "/ui"},
		{"http://127.0.0.1:8270/ui/#/secrets?x=1", "http://127.0.0.1:8270", "/ui/#/secrets?x=1"},
		{"127.0.0.1:8270/ui/", "http://127.0.0.1:8270", "/ui/"},
		{"https://gw.example/v1/projects/default/secrets", "https://gw.example", "/v1/projects/default/secrets"},
		// A proxy's sub-path is kept; only what follows it goes.
		{"https://proxy.example/secretgate", "https://proxy.example/secretgate", ""},
		{"https://proxy.example/secretgate/ui/", "https://proxy.example/secretgate", "/ui/"},
		{"https://proxy.example/build/v1", "https://proxy.example/build", "/v1"},
		{"http://h/uix/v1x", "http://h/uix/v1x", ""},
		{"http://127.0.0.1:8270?x=1", "http://127.0.0.1:8270", "?x=1"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			base, dropped, err := apiBase(tc.addr)
			require.NoError(t, err)
			require.Equal(t, tc.base, base)
			require.Equal(t, tc.dropped, dropped)
		})
	}
	for _, bad := range []string{"ftp://h", "http://", "http://[::1"} {
		_, _, err := apiBase(bad)
		require.Error(t, err, bad)
	}
}

func TestConnectionFlags(t *testing.T) {
	f := useGateway(t, "sg_wrong")
	t.Setenv(envTokenFile, "")
	tokenFile := writeFile(t, t.TempDir(), "token", gatewaytest.AdminToken+"\n")

	// A dead address and a wrong token in the environment: the flags win.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	t.Setenv(envAddr, dead)
	_, stderr, code := runCLI(t, "", "secret", "list", "--addr", f.URL, "--token", gatewaytest.AdminToken)
	require.Equal(t, 0, code, stderr)
	_, stderr, code = runCLI(t, "", "project", "list", "--addr", f.URL, "--token-file", tokenFile)
	require.Equal(t, 0, code, stderr)
	t.Setenv(envToken, "")
	t.Setenv(envTokenFile, filepath.Join(t.TempDir(), "missing"))
	_, stderr, code = runCLI(t, "", "secret", "list", "--addr", f.URL, "--token", gatewaytest.AdminToken)
	require.Equal(t, 0, code, "--token wins over SECRETGATE_TOKEN_FILE too: %s", stderr)
	t.Setenv(envTokenFile, "")

	// The web UI's address, pasted from the banner, is used without /ui/.
	t.Setenv(envAddr, f.URL+"/ui/")
	t.Setenv(envToken, gatewaytest.AdminToken)
	out, stderr, code := runCLI(t, "", "secret", "list")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "NAME")
	require.Contains(t, stderr, "secretgate: note: SECRETGATE_ADDR "+f.URL+"/ui/: /ui/ is not part of the API's address")
	require.Contains(t, stderr, "using "+f.URL+"\n")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "list", "--token", "a", "--token-file", tokenFile}, "--token and --token-file exclude each other"},
		{[]string{"secret", "list", "--token="}, "--token is empty"},
		{[]string{"secret", "list", "--addr="}, "--addr is empty"},
		{[]string{"secret", "list", "--addr", "ftp://x"}, `--addr: scheme "ftp" is neither http nor https`},
		{[]string{"secret", "list", "--token-file", filepath.Join(t.TempDir(), "none")}, "none"},
	} {
		_, stderr, code := runCLI(t, "", tc.args...)
		require.Equal(t, exitUsage, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, tc.args)
	}

	// Every client command has the three flags.
	for _, c := range [][]string{{"secret", "get"}, {"secret", "watch"}, {"secret", "rollback"}, {"project", "list"}, {"migrate"}, {"migrate", "status"}, {"run"}, {"inject"}} {
		out, _, code := runCLI(t, "", append(c, "--help")...)
		require.Equal(t, 0, code, c)
		for _, fl := range []string{"--addr", "--token ", "--token-file"} {
			require.Contains(t, out, fl, c)
		}
		require.Contains(t, out, "process listings", c)
	}
}

// One format for every failure: "secretgate: " and the message, the
// gateway's answers as CODE (STATUS): MESSAGE [request ID], and a hint
// naming where the token or the address came from.
func TestErrorFormat(t *testing.T) {
	f := useGateway(t, gatewaytest.EditorToken)
	t.Setenv(envTokenFile, "")
	_, _, code := runCLI(t, "", "secret", "create", "db", "password=x")
	require.Equal(t, 0, code)
	_, stderr, code := runCLI(t, "", "secret", "get", "db", "--reveal")
	require.Equal(t, exitDenied, code)
	require.Regexp(t, `^secretgate: permission_denied \(403\): .+ \[request [0-9a-f-]+\]\n$`, stderr)

	_, stderr, _ = runCLI(t, "", "secret", "list", "--token", "sg_wrong")
	require.Regexp(t, `^secretgate: unauthenticated \(401\): .+ \[request [0-9a-f-]+\]\nhint: the gateway does not accept the token of --token `, stderr)
	t.Setenv(envToken, "sg_wrong")
	_, stderr, _ = runCLI(t, "", "project", "list")
	require.Contains(t, stderr, "\nhint: the gateway does not accept the token of SECRETGATE_TOKEN ")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	_, stderr, code = runCLI(t, "", "secret", "list", "--addr", dead)
	require.Equal(t, exitUnavailable, code)
	require.Regexp(t, `^secretgate: .*cannot reach the gateway.*\nhint: is a gateway listening at `+dead+` \(from --addr\)\?`, stderr)

	// Local failures: the same prefix, no hint.
	_, stderr, _ = runCLI(t, "", "secret", "create", "x", "a=-", "b=-", "--addr", f.URL)
	require.Regexp(t, `^secretgate: data: key "b": only one key may read standard input\n$`, stderr)
}

func TestCreateFromEnvFile(t *testing.T) {
	f := useGateway(t, gatewaytest.AdminToken)
	t.Setenv(envTokenFile, "")
	dir := t.TempDir()
	env := writeFile(t, dir, "app.env", "# app\nexport DB_HOST=db.internal\nDB_PASSWORD='"+canary+" #1'\nGREETING=\"hello\\nworld\" # comment\nEMPTY=\n")
	out, stderr, code := runCLI(t, "", "secret", "create", "app", "--from-env-file", env, "extra=@"+writeFile(t, dir, "x", "from-file"))
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^keys\s+DB_HOST, DB_PASSWORD, EMPTY, GREETING, extra$`, out)
	require.NotContains(t, out+stderr, canary)
	for k, want := range map[string]string{"DB_HOST": "db.internal", "DB_PASSWORD": canary + " #1", "GREETING": "hello\nworld", "EMPTY": "", "extra": "from-file"} {
		v, ok := f.Value("default", "app", k)
		require.True(t, ok, k)
		require.Equal(t, want, v, k)
	}

	// Standard input.
	_, stderr, code = runCLI(t, "A=1\nB=2\n", "secret", "create", "piped", "--from-env-file", "-")
	require.Equal(t, 0, code, stderr)
	v, _ := f.Value("default", "piped", "B")
	require.Equal(t, "2", v)

	for _, tc := range []struct {
		name  string
		file  string
		args  []string
		stdin string
		want  string
	}{
		{"repeated in the file", "A=" + canary + "\nB=2\nA=3\n", nil, "", "app.env:3: A is given twice (also on line 1)"},
		{"also an argument", "A=" + canary + "\n", []string{"A=x"}, "", "app.env:1: A is also given as an argument"},
		{"bad line", "A=1\nnot a pair\n", nil, "", "--from-env-file " + dir + "/bad.env:2: want NAME=VALUE"},
		{"unterminated quote", "A=\"" + canary + "\n", nil, "", "A: unterminated double quote"},
		{"no line", "# nothing\n\n", nil, "", "no NAME=VALUE line"},
		{"stdin twice", "", []string{"k=-"}, "x", "standard input is already the value of a key=- argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "app.env"
			if tc.name == "bad line" {
				name = "bad.env"
			}
			path := writeFile(t, dir, name, tc.file)
			if tc.name == "stdin twice" {
				path = "-"
			}
			args := append([]string{"secret", "create", "failed", "--from-env-file", path}, tc.args...)
			_, stderr, code := runCLI(t, tc.stdin, args...)
			require.Equal(t, exitUsage, code, stderr)
			require.Contains(t, stderr, tc.want)
			require.NotContains(t, stderr, canary, "errors name lines and keys, never values")
		})
	}
	_, stderr, code = runCLI(t, "", "secret", "create", "nothing")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "--from-env-file FILE")
	_, stderr, code = runCLI(t, "", "secret", "create", "nofile", "--from-env-file", filepath.Join(dir, "missing.env"))
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "missing.env")
	_, ok := f.Value("default", "failed", "A")
	require.False(t, ok, "nothing was created by a refused command")
}

func TestSecretRollback(t *testing.T) {
	f := useGateway(t, gatewaytest.AdminToken)
	t.Setenv(envTokenFile, "")
	_, _, code := runCLI(t, "", "secret", "create", "db", "password="+canary, "--label", "env=prod")
	require.Equal(t, 0, code)
	_, _, code = runCLI(t, "", "secret", "update", "db", "password=bad", "extra=1")
	require.Equal(t, 0, code)

	// An editor rolls back values it can never read.
	t.Setenv(envToken, gatewaytest.EditorToken)
	out, stderr, code := runCLI(t, "", "secret", "rollback", "db", "--version", "1", "--if-match", "2")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^version\s+3$`, out)
	require.Regexp(t, `(?m)^keys\s+password$`, out)
	require.Regexp(t, `(?m)^labels\s+env=prod$`, out)
	require.NotContains(t, out+stderr, canary)
	v, _ := f.Value("default", "db", "password")
	require.Equal(t, canary, v)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"secret", "rollback", "db", "--version", "1", "--if-match", "2"}, exitVersionMismatch, "version_mismatch (412)"},
		{[]string{"secret", "rollback", "db", "--version", "9"}, exitNotFound, "not_found (404)"},
		{[]string{"secret", "rollback", "db"}, exitUsage, "--version N is required"},
		{[]string{"secret", "rollback", "nope", "--version", "1"}, exitNotFound, "not_found (404)"},
	} {
		_, stderr, code := runCLI(t, "", tc.args...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, tc.args)
	}
	t.Setenv(envToken, gatewaytest.ViewerToken)
	_, stderr, code = runCLI(t, "", "secret", "rollback", "db", "--version", "1")
	require.Equal(t, exitDenied, code, "a viewer may not write: %s", stderr)
}
