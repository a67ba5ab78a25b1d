package gateway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/proctest"
	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/plugins/file"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// The test binary doubles as the real file plugin: startFileHost launches
// it with plugintest.ChildEnv set, and the child serves here before any
// test runs. An init rather than TestMain, so that the package keeps its
// TestMain free.
func init() {
	plugintest.ServeIfChild(func() sdk.Backend { return file.New() })
}

// launchAllowance is how long starting and configuring a -race test binary
// as the plugin may take on a loaded machine.
const launchAllowance = 5 * time.Second

// replaceBound is how long a SIGSTOPped plugin may take to be replaced: the
// next ping starts within pingInterval, maxPingFailures pings then time out
// one after the other (each noticed at the next check), then the kill and
// a new start.
const replaceBound = pingInterval + maxPingFailures*(pingTimeout+checkInterval) + launchAllowance

// startFileHost starts a Host with one real file plugin, "local", and
// returns it with its log.
func startFileHost(t *testing.T) (*Host, *syncbuf.Buffer) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the test stops the plugin with SIGSTOP and reads /proc")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	spec := PluginSpec{
		Backend: "local",
		Path:    exe,
		// Only a safeguard: the child serves from init, before flags.
		Args: []string{"-test.run=^$"},
		Settings: map[string]string{
			file.SettingPath:    filepath.Join(dir, "secrets.db"),
			file.SettingKeyFile: filepath.Join(dir, "master.key"),
		},
	}
	race := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0") // a -race child exits at once
	launch := func(ctx context.Context, cfg plugin.LaunchConfig) (process, error) {
		cfg.Env = append(cfg.Env, plugintest.ChildEnv+"=1", "GORACE="+race)
		return sdkLaunch(ctx, cfg)
	}
	logs := &syncbuf.Buffer{Limit: 1 << 20}
	h, err := StartHost(context.Background(), []PluginSpec{spec}, HostOptions{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Stderr: &syncbuf.Buffer{Limit: 1 << 20},
		launch: launch,
	})
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return h, logs
}

func writeSecret(ctx context.Context, b sdk.Backend, value string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "db", Data: map[string]string{"k": value}, Mode: sdk.WriteUpsert})
	return err
}

// TestHostReplacesStoppedPlugin: a plugin that is alive but answers nothing
// (SIGSTOP) misses its pings, is SIGKILLed and replaced by a new process
// that serves the same data.
func TestHostReplacesStoppedPlugin(t *testing.T) {
	h, logs := startFileHost(t)
	ctx := t.Context()
	b, err := h.Backend("local")
	require.NoError(t, err)
	require.NoError(t, writeSecret(ctx, b, "before"))
	old := h.PIDs()["local"]
	require.NotZero(t, old)

	proctest.Stop(t, old)
	stopped := time.Now()
	var replaced time.Duration
	require.Eventually(t, func() bool {
		pid := h.PIDs()["local"]
		if pid == 0 || pid == old {
			return false
		}
		b, err := h.Backend("local")
		if err != nil || writeSecret(ctx, b, "after") != nil {
			return false
		}
		replaced = time.Since(stopped)
		return true
	}, replaceBound, 20*time.Millisecond, "a SIGSTOPped plugin must be replaced within %s", replaceBound)
	t.Logf("SIGSTOPped plugin replaced and serving after %s (bound %s)", replaced.Round(time.Millisecond), replaceBound)

	require.False(t, proctest.Alive(old), "the stopped plugin must be killed, not left behind")
	require.Equal(t, int64(1), h.Restarts("local"))
	require.Contains(t, logs.String(), "does not answer, killing it")
	b, err = h.Backend("local")
	require.NoError(t, err)
	s, err := b.Read(ctx, sdk.Ref{Project: "p", Name: "db"})
	require.NoError(t, err)
	require.Equal(t, "after", s.Data["k"])
	require.GreaterOrEqual(t, s.Version, int64(2), "the new process serves the same database")
}

// TestHostCloseWithStoppedPlugin: Close returns within PluginStopTimeout
// when a plugin answers nothing, whether or not its pings have noticed.
func TestHostCloseWithStoppedPlugin(t *testing.T) {
	tests := []struct {
		name  string
		await func(t *testing.T, h *Host) // what has happened before Close
	}{
		{"right after the stop", func(*testing.T, *Host) {}},
		{"after a missed ping", func(t *testing.T, h *Host) {
			require.Eventually(t, func() bool { return !h.Status()["local"] }, replaceBound, 10*time.Millisecond)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := startFileHost(t)
			pid := h.PIDs()["local"]
			require.NotZero(t, pid)
			proctest.Stop(t, pid)
			tc.await(t, h)

			start := time.Now()
			closed := make(chan struct{})
			go func() { h.Close(); close(closed) }()
			limit := PluginStopTimeout + time.Second
			select {
			case <-closed:
			case <-time.After(limit):
				t.Fatalf("Close with a SIGSTOPped plugin still running after %s", limit)
			}
			t.Logf("Close with a SIGSTOPped plugin took %s", time.Since(start).Round(time.Millisecond))
			require.Eventually(t, func() bool { return !proctest.Alive(pid) }, time.Second, 10*time.Millisecond,
				"the stopped plugin must not outlive Close")
			_, err := h.Backend("local")
			require.ErrorIs(t, err, sdk.ErrUnavailable)
		})
	}
}
