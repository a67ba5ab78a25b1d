package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
)

// Supervision timings. A dead process is noticed within checkInterval, a
// hung or failing one within pingInterval*maxPingFailures: a SIGSTOPped
// plugin is SIGKILLed and replaced 3-4.5 s after it stopped (the next ping
// starts within pingInterval, then maxPingFailures pings time out).
const (
	checkInterval   = 100 * time.Millisecond
	pingInterval    = time.Second
	pingTimeout     = time.Second
	maxPingFailures = 3
	backoffMin      = 100 * time.Millisecond
	backoffMax      = 5 * time.Second
	configureTimout = 30 * time.Second
)

// PluginStopTimeout bounds Host.Close: every plugin is stopped in parallel,
// each within plugin.KillTimeout; the rest is a margin for scheduling.
const PluginStopTimeout = plugin.KillTimeout + time.Second

// PluginSpec says how to start and configure one backend's plugin.
type PluginSpec struct {
	Backend  string // the backend's name in the configuration
	Path     string
	Args     []string
	SHA256   string // required for external plugins
	Settings map[string]string
}

// process is what the host needs of a running plugin (*plugin.Plugin). Kill
// and ForceKill return in bounded time, whatever state the process is in.
type process interface {
	Backend() sdk.Backend
	Kill()      // graceful first
	ForceKill() // SIGKILL at once, for a plugin that does not answer
	Exited() bool
	Pid() int
}

// launchFunc starts a plugin process; plugin.Launch in production.
type launchFunc func(ctx context.Context, cfg plugin.LaunchConfig) (process, error)

func sdkLaunch(ctx context.Context, cfg plugin.LaunchConfig) (process, error) {
	p, err := plugin.Launch(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Host starts, supervises and stops the plugin processes of every backend.
// While a backend's plugin is down, Backend answers ErrUnavailable at once,
// so callers get 503 instead of waiting.
type Host struct {
	log     *slog.Logger
	stderr  io.Writer
	launch  launchFunc
	started func(ctx context.Context, backend string, b sdk.Backend)
	// plugins is replaced whole by Apply (a configuration reload) and read
	// without a lock on every request.
	plugins atomic.Pointer[map[string]*managed]
	applyMu sync.Mutex // one Apply at a time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

type managed struct {
	spec PluginSpec
	kick chan struct{}
	// retired is closed when a reload removes or replaces the backend: its
	// supervisor stops, and the process is stopped after a drain.
	retired chan struct{}

	mu      sync.RWMutex
	proc    process
	backend sdk.Backend

	up       atomic.Bool
	restarts atomic.Int64
}

// HostOptions configures a Host.
type HostOptions struct {
	Logger *slog.Logger
	// Stderr receives the plugins' own log lines, each prefixed with the
	// backend's name; the gateway's stderr when nil.
	Stderr io.Writer
	// Started, when set, is called with each plugin's backend once it is
	// configured, before it serves (at every start and restart): the
	// gateway's audit receipts are recovered there (receipts.go).
	Started func(ctx context.Context, backend string, b sdk.Backend)
	launch  launchFunc // tests
}

// StartHost launches and configures every plugin, then supervises them.
// A plugin that cannot be started (missing executable, checksum mismatch)
// or that rejects its settings as invalid fails the start, naming the
// backend; one whose backend is merely unreachable is left down and retried.
func StartHost(ctx context.Context, specs []PluginSpec, opts HostOptions) (*Host, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.launch == nil {
		opts.launch = sdkLaunch
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{log: opts.Logger, stderr: opts.Stderr, launch: opts.launch, started: opts.Started, ctx: hctx, cancel: cancel}
	plugins, err := h.startAll(ctx, specs)
	if err != nil {
		h.closed.Store(true)
		h.cancel()
		return nil, err
	}
	h.plugins.Store(&plugins)
	for _, m := range plugins {
		h.wg.Add(1)
		go h.supervise(m)
	}
	return h, nil
}

func newManaged(s PluginSpec) *managed {
	return &managed{spec: s, kick: make(chan struct{}, 1), retired: make(chan struct{})}
}

// startAll starts the plugins of specs in parallel. A hard failure of any
// (see StartHost) stops every one of them and is returned; a backend that
// is merely unreachable is left down, for its supervisor to retry.
func (h *Host) startAll(ctx context.Context, specs []PluginSpec) (map[string]*managed, error) {
	plugins := make(map[string]*managed, len(specs))
	for _, s := range specs {
		plugins[s.Backend] = newManaged(s)
	}
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := plugins[s.Backend]
			err := h.startOne(ctx, m)
			if err == nil {
				return
			}
			if errors.Is(err, plugin.ErrChecksumMismatch) || errors.Is(err, sdk.ErrInvalid) || errors.Is(err, errLaunch) {
				errs[i] = fmt.Errorf("backend %q: %w", s.Backend, err)
				return
			}
			h.log.Warn("backend is not available yet, will retry", "backend", s.Backend, "error", err)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		stopAll(plugins)
		return nil, err
	}
	return plugins, nil
}

// stopAll kills the processes of plugins in parallel, each in bounded time.
func stopAll(plugins map[string]*managed) {
	var wg sync.WaitGroup
	for _, m := range plugins {
		up := m.up.Swap(false)
		m.mu.Lock()
		p := m.proc
		m.proc = nil
		m.mu.Unlock()
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if up {
				p.Kill()
			} else {
				// Down means dead or failing its pings: a graceful
				// stop could only time out.
				p.ForceKill()
			}
		}()
	}
	wg.Wait()
}

// ReloadDrain is how long a reload leaves the old plugin of a removed or
// reconfigured backend running, so that the calls in flight on it finish
// on the configuration they started with.
var ReloadDrain = 10 * time.Second

// Apply makes the running plugins those of specs (a configuration reload):
// new backends are started, removed ones stopped, and a backend whose
// plugin, checksum or settings changed gets a new process. Unchanged
// backends keep theirs. When a new plugin fails hard (missing executable,
// checksum, settings refused) nothing changes and the error names it. The
// old processes of removed and replaced backends stop after ReloadDrain.
func (h *Host) Apply(ctx context.Context, specs []PluginSpec) (started, stopped []string, err error) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	if h.closed.Load() {
		return nil, nil, errors.New("host is closed")
	}
	old := *h.plugins.Load()
	var fresh []PluginSpec
	for _, s := range specs {
		if m, ok := old[s.Backend]; !ok || !sameSpec(m.spec, s) {
			fresh = append(fresh, s)
		}
	}
	added, err := h.startAll(ctx, fresh)
	if err != nil {
		return nil, nil, err
	}
	next := make(map[string]*managed, len(specs))
	for _, s := range specs {
		if m, ok := added[s.Backend]; ok {
			next[s.Backend] = m
			started = append(started, s.Backend)
		} else {
			next[s.Backend] = old[s.Backend]
		}
	}
	retired := map[string]*managed{}
	for name, m := range old {
		if next[name] != m {
			retired[name] = m
			stopped = append(stopped, name)
		}
	}
	h.plugins.Store(&next)
	for _, m := range added {
		h.wg.Add(1)
		go h.supervise(m)
	}
	for _, m := range retired {
		close(m.retired)
	}
	if len(retired) > 0 {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			select {
			case <-time.After(ReloadDrain):
			case <-h.ctx.Done(): // Close stops them (it kills what is left)
			}
			stopAll(retired)
		}()
	}
	sort.Strings(started)
	sort.Strings(stopped)
	return started, stopped, nil
}

// sameSpec reports whether a running plugin can serve spec as it is.
func sameSpec(a, b PluginSpec) bool {
	if a.Path != b.Path || a.SHA256 != b.SHA256 || len(a.Args) != len(b.Args) || len(a.Settings) != len(b.Settings) {
		return false
	}
	for i := range a.Args {
		if a.Args[i] != b.Args[i] {
			return false
		}
	}
	for k, v := range a.Settings {
		if w, ok := b.Settings[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Backend returns a backend's client, or an error wrapping ErrUnavailable
// while its plugin is down (or ErrNotFound for an unknown name).
func (h *Host) Backend(name string) (sdk.Backend, error) {
	m, ok := (*h.plugins.Load())[name]
	if !ok {
		return nil, fmt.Errorf("backend %q: %w", name, sdk.ErrNotFound)
	}
	if !m.up.Load() {
		return nil, fmt.Errorf("backend %q: %w", name, sdk.ErrUnavailable)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.backend, nil
}

// Suspect tells the supervisor of a backend that a call just failed as
// unavailable, so that it checks the process now instead of at its next tick.
func (h *Host) Suspect(name string) {
	if m, ok := (*h.plugins.Load())[name]; ok {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// Status reports whether each backend is up.
func (h *Host) Status() map[string]bool {
	plugins := *h.plugins.Load()
	out := make(map[string]bool, len(plugins))
	for n, m := range plugins {
		out[n] = m.up.Load()
	}
	return out
}

// Names lists the backends, sorted.
func (h *Host) Names() []string {
	plugins := *h.plugins.Load()
	out := make([]string, 0, len(plugins))
	for n := range plugins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PIDs returns the process id of each running plugin.
func (h *Host) PIDs() map[string]int {
	out := map[string]int{}
	for n, m := range *h.plugins.Load() {
		m.mu.RLock()
		if m.proc != nil && !m.proc.Exited() {
			out[n] = m.proc.Pid()
		}
		m.mu.RUnlock()
	}
	return out
}

// Restarts reports how often a backend's plugin was restarted.
func (h *Host) Restarts(name string) int64 {
	if m, ok := (*h.plugins.Load())[name]; ok {
		return m.restarts.Load()
	}
	return 0
}

// PingAll pings every backend live and returns the ones that failed.
func (h *Host) PingAll(ctx context.Context) map[string]error {
	var mu sync.Mutex
	failed := map[string]error{}
	var wg sync.WaitGroup
	for n := range *h.plugins.Load() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := h.Backend(n)
			if err == nil {
				err = b.Ping(ctx)
			}
			if err != nil {
				mu.Lock()
				failed[n] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// Close stops supervision and kills every plugin process, in parallel,
// returning within PluginStopTimeout even when a plugin does not answer.
func (h *Host) Close() {
	if h.closed.Swap(true) {
		return
	}
	h.cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); stopAll(*h.plugins.Load()) }()
	// Supervisors are waited for after the kills, not before: one may be
	// killing the same plugin, and a start it has under way sees closed
	// and stops what it started.
	wg.Add(1)
	go func() { defer wg.Done(); h.wg.Wait() }()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(PluginStopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// Every kill is bounded, so this is a backstop: what is left dies
		// with the gateway (Pdeathsig).
		h.log.Error("plugins did not stop in time", "timeout", PluginStopTimeout.String())
	}
}
