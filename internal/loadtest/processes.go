package main

// The processes a load run starts (a gateway, a Vault dev server) and their
// cleanup, also when the run is interrupted.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// gateway is a `secretgate server` started by the load test.
type gateway struct {
	base string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been reaped
}

// startGateway runs `secretgate server --listen <free port> args...` in dir
// with env and waits for /readyz.
func startGateway(bin, dir string, env []string, args ...string) (*gateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g := &gateway{base: "http://" + addr, log: filepath.Join(dir, "gateway.log")}
	logf, err := os.Create(g.log)
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor; ours can go once it has started.
	defer logf.Close()
	g.cmd = exec.Command(bin, append([]string{"server", "--listen", addr}, args...)...)
	g.cmd.Dir = dir
	g.cmd.Env = env
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	// Its own process group: a terminal's Ctrl-C reaches only the load
	// test, which stops the gateway and its plugins itself.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	track(g.cmd)
	g.done = make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(g.done) }()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		status := 0
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/readyz", nil)
		if resp, err := migrateClient.Do(req); err == nil {
			status = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if status == http.StatusOK {
				return g, nil
			}
		}
		select {
		case <-g.done:
			g.stop()
			return nil, fmt.Errorf("gateway exited before it was ready (%s)%s", g.cmd.ProcessState, g.logTail())
		case <-ctx.Done():
			g.stop()
			return nil, fmt.Errorf("gateway not ready within 90s (last /readyz status %d)%s", status, g.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the gateway, which stops its plugins: SIGTERM, then SIGKILL to
// its whole process group after 15 s. Safe to call twice.
func (g *gateway) stop() {
	defer untrack(g.cmd)
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-g.done
	}
}

func (g *gateway) logTail() string {
	b, _ := os.ReadFile(g.log)
	if len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "\ngateway log (tail):\n" + strings.Join(lines, "\n")
}

// vaultServer is a Vault dev server (in memory, unsealed, KV v2 at secret/)
// on a free loopback port.
type vaultServer struct {
	addr      string
	rootToken string
	log       string
	cmd       *exec.Cmd
	done      chan struct{}
}

// startVault starts `vault server -dev` with home as its HOME and waits until
// it is healthy. A port picked by listening on :0 can be taken by someone
// else before Vault binds it, so it tries a few.
func startVault(bin, home string) (*vaultServer, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		v := &vaultServer{addr: "http://" + addr, rootToken: "root-" + randomHex(16), log: filepath.Join(home, "vault.log")}
		if lastErr = v.start(bin, home, addr); lastErr == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("starting Vault: %w", lastErr)
}

func (v *vaultServer) start(bin, home, listen string) error {
	logf, err := os.Create(v.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	v.cmd = exec.Command(bin, "server", "-dev")
	// The root token goes through the environment, not the command line,
	// where every local user could read it.
	v.cmd.Env = []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"VAULT_DEV_ROOT_TOKEN_ID=" + v.rootToken,
		"VAULT_DEV_LISTEN_ADDRESS=" + listen,
		"VAULT_LOG_LEVEL=warn",
		"VAULT_DISABLE_MLOCK=true",
	}
	v.cmd.Stdout, v.cmd.Stderr = logf, logf
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := v.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	track(v.cmd)
	v.done = make(chan struct{})
	go func() { _ = v.cmd.Wait(); close(v.done) }()

	ctx, cancel := context.WithTimeout(context.Background(), vaultStartTimeout)
	defer cancel()
	for {
		if v.healthy(ctx) {
			return nil
		}
		select {
		case <-v.done:
			v.stop()
			return fmt.Errorf("vault exited at start (%s): %s", v.cmd.ProcessState, v.logTail())
		case <-ctx.Done():
			v.stop()
			return fmt.Errorf("vault did not become healthy within %v: %s", vaultStartTimeout, v.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// healthy: initialized, unsealed and active.
func (v *vaultServer) healthy(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.addr+"/v1/sys/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop kills the server (dev mode keeps nothing worth a clean shutdown) and
// waits for it. Safe to call twice.
func (v *vaultServer) stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	defer untrack(v.cmd)
	select {
	case <-v.done:
		return // exited (and reaped): its group id may belong to someone else now
	default:
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	<-v.done
}

// logTail is the end of Vault's output without the lines that show the root
// token or the unseal key.
func (v *vaultServer) logTail() string {
	b, _ := os.ReadFile(v.log)
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "Root Token") || strings.Contains(l, "Unseal Key") || strings.Contains(l, v.rootToken) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// Processes and temp dirs of the load test, killed (with their process
// groups) and removed when it is interrupted by a signal, which would
// otherwise end it without running its deferred stops.
var tracked struct {
	sync.Mutex
	cmds map[*exec.Cmd]bool
	dirs map[string]bool
}

// trackDir makes dir removed on an interrupt; the caller removes it otherwise.
func trackDir(dir string) {
	tracked.Lock()
	defer tracked.Unlock()
	if tracked.dirs == nil {
		tracked.dirs = map[string]bool{}
	}
	tracked.dirs[dir] = true
}

func track(cmd *exec.Cmd) {
	tracked.Lock()
	defer tracked.Unlock()
	if tracked.cmds == nil {
		tracked.cmds = map[*exec.Cmd]bool{}
	}
	tracked.cmds[cmd] = true
}

func untrack(cmd *exec.Cmd) {
	tracked.Lock()
	defer tracked.Unlock()
	delete(tracked.cmds, cmd)
}

// cleanupOnSignal ends the load test on SIGINT or SIGTERM: it sends SIGKILL
// to every tracked process (and to its group when it has its own), waits
// for them, removes the tracked dirs and exits 130.
func cleanupOnSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "\nloadtest: %v: stopping what it started\n", sig)
		tracked.Lock()
		defer tracked.Unlock()
		for cmd := range tracked.cmds {
			if cmd.Process == nil {
				continue
			}
			if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			_ = cmd.Process.Kill()
		}
		// Give the killed processes a moment to go before their files do.
		time.Sleep(200 * time.Millisecond)
		for dir := range tracked.dirs {
			_ = os.RemoveAll(dir)
		}
		os.Exit(130)
	}()
}
