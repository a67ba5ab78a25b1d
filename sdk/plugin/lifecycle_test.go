package plugin_test

// A plugin process that dies, is killed by the host, or stops answering:
// calls fail promptly and typed, and nothing it started outlives it.

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/proctest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// TestPluginDead: once the plugin process is gone, calls fail with
// ErrUnavailable at once, including one that was in flight.
func TestPluginDead(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testPluginDead(t, startOn(t, tr.grpcOnly, nil)) })
	}
}

func testPluginDead(t *testing.T, p *plugin.Plugin) {
	b := p.Backend()
	require.NoError(t, b.Ping(bg(t)))
	require.False(t, p.Exited())

	inflight := make(chan error, 1)
	go func() {
		_, err := b.Read(bg(t), sdk.Ref{Project: "p", Name: "block"})
		inflight <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the call reach the plugin
	require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGKILL))

	select {
	case err := <-inflight:
		require.ErrorIs(t, err, sdk.ErrUnavailable)
	case <-time.After(hangLimit):
		t.Fatal("a call in flight when the plugin died never returned")
	}
	require.Eventually(t, p.Exited, hangLimit, 10*time.Millisecond)

	for method, call := range callByMethod {
		start := time.Now()
		err := call(bg(t), b, "x")
		require.ErrorIs(t, err, sdk.ErrUnavailable, method)
		require.Less(t, time.Since(start), hangLimit, method)
	}
	require.ErrorIs(t, b.Ping(bg(t)), sdk.ErrUnavailable)
}

func TestPluginKilledByHost(t *testing.T) {
	p := plugintest.StartPlugin(t, nil)
	p.Kill()
	p.Kill() // idempotent
	require.True(t, p.Exited())
	require.ErrorIs(t, p.Backend().Ping(bg(t)), sdk.ErrUnavailable)
}

// TestPluginKillStoppedIsBounded: a plugin that is alive but never answers
// (SIGSTOPped) is still ended in bounded time. go-plugin's own Kill waits
// for its Shutdown RPC without a deadline, i.e. forever here.
func TestPluginKillStoppedIsBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the test stops the plugin with SIGSTOP")
	}
	// slack absorbs scheduling on a loaded machine; it stays below KillGrace
	// so that ForceKill cannot pass while still trying a graceful stop.
	const slack = time.Second
	const stagger = 200 * time.Millisecond
	kill, force := (*plugin.Plugin).Kill, (*plugin.Plugin).ForceKill
	tests := []struct {
		name  string
		kills []func(*plugin.Plugin) // each started stagger after the previous one
		limit time.Duration
	}{
		{"Kill", []func(*plugin.Plugin){kill}, plugin.KillTimeout + slack},
		{"ForceKill", []func(*plugin.Plugin){force}, slack},
		{"Kill during Kill", []func(*plugin.Plugin){kill, kill}, plugin.KillTimeout + slack},
		// The ForceKills end the Kill's grace: all return soon after them.
		{"ForceKill during Kill", []func(*plugin.Plugin){kill, force, force}, 2*stagger + slack},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := plugintest.StartPlugin(t, nil)
			pid := p.Pid()
			// Registered after StartPlugin's Kill, so it runs first: a test
			// that fails must not leave a stopped plugin behind.
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			proctest.Stop(t, pid)

			start := time.Now()
			var wg sync.WaitGroup
			for i, k := range tc.kills {
				if i > 0 {
					time.Sleep(stagger)
				}
				wg.Add(1)
				go func() { defer wg.Done(); k(p) }()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(hangLimit):
				t.Fatalf("killing a SIGSTOPped plugin did not return within %s", hangLimit)
			}
			took := time.Since(start)
			t.Logf("%s of a SIGSTOPped plugin returned after %s", tc.name, took.Round(time.Millisecond))
			require.Less(t, took, tc.limit)
			require.False(t, proctest.Alive(pid), "the plugin must be gone, not left stopped")
			require.True(t, p.Exited())
			require.ErrorIs(t, p.Backend().Ping(bg(t)), sdk.ErrUnavailable)

			again := time.Now()
			p.Kill()
			p.ForceKill()
			require.Less(t, time.Since(again), slack, "killing a dead plugin again returns at once")
		})
	}
}

// TestPluginKillLeavesNoOrphans: what the plugin started dies with it.
func TestPluginKillLeavesNoOrphans(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups are only managed on Linux")
	}
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	p := plugintest.StartPlugin(t, map[string]string{"spawn_pidfile": pidfile})
	raw, err := os.ReadFile(pidfile)
	require.NoError(t, err)
	child, err := strconv.Atoi(string(raw))
	require.NoError(t, err)
	require.True(t, proctest.Alive(child), "the plugin's child should run before Kill")
	plugin := p.Pid()

	p.Kill()
	require.Eventually(t, func() bool { return !proctest.Alive(plugin) && !proctest.Alive(child) }, hangLimit, 10*time.Millisecond,
		"plugin %d or its child %d outlived Kill", plugin, child)
}
