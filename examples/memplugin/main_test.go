package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugin"
)

// TestConformance runs the suite against the backend in this process: the
// quickest loop while writing a plugin.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		b := newMemory()
		require.NoError(t, b.Configure(t.Context(), nil))
		return b
	})
}

func TestConfigureRefusesSettings(t *testing.T) {
	err := newMemory().Configure(t.Context(), map[string]string{"path": "/tmp/x"})
	require.ErrorIs(t, err, sdk.ErrInvalid, "the memory backend takes no settings")
}

// TestPlugin builds this example as a real executable, the way a third party
// would, and runs the suite through it: go-plugin, gRPC, the typed errors
// crossing the hop.
func TestPlugin(t *testing.T) {
	bin, sum := buildPlugin(t)

	t.Run("Conformance", func(t *testing.T) {
		logs := &syncBuffer{}
		// Registered before Kill, so it runs after: the plugin's log is
		// complete by then, and shown only when something failed.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("plugin log:\n%s", logs.String())
			}
		})
		p, err := plugin.Launch(t.Context(), plugin.LaunchConfig{Path: bin, SHA256: sum, Stderr: logs})
		require.NoError(t, err, "launching the example plugin with its checksum")
		t.Cleanup(p.Kill)
		require.Positive(t, p.Pid(), "a launched plugin has a pid")
		require.False(t, p.Exited(), "a launched plugin is running")

		b := p.Backend()
		require.NoError(t, b.Configure(t.Context(), nil), "Configure through the plugin")
		caps, err := b.Capabilities(t.Context())
		require.NoError(t, err)
		require.Equal(t, "memory", caps.Backend, "the capabilities come from the plugin process")
		// Run's subtests are parallel: they finish after this function
		// returns, before the cleanups (which run last-registered first, so
		// this check comes before Kill).
		t.Cleanup(func() {
			if p.Exited() {
				t.Error("the plugin process died during the suite")
			}
		})
		backendtest.Run(t, func(*testing.T) sdk.Backend { return b })
	})

	t.Run("WrongChecksumRefused", func(t *testing.T) {
		other := sha256.Sum256([]byte("not the plugin"))
		p, err := plugin.Launch(t.Context(), plugin.LaunchConfig{Path: bin, SHA256: hex.EncodeToString(other[:]), Stderr: &syncBuffer{}})
		if p != nil {
			p.Kill()
		}
		require.Error(t, err, "a plugin whose checksum differs must be refused")
		require.True(t, errors.Is(err, plugin.ErrChecksumMismatch), "want ErrChecksumMismatch, got %v", err)
		require.Nil(t, p, "no plugin is handed back when the checksum differs")
	})

	t.Run("ConfigureWithSettingsRefusedThroughPlugin", func(t *testing.T) {
		p, err := plugin.Launch(t.Context(), plugin.LaunchConfig{Path: bin, SHA256: sum, Stderr: &syncBuffer{}})
		require.NoError(t, err)
		t.Cleanup(p.Kill)
		err = p.Backend().Configure(t.Context(), map[string]string{"path": "/tmp/x"})
		require.ErrorIs(t, err, sdk.ErrInvalid, "a typed error from Configure crosses the hop")
	})
}

// buildPlugin compiles this package with `go build` into a temporary
// directory and returns the binary's path and hex SHA-256.
func buildPlugin(t *testing.T) (path, sum string) {
	t.Helper()
	goBin, err := exec.LookPath("go") // `go test` puts GOROOT/bin first in PATH
	require.NoError(t, err, "the go tool is needed to build the example plugin")
	path = filepath.Join(t.TempDir(), "memplugin")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", path, ".")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build of the example plugin: %s", out)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	h := sha256.Sum256(b)
	return path, hex.EncodeToString(h[:])
}

// syncBuffer collects the plugin's log; the plugin writes from go-plugin's
// goroutines while the test may read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
