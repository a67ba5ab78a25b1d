// Package testenv runs the real secretgate binary for end-to-end tests: it
// builds the binary once per test process, writes a configuration, starts
// `secretgate server` on a free loopback port, waits until it listens, and
// stops it (and its plugins) in t.Cleanup.
//
// Backend helpers use it for gateway tests of their own plugin:
//
//	srv := testenv.Start(t, testenv.Options{
//		Backends: []testenv.Backend{{Name: "vault", Plugin: "vault", Settings: map[string]string{...}}},
//		Projects: []testenv.Project{{Name: "payments", Backend: "vault"}},
//	})
//	resp := srv.Do(t, "GET", "/v1/projects/payments/secrets", srv.Token("admin"), nil)
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// StartTimeout bounds how long Start waits for the server to listen.
var StartTimeout = 90 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Main runs the tests of a package and removes the binary built for them.
// Use it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Binary builds ./cmd/secretgate once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		buildDir, buildErr = os.MkdirTemp("", "secretgate-bin-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "secretgate")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/secretgate")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/secretgate: %w\n%s", err, msg)
		}
	})
	require.NoError(t, buildErr)
	return buildPath
}
