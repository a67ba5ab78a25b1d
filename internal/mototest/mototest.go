// Package mototest starts a local moto server (a stand-in for AWS APIs, here
// Secrets Manager) for tests: on a free 127.0.0.1 port, killed when the test
// ends. A test skips, saying why, when moto cannot start on this machine;
// with CI=true it fails instead, because CI must run every backend.
package mototest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/syncbuf"
)

// startTimeout is how long moto may take to answer: Python imports of every
// moto service take seconds on a loaded machine.
const startTimeout = 60 * time.Second

// Server is a running moto server.
type Server struct {
	// Endpoint is the base URL, e.g. "http://127.0.0.1:54321", for the SDK's
	// BaseEndpoint.
	Endpoint string
	cmd      *exec.Cmd
}

// Region is the region tests should configure; moto accepts any.
const Region = "us-east-1"

// DummyCredentials are the environment variables that make the AWS SDK's
// default chain find credentials (moto accepts any) and skip the EC2
// metadata service. Tests set them on themselves (children inherit them).
var DummyCredentials = map[string]string{
	"AWS_ACCESS_KEY_ID":         "testing",
	"AWS_SECRET_ACCESS_KEY":     "testing",
	"AWS_SESSION_TOKEN":         "testing",
	"AWS_EC2_METADATA_DISABLED": "true",
	"AWS_REGION":                Region,
}

// SetDummyCredentials sets DummyCredentials in the process environment, for
// TestMain (t.Setenv cannot be used in parallel tests).
func SetDummyCredentials() {
	for k, v := range DummyCredentials {
		_ = os.Setenv(k, v)
	}
}

// Start runs moto_server (or `python3 -m moto.server`) and waits until it
// answers. It skips the test when moto is missing or does not come up,
// unless CI=true, where that fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	argv, err := command()
	if err != nil {
		unavailable(t, "%v", err)
		return nil
	}
	port, err := freePort()
	if err != nil {
		unavailable(t, "no free port on 127.0.0.1: %v", err)
		return nil
	}
	args := append(argv[1:], "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd := exec.Command(argv[0], args...)
	// moto logs request lines, never request bodies; 64 KiB diagnose a
	// start failure.
	out := syncbuf.Buffer{Limit: 64 << 10}
	cmd.Stdout, cmd.Stderr = &out, &out
	// Own process group: moto_server may be a shim that forks python.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		unavailable(t, "starting %v: %v", argv, err)
		return nil
	}
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if answers(ctx, s.Endpoint) {
			return s
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			unavailable(t, "moto exited before answering (%v); output:\n%s", err, out.String())
			return nil
		case <-ctx.Done():
			unavailable(t, "moto did not answer on %s within %v; output:\n%s", s.Endpoint, startTimeout, out.String())
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// command finds moto: the moto_server script, else the python module.
func command() ([]string, error) {
	if p, err := exec.LookPath("moto_server"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("python3"); err == nil {
		if exec.Command(p, "-c", "import moto.server").Run() == nil {
			return []string{p, "-m", "moto.server"}, nil
		}
	}
	return nil, fmt.Errorf("moto is not installed: neither moto_server on PATH nor python3 -m moto.server (pip install 'moto[server]')")
}

func answers(ctx context.Context, endpoint string) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, endpoint+"/moto-api/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode < 500
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	cirequire.Unavailable(t, "mototest: "+fmt.Sprintf(format, args...))
}
