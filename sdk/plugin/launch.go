package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// DefaultStartTimeout bounds a plugin's start when Launch's context has no
// earlier deadline.
const DefaultStartTimeout = 30 * time.Second

// LaunchConfig says which plugin executable to start and how.
type LaunchConfig struct {
	Path string   // the executable; a bare name is looked up in PATH
	Args []string // its arguments (never secrets: settings go through Configure)
	// Env is added to the host's environment for the plugin, and wins over
	// the host's value of the same variable.
	Env []string
	// SHA256 is the executable's expected hex SHA-256. When set, a plugin
	// whose file differs is refused before it runs.
	SHA256 string
	// Stderr receives the plugin's log lines and anything it writes to its
	// stderr or stdout; nil means os.Stderr.
	Stderr io.Writer
}

// Plugin is a running plugin process.
type Plugin struct {
	path    string
	client  *goplugin.Client
	backend sdk.Backend
	pid     int
	proc    *os.Process // nil until started
	logger  hclog.Logger
	timeout time.Duration // bounds the start

	hop       *hopConn // nil until started
	directDir string   // the direct channel's private directory; "" if none

	stopOnce   sync.Once     // starts go-plugin's Kill, once
	forceAt    time.Time     // when graceful stopping gives way to SIGKILL; set by stopOnce
	clientDone chan struct{} // closed when go-plugin's Kill has returned
	groupOnce  sync.Once     // SIGKILLs the process group, once
	killOnce   sync.Once
	killed     chan struct{} // closed by Kill; releases the starter thread
}

// Backend returns the plugin as an sdk.Backend. Its calls fail with an error
// wrapping ErrUnavailable once the process is gone; they never hang.
func (p *Plugin) Backend() sdk.Backend { return p.backend }

// Pid is the plugin's process id.
func (p *Plugin) Pid() int { return p.pid }

// Exited reports whether the plugin process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// Kill bounds. go-plugin's own Kill sends the plugin a Shutdown RPC without
// a deadline: a plugin that is alive but does not answer (SIGSTOPped,
// deadlocked, swapped out) holds it forever. So the graceful path gets
// KillGrace, then the process group is SIGKILLed, which ends the RPC (go-plugin
// cancels it when the process exits); reapWait bounds the wait for go-plugin
// to notice the exit.
const (
	// KillGrace is how long Kill lets a plugin stop gracefully.
	KillGrace = 2 * time.Second
	reapWait  = time.Second
	// KillTimeout bounds Kill; ForceKill returns within a second.
	KillTimeout = KillGrace + reapWait
)

// Kill ends the plugin: gracefully if it stops within KillGrace, by SIGKILL
// otherwise, then kills whatever is left of its process group. It returns
// within KillTimeout even when the plugin does not answer at all.
// It is safe to call more than once and from several goroutines, together
// with ForceKill.
func (p *Plugin) Kill() { p.stop(KillGrace) }

// ForceKill SIGKILLs the plugin's process group at once, without asking it
// to stop: for a plugin that is hung or missed its health pings, where the
// graceful path could only time out. It returns within a second.
func (p *Plugin) ForceKill() { p.stop(0) }

func (p *Plugin) stop(grace time.Duration) {
	if grace <= 0 {
		p.sigkillGroup()
	}
	p.stopOnce.Do(func() {
		p.forceAt = time.Now().Add(grace)
		// Calls in flight on the direct channel fail now, as gRPC's do
		// when go-plugin closes its connection; later ones take gRPC, which
		// is closed.
		if p.hop != nil {
			p.hop.closeDirect()
		}
		// Still called after a SIGKILL: it reaps the process and ends
		// go-plugin's goroutines and connection.
		go func() {
			p.client.Kill()
			close(p.clientDone)
		}()
	})
	if grace > 0 {
		// forceAt is shared, so that a second Kill during the first does
		// not extend the grace.
		waitFor(p.clientDone, time.Until(p.forceAt))
	}
	// After a graceful exit this takes down what the plugin left running;
	// otherwise it ends the plugin itself.
	p.sigkillGroup()
	waitFor(p.clientDone, reapWait)
	p.killOnce.Do(func() {
		if p.directDir != "" {
			_ = os.RemoveAll(p.directDir)
		}
		close(p.killed)
	})
}

func (p *Plugin) sigkillGroup() { p.groupOnce.Do(func() { killGroup(p.proc) }) }

// waitFor waits until ch is closed, or for d at most.
func waitFor(ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// Launch starts a plugin executable built with Serve and connects to it over
// gRPC with automatic mutual TLS, then opens the direct channel that its
// Backend calls take when the plugin has one (see the package doc). ctx
// bounds the start only; the plugin then runs until Kill, which the caller
// must call (plugins are not cleaned up behind the caller's back).
//
// A checksum mismatch is refused with an error wrapping ErrChecksumMismatch
// that names the path and both checksums. Any other failure to start wraps
// ErrUnavailable.
func Launch(ctx context.Context, cfg LaunchConfig) (*Plugin, error) {
	if cfg.Path == "" {
		return nil, errors.New("launching plugin: empty path")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launching plugin %s: %w", cfg.Path, err)
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	if cmd.Err != nil {
		return nil, fmt.Errorf("launching plugin %s: %w: %w", cfg.Path, sdk.ErrUnavailable, cmd.Err)
	}
	// The host's environment first, so that cfg.Env wins (exec keeps the
	// last value of a duplicated variable); go-plugin adds its own after.
	cmd.Env = append(os.Environ(), cfg.Env...)
	setProcAttr(cmd)

	var secure *goplugin.SecureConfig
	if cfg.SHA256 != "" {
		want, err := checkSHA256(cmd.Path, cfg.SHA256)
		if err != nil {
			return nil, err
		}
		// go-plugin checks again right before exec, narrowing the window in
		// which the file could be swapped.
		secure = &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}

	out := cfg.Stderr
	if out == nil {
		out = os.Stderr
	}
	lw := &lockedWriter{w: out}
	timeout := DefaultStartTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "plugin",
		Level:  hclog.Info,
		Output: lw,
	})
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          goplugin.PluginSet{pluginName: &backendPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env already holds it, in our order
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          false,
		StartTimeout:     timeout,
		// JSON log lines are parsed by Logger and re-logged under the
		// plugin's name; anything else the process prints goes to out as is.
		Stderr:     &nonJSONLines{w: lw},
		SyncStderr: lw,
		SyncStdout: lw,
		Logger:     logger,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes)),
			// Fixed windows switch off gRPC's bandwidth-delay probing: on a
			// local socket it only adds a ping round per call.
			grpc.WithInitialWindowSize(windowBytes),
			grpc.WithInitialConnWindowSize(windowBytes),
		},
	})

	p := &Plugin{path: cmd.Path, client: client, logger: logger, timeout: timeout,
		clientDone: make(chan struct{}), killed: make(chan struct{})}
	started := make(chan error, 1)
	go p.start(cmd, started)
	select {
	case err := <-started:
		if err != nil {
			p.Kill()
			if errors.Is(err, goplugin.ErrChecksumsDoNotMatch) {
				return nil, fmt.Errorf("plugin %s: %w: the file changed while it was being started", cmd.Path, ErrChecksumMismatch)
			}
			return nil, fmt.Errorf("starting plugin %s: %w: %w", cmd.Path, sdk.ErrUnavailable, err)
		}
		return p, nil
	case <-ctx.Done():
		// The start goroutine kills the plugin as soon as it is up, so
		// that giving up here leaves no process behind.
		go func() {
			<-started
			p.Kill()
		}()
		return nil, fmt.Errorf("starting plugin %s: %w", cmd.Path, ctx.Err())
	}
}

// start runs on a goroutine locked to its OS thread for the plugin's whole
// life: Pdeathsig (Linux) fires when the thread that forked the plugin ends,
// so the thread must outlive the plugin, and end with the host.
func (p *Plugin) start(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	// No UnlockOSThread: a locked goroutine that returns takes its thread
	// with it, which is what we want once the plugin is dead.
	rpc, err := p.client.Client()
	if err != nil {
		started <- err
		return
	}
	raw, err := rpc.Dispense(pluginName)
	if err != nil {
		started <- err
		return
	}
	gc, ok := raw.(*grpcClient)
	if !ok {
		started <- fmt.Errorf("plugin %q has unexpected type %T", pluginName, raw)
		return
	}
	gc.exited = p.client.Exited
	p.backend = gc
	if cmd.Process != nil {
		p.proc, p.pid = cmd.Process, cmd.Process.Pid
	}
	p.hop = gc.hop
	p.openDirect()
	started <- nil
	<-p.killed
}

// openDirect sets up the direct channel (direct.go) in a private directory
// that Kill removes. Without it every call takes gRPC: slower, not wrong.
func (p *Plugin) openDirect() {
	if !directSupported || p.pid == 0 {
		return
	}
	dir, err := os.MkdirTemp("", "secretgate-plugin-") // 0700
	if err != nil {
		p.logger.Warn("direct channel unavailable, calls take gRPC", "path", p.path, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	err = p.hop.openDirect(ctx, dir, p.pid)
	if err != nil {
		_ = os.RemoveAll(dir)
		if !errors.Is(err, errDirectUnsupported) {
			p.logger.Warn("direct channel unavailable, calls take gRPC", "path", p.path, "error", err)
		}
		return
	}
	p.directDir = dir
}

// FileSHA256 returns the hex SHA-256 of a file: what a plugin's `sha256:`
// in the configuration holds.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkSHA256 compares a file's SHA-256 with the expected hex digest and
// returns the decoded digest.
func checkSHA256(path, expected string) ([]byte, error) {
	expected = strings.ToLower(strings.TrimSpace(expected))
	want, err := hex.DecodeString(expected)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("plugin %s: sha256 must be %d hex characters", path, 2*sha256.Size)
	}
	actual, err := FileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	got, _ := hex.DecodeString(actual)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, fmt.Errorf("plugin %s: %w: expected sha256 %s, actual %s", path, ErrChecksumMismatch, expected, actual)
	}
	return want, nil
}

// lockedWriter serialises writers that go-plugin drives from several
// goroutines (log, stderr, stdout).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// nonJSONLines passes through the plugin's raw stderr lines that are not
// hclog JSON (those reach the host's log through the Logger instead), so
// that a plugin's panic or early failure is never swallowed.
type nonJSONLines struct {
	w   io.Writer
	buf []byte
}

func (n *nonJSONLines) Write(b []byte) (int, error) {
	n.buf = append(n.buf, b...)
	for {
		i := bytes.IndexByte(n.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := n.buf[:i+1]
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) {
			if _, err := n.w.Write(line); err != nil {
				return len(b), err
			}
		}
		n.buf = n.buf[i+1:]
	}
}
