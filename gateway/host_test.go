package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
)

type fakeProc struct {
	b      *memBackend
	pid    int
	exited atomic.Bool
	hung   atomic.Bool // Ping gets no answer, as from a SIGSTOPped plugin
	// firstKill is how the process was ended: killGraceful or killForced
	// (later calls, no-ops in plugin.Plugin, do not count).
	firstKill atomic.Int32
}

const (
	killGraceful int32 = iota + 1
	killForced
)

func (p *fakeProc) Backend() sdk.Backend { return hangingPing{Backend: p.b, hung: &p.hung} }
func (p *fakeProc) Kill()                { p.firstKill.CompareAndSwap(0, killGraceful); p.exited.Store(true) }
func (p *fakeProc) ForceKill()           { p.firstKill.CompareAndSwap(0, killForced); p.exited.Store(true) }
func (p *fakeProc) Exited() bool         { return p.exited.Load() }
func (p *fakeProc) Pid() int             { return p.pid }

// hangingPing is a backend whose Ping waits for its deadline while hung.
type hangingPing struct {
	sdk.Backend
	hung *atomic.Bool
}

func (h hangingPing) Ping(ctx context.Context) error {
	if h.hung.Load() {
		<-ctx.Done()
		return fmt.Errorf("ping: %w", ctx.Err())
	}
	return h.Backend.Ping(ctx)
}

type fakeLauncher struct {
	mu       sync.Mutex
	procs    []*fakeProc
	failNext int
	err      error
	configs  []plugin.LaunchConfig
}

func (f *fakeLauncher) launch(_ context.Context, cfg plugin.LaunchConfig) (process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configs = append(f.configs, cfg)
	if f.err != nil {
		return nil, f.err
	}
	if f.failNext > 0 {
		f.failNext--
		return nil, fmt.Errorf("start: %w", sdk.ErrUnavailable)
	}
	p := &fakeProc{b: newMemBackend(), pid: 1000 + len(f.procs)}
	f.procs = append(f.procs, p)
	return p, nil
}

func (f *fakeLauncher) last() *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[len(f.procs)-1]
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestHostRestartsDeadPlugin(t *testing.T) {
	fl := &fakeLauncher{}
	h, err := StartHost(context.Background(), []PluginSpec{{Backend: "local", Path: "/bin/sg", Args: []string{"plugin", "serve", "file"}}},
		HostOptions{Logger: quietLogger(), launch: fl.launch})
	require.NoError(t, err)
	t.Cleanup(h.Close)
	_, err = h.Backend("local")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"local": 1000}, h.PIDs())

	fl.mu.Lock()
	fl.failNext = 2 // the first restarts fail: backoff, then success
	fl.mu.Unlock()
	fl.last().Kill()
	require.Eventually(t, func() bool {
		_, err := h.Backend("local")
		return errors.Is(err, sdk.ErrUnavailable)
	}, 2*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := h.Backend("local")
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(1), h.Restarts("local"))
	require.Equal(t, map[string]bool{"local": true}, h.Status())

	h.Close()
	require.True(t, fl.last().Exited(), "Close kills the plugins")
	_, err = h.Backend("local")
	require.ErrorIs(t, err, sdk.ErrUnavailable)
}

func TestHostMarksFailingPingsDown(t *testing.T) {
	fl := &fakeLauncher{}
	h, err := StartHost(context.Background(), []PluginSpec{{Backend: "v", Path: "/bin/sg"}}, HostOptions{Logger: quietLogger(), launch: fl.launch})
	require.NoError(t, err)
	t.Cleanup(h.Close)
	p := fl.last()
	p.b.mu.Lock()
	p.b.down = true
	p.b.mu.Unlock()
	require.Eventually(t, func() bool { return !h.Status()["v"] }, 3*time.Second, 10*time.Millisecond)
	require.NotEmpty(t, h.PingAll(context.Background()))
}

// TestHostKillsAfterFailedPings: after maxPingFailures failed pings the
// plugin is replaced; one that gave no answer is SIGKILLed at once (a
// graceful stop would wait on it), one that answered "down" is asked to stop.
func TestHostKillsAfterFailedPings(t *testing.T) {
	tests := []struct {
		name string
		fail func(p *fakeProc)
		kill int32
	}{
		{"missed pings", func(p *fakeProc) { p.hung.Store(true) }, killForced},
		{"answered pings", func(p *fakeProc) { p.b.mu.Lock(); p.b.down = true; p.b.mu.Unlock() }, killGraceful},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fl := &fakeLauncher{}
			h, err := StartHost(context.Background(), []PluginSpec{{Backend: "v", Path: "/bin/sg"}}, HostOptions{Logger: quietLogger(), launch: fl.launch})
			require.NoError(t, err)
			t.Cleanup(h.Close)
			p := fl.last()
			tc.fail(p)
			bound := pingInterval + maxPingFailures*(pingTimeout+checkInterval) + time.Second
			require.Eventually(t, func() bool { return h.Restarts("v") == 1 }, bound, 10*time.Millisecond)
			require.Equal(t, tc.kill, p.firstKill.Load(), "1: graceful Kill, 2: ForceKill")
			require.NotEqual(t, p, fl.last(), "a new process serves")
			_, err = h.Backend("v")
			require.NoError(t, err)
		})
	}
}

func TestHostRefusesChecksumMismatch(t *testing.T) {
	fl := &fakeLauncher{err: fmt.Errorf("plugin /opt/x: %w: expected sha256 aa, actual bb", plugin.ErrChecksumMismatch)}
	_, err := StartHost(context.Background(), []PluginSpec{{Backend: "custom", Path: "/bin/sh", SHA256: "aa"}}, HostOptions{Logger: quietLogger(), launch: fl.launch})
	require.ErrorIs(t, err, plugin.ErrChecksumMismatch)
	require.Contains(t, err.Error(), `backend "custom"`)
	require.Contains(t, err.Error(), "expected sha256 aa, actual bb")
}

func TestPrefixWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &prefixWriter{w: &buf, prefix: []byte("plugin x: ")}
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\n"))
	require.Equal(t, "plugin x: one\nplugin x: two\n", buf.String())
}

// A reload's Apply starts new and reconfigured backends, keeps unchanged
// ones (same process), and stops the old processes only after the drain;
// a plugin that fails hard changes nothing.
func TestHostApply(t *testing.T) {
	old := ReloadDrain
	ReloadDrain = 200 * time.Millisecond
	t.Cleanup(func() { ReloadDrain = old })
	fl := &fakeLauncher{}
	spec := func(name, setting string) PluginSpec {
		return PluginSpec{Backend: name, Path: "/bin/sg", Args: []string{"plugin", "serve", "file"}, Settings: map[string]string{"path": setting}}
	}
	h, err := StartHost(context.Background(), []PluginSpec{spec("keep", "a"), spec("change", "b"), spec("drop", "c")},
		HostOptions{Logger: quietLogger(), launch: fl.launch})
	require.NoError(t, err)
	t.Cleanup(h.Close)
	before := h.PIDs()

	started, stopped, err := h.Apply(context.Background(), []PluginSpec{spec("keep", "a"), spec("change", "b2"), spec("new", "d")})
	require.NoError(t, err)
	require.Equal(t, []string{"change", "new"}, started)
	require.Equal(t, []string{"change", "drop"}, stopped)
	after := h.PIDs()
	require.Equal(t, before["keep"], after["keep"], "an unchanged backend keeps its process")
	require.NotEqual(t, before["change"], after["change"])
	require.Contains(t, after, "new")
	require.NotContains(t, after, "drop")
	_, err = h.Backend("drop")
	require.ErrorIs(t, err, sdk.ErrNotFound)

	fl.mu.Lock()
	procs := append([]*fakeProc(nil), fl.procs...)
	fl.mu.Unlock()
	byPid := map[int]*fakeProc{}
	for _, p := range procs {
		byPid[p.pid] = p
	}
	require.False(t, byPid[before["drop"]].Exited(), "calls in flight get the drain")
	require.Eventually(t, func() bool {
		return byPid[before["drop"]].Exited() && byPid[before["change"]].Exited()
	}, 5*time.Second, 10*time.Millisecond, "the old processes stop after the drain")
	require.False(t, byPid[before["keep"]].Exited())

	// A hard failure (a checksum mismatch) of one new plugin: nothing changes.
	fl.mu.Lock()
	fl.err = plugin.ErrChecksumMismatch
	fl.mu.Unlock()
	_, _, err = h.Apply(context.Background(), []PluginSpec{spec("keep", "a"), spec("change", "b2"), spec("new", "d"), spec("bad", "e")})
	require.ErrorContains(t, err, `backend "bad"`)
	require.Equal(t, after, h.PIDs())
}
