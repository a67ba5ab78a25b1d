package e2e

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/testenv"
)

// pythonTimeout bounds the whole Python test run.
const pythonTimeout = 3 * time.Minute

// TestPythonClient runs the Python SDK's tests (sdk/python/tests) against the
// real gateway: one on plain HTTP with an admin, an editor and a reader, two
// projects on two file backends (so copies cross backends and a dry-run
// migration has a target), and one on HTTPS with its CA. Then no value, and
// no token, may appear in the gateway's output, its audit log, or the tests'
// own output.
func TestPythonClient(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		cirequire.Unavailable(t, "python3 is not on PATH, so the Python SDK's tests cannot run")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)

	dir := t.TempDir()
	srv := testenv.Start(t, testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{testenv.FileBackend("src", dir), testenv.FileBackend("dst", dir)},
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}, {Name: "billing", Backend: "dst"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "payments", Role: "editor"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
		},
	})

	pki := t.TempDir()
	ca := newTestCA(t, "secretgate python e2e CA")
	certPEM, keyPEM := ca.issueServer(t)
	caFile := writePrivate(t, filepath.Join(pki, "ca.pem"), ca.pem)
	tlsSrv := testenv.Start(t, testenv.Options{TLS: &testenv.TLSFiles{
		CertFile: writePrivate(t, filepath.Join(pki, "server.pem"), certPEM),
		KeyFile:  writePrivate(t, filepath.Join(pki, "server-key.pem"), keyPEM),
		CAFile:   caFile,
	}})

	canary := randomCanary(t)
	ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", filepath.Join("sdk", "python", "tests"), "-v")
	cmd.Dir = root
	cmd.Env = clientEnv(
		"PYTHONPATH="+filepath.Join(root, "sdk", "python"),
		"PYTHONDONTWRITEBYTECODE=1",
		"SECRETGATE_TEST_ADDR="+srv.URL,
		"SECRETGATE_TEST_ADMIN_TOKEN="+srv.Token("admin"),
		"SECRETGATE_TEST_EDITOR_TOKEN="+srv.Token("editor"),
		"SECRETGATE_TEST_READER_TOKEN="+srv.Token("reader"),
		"SECRETGATE_TEST_PROJECT=payments",
		"SECRETGATE_TEST_OTHER_PROJECT=billing",
		"SECRETGATE_TEST_MIGRATE_SOURCE=src",
		"SECRETGATE_TEST_MIGRATE_TARGET=dst",
		"SECRETGATE_TEST_CANARY="+canary,
		"SECRETGATE_TEST_TLS_ADDR="+tlsSrv.URL,
		"SECRETGATE_TEST_TLS_TOKEN="+tlsSrv.Token("admin"),
		"SECRETGATE_TEST_TLS_CACERT="+caFile,
	)
	start := time.Now()
	outBytes, err := cmd.CombinedOutput()
	out := string(outBytes)
	// Shown on failure with the canary masked, so that a leak is visible as
	// such in the log without the log repeating the value.
	shown := strings.ReplaceAll(out, canary, "<CANARY>")
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("python3 -m unittest did not finish within %s:\n%s", pythonTimeout, shown)
	}
	require.NoError(t, err, "python3 -m unittest failed:\n%s", shown)
	require.Regexp(t, `(?m)^OK$`, out, "every test ran, none skipped:\n%s", shown)
	t.Logf("Python SDK tests passed in %s: %s", time.Since(start).Round(time.Millisecond), summaryLine(out))

	// The witness proves the canary really went through the gateway.
	r := srv.Do(t, http.MethodGet, "/v1/projects/payments/secrets/canary-witness", srv.Token("admin"), nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Contains(t, string(r.Body), canary, "the witness secret holds the canary")

	tokens := []string{srv.Token("admin"), srv.Token("editor"), srv.Token("reader"), tlsSrv.Token("admin")}
	for where, text := range map[string]string{
		"gateway stdout":      srv.Stdout(),
		"gateway stderr":      srv.Stderr(),
		"gateway audit log":   srv.Audit(),
		"TLS gateway stdout":  tlsSrv.Stdout(),
		"TLS gateway stderr":  tlsSrv.Stderr(),
		"TLS gateway audit":   tlsSrv.Audit(),
		"Python tests output": out,
	} {
		require.False(t, strings.Contains(text, canary), "the canary value leaked into the %s", where)
		for _, tok := range tokens {
			require.False(t, strings.Contains(text, tok), "a token leaked into the %s", where)
		}
	}
}

// summaryLine is unittest's "Ran N tests in Xs" line.
func summaryLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Ran ") {
			return line
		}
	}
	return "(no summary line)"
}
