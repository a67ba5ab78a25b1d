package plugin_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// childProfileEnv, set to a directory when running a benchmark, makes each
// plugin child write a CPU profile there (cpu-<pid>.pprof), so that both
// sides of the hop can be profiled:
//
//	SECRETGATE_PLUGINTEST_CPUPROFILE=/tmp/prof go test -run '^$' -bench PluginRead -cpuprofile /tmp/prof/host.pprof
const childProfileEnv = "SECRETGATE_PLUGINTEST_CPUPROFILE"

// grpcOnlyEnv, set to 1 for a plugin child, makes it serve as a plugin
// built before the direct channel does: over gRPC only.
const grpcOnlyEnv = "SECRETGATE_PLUGINTEST_GRPC_ONLY"

// directPingEnv, set to 1, makes the test binary a stranger to a plugin: it
// reads a direct channel's socket, token and plugin pid from stdin, tries a
// Ping on it and prints "answered" or why not.
const directPingEnv = "SECRETGATE_PLUGINTEST_DIRECT_PING"

func TestMain(m *testing.M) {
	if os.Getenv(directPingEnv) == "1" {
		directPingMain()
	}
	if os.Getenv(plugintest.ChildEnv) == "1" {
		if os.Getenv(grpcOnlyEnv) == "1" {
			plugin.DisableDirect()
		}
		if dir := os.Getenv(childProfileEnv); dir != "" {
			serveProfiled(dir)
		}
	}
	plugintest.ServeIfChild(func() sdk.Backend { return newTestBackend() })
	os.Exit(m.Run())
}

func directPingMain() {
	var addr, token string
	var pid int
	if _, err := fmt.Fscan(os.Stdin, &addr, &token, &pid); err != nil {
		fmt.Println("bad input:", err)
		os.Exit(2)
	}
	raw, err := hex.DecodeString(token)
	if err != nil {
		fmt.Println("bad token:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	if err := plugin.DirectPing(ctx, addr, raw, pid); err != nil {
		fmt.Println("refused:", err)
	} else {
		fmt.Println("answered")
	}
	os.Exit(0)
}

// transports are the two ways a call reaches a plugin: the direct channel,
// and gRPC alone (a plugin built before the direct channel).
var transports = []struct {
	name     string
	grpcOnly bool
}{{"direct", false}, {"grpc", true}}

// startOn starts the test plugin on one transport, and checks that the
// calls really take it.
func startOn(t *testing.T, grpcOnly bool, settings map[string]string) *plugin.Plugin {
	t.Helper()
	if grpcOnly {
		t.Setenv(grpcOnlyEnv, "1")
	}
	p := plugintest.StartPlugin(t, settings)
	require.Equal(t, !grpcOnly, plugin.UsesDirect(p.Backend()), "calls on the direct channel")
	return p
}

// serveProfiled serves the test backend under a CPU profile that is written
// when the host stops the plugin gracefully (Kill), then exits.
func serveProfiled(dir string) {
	f, err := os.Create(filepath.Join(dir, "cpu-"+strconv.Itoa(os.Getpid())+".pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plugin child: cpu profile:", err)
		os.Exit(2)
	}
	plugin.Serve(newTestBackend())
	pprof.StopCPUProfile()
	_ = f.Close()
	os.Exit(0)
}

// hangLimit is how long a call may take before the test calls it a hang.
// It is no performance bound (benchmarks measure speed): it only has to be
// far above a normal answer and far below "forever".
const hangLimit = 10 * time.Second

func bg(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// callByMethod runs one Backend method on a name, for the error table.
var callByMethod = map[string]func(ctx context.Context, b sdk.Backend, name string) error{
	"Describe": func(ctx context.Context, b sdk.Backend, name string) error {
		_, err := b.Describe(ctx, sdk.Ref{Project: "p", Name: name})
		return err
	},
	"Read": func(ctx context.Context, b sdk.Backend, name string) error {
		_, err := b.Read(ctx, sdk.Ref{Project: "p", Name: name, Version: 2})
		return err
	},
	"Write": func(ctx context.Context, b sdk.Backend, name string) error {
		_, err := b.Write(ctx, sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"k": "v"}, Mode: sdk.WriteUpsert})
		return err
	},
	"Delete": func(ctx context.Context, b sdk.Backend, name string) error {
		return b.Delete(ctx, sdk.Ref{Project: "p", Name: name})
	},
	"Versions": func(ctx context.Context, b sdk.Backend, name string) error {
		_, err := b.Versions(ctx, sdk.Ref{Project: "p", Name: name})
		return err
	},
	"List": func(ctx context.Context, b sdk.Backend, name string) error {
		_, err := b.List(ctx, sdk.ListRequest{Project: "p", Prefix: name})
		return err
	},
}

// TestPluginErrorRoundTrip checks that every typed error a plugin returns
// comes back on the host as the same sentinel (or FieldError), with the
// same message, through every method.
func TestPluginErrorRoundTrip(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			testErrorRoundTrip(t, startOn(t, tr.grpcOnly, map[string]string{"kind": "test"}).Backend())
		})
	}
}

func testErrorRoundTrip(t *testing.T, remote sdk.Backend) {
	local := newTestBackend()
	ctx := bg(t)

	sentinels := []error{sdk.ErrNotFound, sdk.ErrAlreadyExists, sdk.ErrVersionMismatch, sdk.ErrInvalid, sdk.ErrUnavailable, sdk.ErrPermission}
	for name := range errorTriggers {
		for method, call := range callByMethod {
			t.Run(name+"/"+method, func(t *testing.T) {
				want := call(ctx, local, name)
				got := call(ctx, remote, name)
				require.Error(t, want)
				require.Error(t, got)
				require.Equal(t, want.Error(), got.Error(), "message must survive the hop")
				for _, s := range sentinels {
					require.Equal(t, errors.Is(want, s), errors.Is(got, s), "errors.Is(err, %v)", s)
				}
				var wantFE, gotFE *sdk.FieldError
				require.Equal(t, errors.As(want, &wantFE), errors.As(got, &gotFE))
				if wantFE != nil {
					require.Equal(t, *wantFE, *gotFE, "the FieldError's field and reason must survive")
				}
				if isSentinel(want, sentinels) {
					require.Truef(t, got == want, "a bare sentinel comes back as itself, got %T", got)
				}
			})
		}
	}
}

func isSentinel(err error, sentinels []error) bool {
	for _, s := range sentinels {
		if err == s {
			return true
		}
	}
	return false
}

func TestPluginConfigureError(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			p := startOn(t, tr.grpcOnly, nil)
			err := p.Backend().Configure(bg(t), map[string]string{"fail": "1"})
			var fe *sdk.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "settings.fail", fe.Field)
			require.ErrorIs(t, err, sdk.ErrInvalid)
		})
	}
}

// TestPluginModelFidelity runs the same operations in process and through
// the plugin and requires identical results: times, nil-versus-empty labels,
// unicode, pages.
func TestPluginModelFidelity(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			testModelFidelity(t, startOn(t, tr.grpcOnly, map[string]string{"kind": "fidelity"}).Backend())
		})
	}
}

func testModelFidelity(t *testing.T, remote sdk.Backend) {
	local := newTestBackend()
	require.NoError(t, local.Configure(bg(t), map[string]string{"kind": "fidelity"}))
	ctx := bg(t)

	data := map[string]string{"unicode": "héllo 世界 🔑", "newline": "a\nb\r\n", "quote": `"'\`, "empty": ""}
	steps := []struct {
		name string
		run  func(b sdk.Backend) (any, error)
	}{
		{"capabilities", func(b sdk.Backend) (any, error) { return b.Capabilities(ctx) }},
		{"create without labels", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: data, Mode: sdk.WriteCreate})
		}},
		{"describe: nil labels", func(b sdk.Backend) (any, error) { return b.Describe(ctx, sdk.Ref{Project: "p", Name: "a"}) }},
		{"replace with labels", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: data, Labels: map[string]string{"env": "prod"}, Mode: sdk.WriteReplace, ExpectedVersion: 1})
		}},
		{"replace keeping labels", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"x": "1"}, Mode: sdk.WriteReplace})
		}},
		{"replace clearing labels", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: data, Labels: map[string]string{}, Mode: sdk.WriteUpsert})
		}},
		{"describe: empty labels", func(b sdk.Backend) (any, error) { return b.Describe(ctx, sdk.Ref{Project: "p", Name: "a"}) }},
		{"read latest", func(b sdk.Backend) (any, error) { return b.Read(ctx, sdk.Ref{Project: "p", Name: "a"}) }},
		{"read version 3", func(b sdk.Backend) (any, error) { return b.Read(ctx, sdk.Ref{Project: "p", Name: "a", Version: 3}) }},
		{"versions", func(b sdk.Backend) (any, error) { return b.Versions(ctx, sdk.Ref{Project: "p", Name: "a"}) }},
		{"create b", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "b", Data: data, Mode: sdk.WriteCreate})
		}},
		{"list page 1", func(b sdk.Backend) (any, error) { return b.List(ctx, sdk.ListRequest{Project: "p", PageSize: 1}) }},
		{"list page 2", func(b sdk.Backend) (any, error) {
			return b.List(ctx, sdk.ListRequest{Project: "p", PageSize: 1, PageToken: "a"})
		}},
		{"list empty", func(b sdk.Backend) (any, error) { return b.List(ctx, sdk.ListRequest{Project: "q"}) }},
		{"list bad page size", func(b sdk.Backend) (any, error) {
			return b.List(ctx, sdk.ListRequest{Project: "p", PageSize: 1 << 40})
		}},
		{"stale CAS", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: data, Mode: sdk.WriteReplace, ExpectedVersion: 1})
		}},
		{"invalid write mode", func(b sdk.Backend) (any, error) {
			return b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: data, Mode: sdk.WriteMode(42)})
		}},
		{"delete", func(b sdk.Backend) (any, error) { return nil, b.Delete(ctx, sdk.Ref{Project: "p", Name: "a"}) }},
		{"ping", func(b sdk.Backend) (any, error) { return nil, b.Ping(ctx) }},
	}
	for _, st := range steps {
		wantV, wantErr := st.run(local)
		gotV, gotErr := st.run(remote)
		require.Equal(t, wantV, gotV, st.name)
		if wantErr == nil {
			require.NoError(t, gotErr, st.name)
		} else {
			require.EqualError(t, gotErr, wantErr.Error(), st.name)
		}
	}
	// The labels distinction is the point of labels_set: make sure the
	// steps above really exercised both sides of it.
	m, err := remote.Describe(ctx, sdk.Ref{Project: "p", Name: "b"})
	require.NoError(t, err)
	require.Nil(t, m.Labels)
}

// TestPluginDeadline: a host deadline ends a blocked plugin call promptly,
// and the plugin's own context sees it.
func TestPluginDeadline(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			b := startOn(t, tr.grpcOnly, nil).Backend()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := b.Read(ctx, sdk.Ref{Project: "p", Name: "block"})
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Less(t, time.Since(start), hangLimit)
			requirePluginSawCtxEnd(t, b)
		})
	}
}

// TestPluginDeadlineReachesPlugin: the plugin's context carries the host's
// deadline, for the backend's own calls to respect.
func TestPluginDeadlineReachesPlugin(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			b := startOn(t, tr.grpcOnly, nil).Backend()
			s, err := b.Read(bg(t), sdk.Ref{Project: "p", Name: "ctx-deadline"})
			require.NoError(t, err)
			left, err := strconv.Atoi(s.Data["left"])
			require.NoError(t, err, "a deadline: %q", s.Data["left"])
			require.InDelta(t, 55, left, 5, "bg(t) has a minute")
			s, err = b.Read(context.Background(), sdk.Ref{Project: "p", Name: "ctx-deadline"})
			require.NoError(t, err)
			require.Equal(t, "none", s.Data["left"])
		})
	}
}

// TestPluginCancel: cancelling the host's context ends the call, and the
// plugin's context too (on the direct channel through CancelDirect).
func TestPluginCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			b := startOn(t, tr.grpcOnly, nil).Backend()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			err := b.Delete(ctx, sdk.Ref{Project: "p", Name: "block"})
			require.ErrorIs(t, err, context.Canceled)
			require.Less(t, time.Since(start), hangLimit)
			requirePluginSawCtxEnd(t, b)
		})
	}
}

func requirePluginSawCtxEnd(t *testing.T, b sdk.Backend) {
	t.Helper()
	var seen string
	require.Eventually(t, func() bool {
		s, err := b.Read(context.Background(), sdk.Ref{Project: "p", Name: "last-ctx-err"})
		require.NoError(t, err)
		seen = s.Data["err"]
		return seen != ""
	}, hangLimit, 10*time.Millisecond, "the plugin's context was never cancelled")
	require.Contains(t, []string{context.DeadlineExceeded.Error(), context.Canceled.Error()}, seen)
}

func TestPluginPanicIsOneFailedCall(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			b := startOn(t, tr.grpcOnly, nil).Backend()
			_, err := b.Read(bg(t), sdk.Ref{Project: "p", Name: "panic"})
			require.ErrorContains(t, err, "plugin panicked")
			require.NotErrorIs(t, err, sdk.ErrUnavailable)
			require.NoError(t, b.Ping(bg(t)), "the plugin survives a panicking call")
		})
	}
}

func TestLaunchChecksum(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	actual, err := plugin.FileSHA256(exe)
	require.NoError(t, err)
	env := []string{plugintest.ChildEnv + "=1"}

	t.Run("mismatch is refused", func(t *testing.T) {
		wrong := strings.Repeat("ab", 32)
		p, err := plugin.Launch(bg(t), plugin.LaunchConfig{Path: exe, Env: env, SHA256: wrong})
		require.Nil(t, p)
		require.ErrorIs(t, err, plugin.ErrChecksumMismatch)
		require.ErrorContains(t, err, exe)
		require.ErrorContains(t, err, wrong)
		require.ErrorContains(t, err, actual)
	})
	t.Run("malformed is refused", func(t *testing.T) {
		_, err := plugin.Launch(bg(t), plugin.LaunchConfig{Path: exe, Env: env, SHA256: "abc"})
		require.ErrorContains(t, err, "64 hex characters")
	})
	t.Run("match starts", func(t *testing.T) {
		p, err := plugin.Launch(bg(t), plugin.LaunchConfig{Path: exe, Env: env, SHA256: strings.ToUpper(actual)})
		require.NoError(t, err)
		t.Cleanup(p.Kill)
		require.NoError(t, p.Backend().Ping(bg(t)))
	})
}

func TestLaunchFailures(t *testing.T) {
	t.Run("missing executable", func(t *testing.T) {
		_, err := plugin.Launch(bg(t), plugin.LaunchConfig{Path: filepath.Join(t.TempDir(), "nope")})
		require.ErrorIs(t, err, sdk.ErrUnavailable)
	})
	t.Run("not a plugin", func(t *testing.T) {
		// The test binary without the child variable runs no test and
		// exits instead of serving.
		exe, err := os.Executable()
		require.NoError(t, err)
		_, err = plugin.Launch(bg(t), plugin.LaunchConfig{Path: exe, Args: []string{"-test.run=^$"}, Stderr: &syncbuf.Buffer{}})
		require.ErrorIs(t, err, sdk.ErrUnavailable)
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := plugin.Launch(ctx, plugin.LaunchConfig{Path: "/bin/true"})
		require.ErrorIs(t, err, context.Canceled)
	})
}

// TestPluginStderrReachesHost: what the plugin writes to stderr ends up in
// LaunchConfig.Stderr.
func TestPluginStderrReachesHost(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	var out syncbuf.Buffer
	p, err := plugin.Launch(bg(t), plugin.LaunchConfig{Path: exe, Env: []string{plugintest.ChildEnv + "=1"}, Stderr: &out})
	require.NoError(t, err)
	t.Cleanup(p.Kill)
	require.NoError(t, p.Backend().Configure(bg(t), map[string]string{"say": "hello from the plugin"}))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "hello from the plugin") },
		hangLimit, 10*time.Millisecond)
}

func TestPluginConcurrentCalls(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testConcurrentCalls(t, startOn(t, tr.grpcOnly, nil).Backend()) })
	}
}

func testConcurrentCalls(t *testing.T, b sdk.Backend) {
	ctx := bg(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "s" + strconv.Itoa(i)
			if _, err := b.Write(ctx, sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"i": name}, Mode: sdk.WriteCreate}); err != nil {
				errs <- err
				return
			}
			s, err := b.Read(ctx, sdk.Ref{Project: "p", Name: name})
			if err == nil && s.Data["i"] != name {
				err = errors.New("read back another secret's data for " + name)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// BenchmarkPluginRead compares a Read in process with the same Read through
// a plugin process: on the direct channel (the default), with the gateway's
// 10 s deadline on each call, and over gRPC alone (go-plugin, HTTP/2, mutual
// TLS over a Unix socket), as a plugin built before the direct channel is
// called.
func BenchmarkPluginRead(b *testing.B) {
	ctx := context.Background()
	data := map[string]string{"username": "app", "password": "p4ssw0rd-not-real", "host": "db.internal:5432"}
	req := sdk.WriteRequest{Project: "bench", Name: "db", Data: data, Labels: map[string]string{"env": "prod"}, Mode: sdk.WriteCreate}
	ref := sdk.Ref{Project: "bench", Name: "db"}

	run := func(b *testing.B, be sdk.Backend, timeout time.Duration) {
		_, err := be.Write(ctx, req)
		require.NoError(b, err)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			callCtx, cancel := ctx, context.CancelFunc(func() {})
			if timeout > 0 {
				callCtx, cancel = context.WithTimeout(ctx, timeout)
			}
			_, err := be.Read(callCtx, ref)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("in-process", func(b *testing.B) { run(b, newTestBackend(), 0) })
	b.Run("plugin", func(b *testing.B) { run(b, benchPlugin(b, false), 0) })
	b.Run("plugin-10s-deadline", func(b *testing.B) { run(b, benchPlugin(b, false), 10*time.Second) })
	b.Run("plugin-grpc", func(b *testing.B) { run(b, benchPlugin(b, true), 0) })
}

// BenchmarkPluginReadParallel is BenchmarkPluginRead/plugin with calls from
// every CPU at once: the direct channel's pool against gRPC's multiplexing.
func BenchmarkPluginReadParallel(b *testing.B) {
	ctx := context.Background()
	ref := sdk.Ref{Project: "bench", Name: "db"}
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			be := benchPlugin(b, tr.grpcOnly)
			_, err := be.Write(ctx, sdk.WriteRequest{Project: "bench", Name: "db", Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
			require.NoError(b, err)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := be.Read(ctx, ref); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func benchPlugin(b *testing.B, grpcOnly bool) sdk.Backend {
	b.Helper()
	if grpcOnly {
		b.Setenv(grpcOnlyEnv, "1")
	}
	be := plugintest.Start(b, nil)
	require.Equal(b, !grpcOnly, plugin.UsesDirect(be), "calls on the direct channel")
	return be
}
