package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/testenv"
)

// envWithout is the test's environment without SECRETGATE_* variables, and
// extra added: the CLI sees only what a test gives it.
func envWithout(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETGATE_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// `go build` of a git checkout stamps the commit into the binary, and
// `secretgate version` (and --version) reports it. The binary is built here
// with -buildvcs=true: GOFLAGS on some machines turns the stamping off.
func TestCLIVersionFromBuildInfo(t *testing.T) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		cirequire.Unavailable(t, "not a git checkout, or no git: the commit cannot be stamped ("+err.Error()+")")
	}
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	require.NoError(t, err)

	bin := filepath.Join(t.TempDir(), "secretgate")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/secretgate")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	status, err := exec.Command("git", "-C", root, "status", "--porcelain").Output()
	require.NoError(t, err)

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).Output()
		require.NoError(t, err, args)
		return string(out)
	}
	text := run("version")
	require.Equal(t, text, run("--version"))
	commit := strings.TrimSpace(string(head))
	require.Contains(t, text, "commit:    "+commit)
	require.Contains(t, text, "go:        "+strings.TrimSpace(string(goVersion)))
	require.Regexp(t, `^secretgate v\S+\n`, text, "the version Go derives from the commit")

	var v struct {
		Version, Commit, Go string
		Modified            bool
	}
	require.NoError(t, json.Unmarshal([]byte(run("version", "-o", "json")), &v))
	require.Equal(t, commit, v.Commit)
	// Go marks a build from a working tree with changes (untracked files
	// included) as modified; in a clean checkout it is not.
	require.Equal(t, len(status) > 0, v.Modified)
	require.Equal(t, len(status) > 0, strings.Contains(text, "(with uncommitted changes)"))
}

func TestCLIPolish(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{Subjects: []testenv.Subject{
		{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
		{Name: "editor", Grants: []testenv.Grant{{Project: "default", Role: "editor"}}},
	}})
	admin, editor := srv.Token("admin"), srv.Token("editor")
	canary := randomCanary(t)
	cli := func(env []string, stdin string, args ...string) testenv.CLIResult {
		t.Helper()
		return testenv.Run(t, envWithout(env...), srv.Dir, stdin, args...)
	}

	// A mistyped subcommand of a group: exit 2 and a suggestion, no help page.
	res := cli(nil, "", "secret", "lst")
	require.Equal(t, 2, res.Code)
	require.Equal(t, `secretgate: unknown command "lst" for "secretgate secret"; did you mean list? (see 'secretgate secret --help')`+"\n", res.Stderr)
	require.Empty(t, res.Stdout)

	// --addr and --token win over the environment, which names a dead
	// gateway and a wrong token here.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	badEnv := []string{"SECRETGATE_ADDR=" + dead, "SECRETGATE_TOKEN=sg_wrong"}
	env := filepath.Join(t.TempDir(), "app.env")
	require.NoError(t, os.WriteFile(env, []byte("export DB_USER=app\nDB_PASSWORD='"+canary+"'\n# comment\nGREETING=\"a\\nb\" # trailing\n"), 0o600))
	res = cli(badEnv, "", "secret", "create", "app", "--from-env-file", env, "--addr", srv.URL, "--token", admin)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Regexp(t, `(?m)^keys\s+DB_PASSWORD, DB_USER, GREETING$`, res.Stdout)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(admin+"\n"), 0o600))
	res = cli(badEnv, "", "secret", "get", "app", "--key", "GREETING", "--addr", srv.URL, "--token-file", tokenFile)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, "a\nb\n", res.Stdout)

	// Without the flags, the environment's wrong values fail, each with a
	// hint naming where it came from, in the one error format.
	res = cli(badEnv, "", "secret", "list")
	require.Equal(t, 7, res.Code)
	require.Regexp(t, `^secretgate: .*cannot reach the gateway.*\nhint: is a gateway listening at `+regexp.QuoteMeta(dead)+` \(from SECRETGATE_ADDR\)\?`, res.Stderr)
	res = cli([]string{"SECRETGATE_ADDR=" + srv.URL, "SECRETGATE_TOKEN=sg_wrong"}, "", "secret", "list")
	require.Equal(t, 3, res.Code)
	require.Regexp(t, `^secretgate: unauthenticated \(401\): invalid bearer token \[request [0-9a-f-]+\]\nhint: the gateway does not accept the token of SECRETGATE_TOKEN `, res.Stderr)

	// The web UI's address pasted from the banner works, with a note.
	ui := []string{"SECRETGATE_ADDR=" + srv.URL + "/ui/", "SECRETGATE_TOKEN=" + editor}
	res = cli(ui, "", "secret", "list")
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Contains(t, res.Stdout, "app")
	require.Equal(t, "secretgate: note: SECRETGATE_ADDR "+srv.URL+"/ui/: /ui/ is not part of the API's address (the web UI's path, or an API path, which the CLI adds itself); using "+srv.URL+"\n", res.Stderr)

	// Rollback: an editor, who cannot read the values, brings version 1 back.
	res = cli(ui, "", "secret", "patch", "app", "DB_PASSWORD=rotated-badly")
	require.Equal(t, 0, res.Code, res.Stderr)
	res = cli(ui, "", "secret", "get", "app", "--key", "DB_PASSWORD")
	require.Equal(t, 3, res.Code)
	require.Regexp(t, `^secretgate: note: .*\nsecretgate: permission_denied \(403\): .+ \[request [0-9a-f-]+\]\n$`, res.Stderr)
	res = cli(ui, "", "secret", "rollback", "app", "--version", "1", "--if-match", "1")
	require.Equal(t, 6, res.Code, "the latest is 2: %s", res.Stderr)
	require.Contains(t, res.Stderr, "secretgate: version_mismatch (412): ")
	res = cli(ui, "", "secret", "rollback", "app", "--version", "1", "--if-match", "2", "-o", "json")
	require.Equal(t, 0, res.Code, res.Stderr)
	var m struct{ Version int64 }
	require.NoError(t, json.Unmarshal([]byte(res.Stdout), &m), res.Stdout)
	require.Equal(t, int64(3), m.Version)
	res = srv.CLI(t, admin, "", "secret", "get", "app", "--key", "DB_PASSWORD")
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, canary+"\n", res.Stdout)

	// --token is there, with its warning.
	res = cli(nil, "", "secret", "list", "--help")
	require.Regexp(t, `--token string\s+bearer token \(default \$SECRETGATE_TOKEN\); other users of this machine can read it in process listings`, res.Stdout)

	require.NotContains(t, srv.Stdout()+srv.Stderr()+srv.Audit(), canary)
}

// `make run` twice: the dev server keeps its token in --dev-dir, so that
// the SECRETGATE_TOKEN exported after the first start still works.
func TestDevTokenKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	tokenRe := regexp.MustCompile(`export SECRETGATE_TOKEN=(\S+)`)
	path := filepath.Join(dir, ".secretgate", "dev-token")

	srv := testenv.StartDev(t, dir)
	m := tokenRe.FindStringSubmatch(srv.Stdout())
	require.NotNil(t, m, srv.Stdout())
	tok := m[1]
	require.Contains(t, srv.Stdout(), "Admin token (new, kept in "+path+" for the next start): "+tok+"\n")
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	res := srv.CLI(t, tok, "kept", "secret", "create", "db", "password=-")
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, 0, srv.Stop(t))

	srv = testenv.StartDev(t, dir)
	require.Contains(t, srv.Stdout(), "Admin token (reused from "+path+"): "+tok+"\n")
	require.Contains(t, srv.Stdout(), "export SECRETGATE_TOKEN="+tok+"\n")
	res = srv.CLI(t, tok, "", "secret", "get", "db", "--key", "password")
	require.Equal(t, 0, res.Code, "the token exported after the first start still works: %s", res.Stderr)
	require.Equal(t, "kept\n", res.Stdout)
	require.Equal(t, 0, srv.Stop(t))

	// --dev-token is used as given and not saved; the kept token stays.
	srv = testenv.StartDev(t, dir, "--dev-token", "sgdev_chosen")
	require.Contains(t, srv.Stdout(), "Admin token (from --dev-token, not saved): sgdev_chosen\n")
	require.Equal(t, 401, srv.Do(t, "GET", "/v1/projects", tok, nil).Status)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, tok+"\n", string(b))
}
