package main

// The migrate scenario: migration throughput of the real gateway, in secrets
// per second, from a file backend to another file backend and from a file
// backend to a real Vault dev server.
//
// It writes its own configuration (backends "src" and "dst" of the file
// plugin and "vault" of the vault plugin; projects "mig-file" and
// "mig-vault", both on "src"), starts Vault (the binary `make testservers`
// builds into .bin/vault) and the gateway, seeds each project through the
// HTTP API, and times POST /v1/migrations up to the final report.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"gopkg.in/yaml.v3"
)

const (
	// migrateWriters is the number of concurrent clients seeding a project.
	migrateWriters = 16
	// migratePoll is how often the report is polled during a migration.
	migratePoll = 20 * time.Millisecond
	// migrateTimeout bounds one migration, from POST to the final report.
	migrateTimeout = 10 * time.Minute
	// vaultStartTimeout is generous: the 500 MB binary starts slowly on a
	// loaded machine.
	vaultStartTimeout = 90 * time.Second
	// vaultTokenEnv passes the Vault root token to the gateway, which
	// expands ${LOADTEST_VAULT_TOKEN} in the backend settings, so that the
	// token is neither on a command line nor in the config file.
	vaultTokenEnv = "LOADTEST_VAULT_TOKEN"
)

// migrateClient is the HTTP client of the scenario: keep-alive with enough
// idle connections for every writer (the default keeps 2 per host).
var migrateClient = &http.Client{
	Timeout: 60 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        2 * migrateWriters,
		MaxIdleConnsPerHost: 2 * migrateWriters,
		IdleConnTimeout:     30 * time.Second,
	},
}

// migrationReport is the part of GET /v1/migrations/{id} the scenario reads.
type migrationReport struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	Total      int               `json:"total"`
	Copied     int               `json:"copied"`
	Skipped    int               `json:"skipped"`
	Failed     int               `json:"failed"`
	Verified   int               `json:"verified"`
	Errors     map[string]string `json:"errors"`
	StartedAt  string            `json:"started_at"`
	FinishedAt string            `json:"finished_at"`
}

// runMigrate runs the migrate scenario with n secrets per migration. bin is
// the secretgate binary, vaultBin the Vault server ("" = SECRETGATE_VAULT_BIN
// or <repo root>/.bin/vault). Everything it starts is stopped before it
// returns.
func runMigrate(w io.Writer, bin, vaultBin string, n int) error {
	dir, err := os.MkdirTemp("", "secretgate-loadtest-migrate-")
	if err != nil {
		return err
	}
	trackDir(dir)
	defer os.RemoveAll(dir)

	fmt.Fprintf(w, "\nmigration run: %d secrets per migration (seeded by %d concurrent writers), versions latest, on_conflict fail\n\n", n, migrateWriters)

	vaultBin, why := findVault(vaultBin)
	var vault *vaultServer
	if why == "" {
		if vault, err = startVault(vaultBin, filepath.Join(dir, "vault")); err != nil {
			return err
		}
		defer vault.stop()
	}

	token := "sg_loadtest_" + randomHex(16)
	cfgPath, err := writeMigrateConfig(dir, token, vault)
	if err != nil {
		return err
	}
	env := gatewayEnv()
	if vault != nil {
		env = append(env, vaultTokenEnv+"="+vault.rootToken)
	}
	gw, err := startGateway(bin, dir, env, "--config", cfgPath)
	if err != nil {
		return err
	}
	defer gw.stop()

	runs := []struct{ label, project, target string }{{"file→file", "mig-file", "dst"}}
	if vault != nil {
		runs = append(runs, struct{ label, project, target string }{"file→vault", "mig-vault", "vault"})
	}
	for _, r := range runs {
		if err := seed(gw.base, token, r.project, n); err != nil {
			return fmt.Errorf("seeding %s: %w%s", r.project, err, gw.logTail())
		}
		rep, elapsed, err := migrate(gw.base, token, "src", r.target, r.project)
		if err != nil {
			return fmt.Errorf("migrate %s: %w%s", r.label, err, gw.logTail())
		}
		fmt.Fprintf(w, "migrate %s  %d secrets  %.2f s  %.0f secrets/s  (copied %d, verified %d, failed %d)\n",
			r.label, rep.Total, elapsed.Seconds(), float64(rep.Total)/elapsed.Seconds(), rep.Copied, rep.Verified, rep.Failed)
		switch {
		case rep.State != "succeeded" || rep.Failed > 0:
			return fmt.Errorf("migrate %s: state %s, %d failed; errors: %s", r.label, rep.State, rep.Failed, firstErrors(rep.Errors, 5))
		case rep.Total != n || rep.Copied != n || rep.Verified != n:
			return fmt.Errorf("migrate %s: want %d secrets copied and verified, report says total %d, copied %d, skipped %d, verified %d",
				r.label, n, rep.Total, rep.Copied, rep.Skipped, rep.Verified)
		}
	}
	if vault == nil {
		fmt.Fprintf(w, "migrate file→vault  skipped: %s\n", why)
	}
	return nil
}

// findVault resolves the Vault binary; why says why there is none.
func findVault(bin string) (path, why string) {
	if bin == "" {
		bin = os.Getenv("SECRETGATE_VAULT_BIN")
	}
	if bin == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			return "", "cannot find the repository root (go env GOMOD) to look for .bin/vault; pass -vault-bin or set SECRETGATE_VAULT_BIN"
		}
		bin = filepath.Join(filepath.Dir(gomod), ".bin", "vault")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", err.Error()
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Sprintf("no Vault server binary at %s (run `make testservers`, which builds internal/testservers/vault into .bin/vault)", abs)
	}
	return abs, ""
}

// gatewayEnv is this process's environment without SECRETGATE_* variables,
// which would override the generated configuration.
func gatewayEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETGATE_") && !strings.HasPrefix(kv, vaultTokenEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// writeMigrateConfig writes the gateway configuration of the scenario into
// dir: file backends src and dst, the vault backend when vault is running,
// projects mig-file and mig-vault on src, one admin subject holding token.
func writeMigrateConfig(dir, token string, vault *vaultServer) (string, error) {
	type backend struct {
		Name     string            `yaml:"name"`
		Plugin   string            `yaml:"plugin"`
		Settings map[string]string `yaml:"settings"`
	}
	type project struct {
		Name    string `yaml:"name"`
		Backend string `yaml:"backend"`
	}
	type subject struct {
		Name        string `yaml:"name"`
		TokenSHA256 string `yaml:"token_sha256"`
	}
	type binding struct {
		Subject string `yaml:"subject"`
		Project string `yaml:"project"`
		Role    string `yaml:"role"`
	}
	type config struct {
		Listen string `yaml:"listen"`
		Audit  struct {
			Path string `yaml:"path"`
		} `yaml:"audit"`
		Backends []backend `yaml:"backends"`
		Projects []project `yaml:"projects"`
		Subjects []subject `yaml:"subjects"`
		Bindings []binding `yaml:"bindings"`
	}
	file := func(name string) backend {
		return backend{Name: name, Plugin: "file", Settings: map[string]string{
			"path":     filepath.Join(dir, name+".db"),
			"key_file": filepath.Join(dir, name+".key"),
		}}
	}
	sum := sha256.Sum256([]byte(token))
	cfg := config{
		Listen:   "127.0.0.1:0",
		Backends: []backend{file("src"), file("dst")},
		Projects: []project{{"mig-file", "src"}},
		Subjects: []subject{{"loadtest", hex.EncodeToString(sum[:])}},
		Bindings: []binding{{"loadtest", "*", "admin"}},
	}
	cfg.Audit.Path = filepath.Join(dir, "audit.log")
	if vault != nil {
		// KV v2 at secret/ is what dev mode mounts; the plugin's defaults
		// (mount secret, prefix secretgate/) fit it.
		cfg.Backends = append(cfg.Backends, backend{Name: "vault", Plugin: "vault", Settings: map[string]string{
			"address": vault.addr,
			"token":   "${" + vaultTokenEnv + "}",
		}})
		cfg.Projects = append(cfg.Projects, project{"mig-vault", "src"})
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "secretgate.yaml")
	return path, os.WriteFile(path, data, 0o600)
}

// seed creates n secrets in project with migrateWriters concurrent clients:
// two small keys and a label each.
func seed(base, token, project string, n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := make(chan int)
	errs := make(chan error, migrateWriters)
	var wg sync.WaitGroup
	for range migrateWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body, _ := json.Marshal(map[string]any{
					"name":   fmt.Sprintf("mig-%05d", i),
					"data":   map[string]string{"username": fmt.Sprintf("svc-%d", i), "password": randomHex(16)},
					"labels": map[string]string{"team": "loadtest"},
				})
				if _, err := call(ctx, http.MethodPost, base+"/v1/projects/"+project+"/secrets", token, body, nil); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when no writer failed
}

// migrate starts a migration of project from source to target and polls it
// to the end; elapsed runs from the POST to the final report.
func migrate(base, token, source, target, project string) (migrationReport, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]any{
		"source": source, "target": target, "projects": []string{project},
		"versions": "latest", "on_conflict": "fail",
	})
	start := time.Now()
	var started struct {
		ID string `json:"id"`
	}
	status, err := call(ctx, http.MethodPost, base+"/v1/migrations", token, body, &started)
	if err != nil {
		return migrationReport{}, 0, err
	}
	if status != http.StatusAccepted || started.ID == "" {
		return migrationReport{}, 0, fmt.Errorf("POST /v1/migrations: status %d, id %q (want 202 and an id)", status, started.ID)
	}
	for {
		var rep migrationReport
		if _, err := call(ctx, http.MethodGet, base+"/v1/migrations/"+started.ID, token, nil, &rep); err != nil {
			return rep, 0, err
		}
		if rep.State != "running" {
			return rep, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return rep, 0, fmt.Errorf("migration %s still running after %s (copied %d of %d)", started.ID, migrateTimeout, rep.Copied, rep.Total)
		case <-time.After(migratePoll):
		}
	}
}

// call sends a request with the bearer token and decodes a JSON answer into
// out (when not nil); a status of 300 or more is an error.
func call(ctx context.Context, method, url, token string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := migrateClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

func firstErrors(m map[string]string, max int) string {
	if len(m) == 0 {
		return "none reported"
	}
	var parts []string
	for k, v := range m {
		if len(parts) == max {
			parts = append(parts, fmt.Sprintf("(%d more)", len(m)-max))
			break
		}
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, "; ")
}

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
