// Package plugintest runs a Backend as a real plugin subprocess from a test:
// the test binary re-executes itself as the plugin, so that a plugin's tests
// exercise go-plugin, gRPC and the process boundary without a separate
// build step.
//
//	func TestMain(m *testing.M) {
//		plugintest.ServeIfChild(func() sdk.Backend { return mypkg.New() })
//		os.Exit(m.Run())
//	}
//
//	func TestThroughPlugin(t *testing.T) {
//		b := plugintest.Start(t, map[string]string{"path": t.TempDir() + "/db"})
//		...
//	}
package plugintest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
)

// ChildEnv is set to "1" in the environment of the re-executed test binary.
const ChildEnv = "SECRETGATE_PLUGINTEST_CHILD"

// startTimeout is generous: under -race on a loaded machine a test binary
// can take seconds to start.
const startTimeout = 60 * time.Second

// ServeIfChild serves newBackend() as a plugin and exits when the process
// is the re-executed child; otherwise it returns at once. Call it first
// thing in TestMain.
func ServeIfChild(newBackend func() sdk.Backend) {
	if os.Getenv(ChildEnv) != "1" {
		return
	}
	plugin.Serve(newBackend())
	os.Exit(0)
}

// StartPlugin launches the test binary as a plugin, configures it with
// settings and kills it when the test ends. Use it when the test needs the
// process (to kill it, or to check it is gone); Start otherwise.
func StartPlugin(t testing.TB, settings map[string]string) *plugin.Plugin {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("plugintest: finding the test binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	p, err := plugin.Launch(ctx, plugin.LaunchConfig{
		Path: exe,
		// The child serves from TestMain before flags are parsed; these only
		// make sure that, should ServeIfChild be missing, it runs no test.
		Args: []string{"-test.run=^$", "-test.bench=^$"},
		Env:  []string{ChildEnv + "=1", childGORACE()},
	})
	if err != nil {
		t.Fatalf("plugintest: launching %s as a plugin (does TestMain call plugintest.ServeIfChild?): %v", exe, err)
	}
	t.Cleanup(p.Kill)
	if err := p.Backend().Configure(ctx, settings); err != nil {
		t.Fatalf("plugintest: Configure: %v", err)
	}
	return p
}

// childGORACE keeps the caller's race detector options but drops the
// detector's one-second sleep at exit, which would otherwise make every
// Kill of a -race child take a second.
func childGORACE() string {
	opts := os.Getenv("GORACE")
	if !strings.Contains(opts, "atexit_sleep_ms") {
		opts = strings.TrimSpace(opts + " atexit_sleep_ms=0")
	}
	return "GORACE=" + opts
}

// Start is StartPlugin(t, settings).Backend().
func Start(t testing.TB, settings map[string]string) sdk.Backend {
	t.Helper()
	return StartPlugin(t, settings).Backend()
}
