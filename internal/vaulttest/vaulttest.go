// Package vaulttest starts a real HashiCorp Vault dev server for tests.
//
// The server is Vault 1.21.0 built from Vault's own Go module by
// internal/testservers/vault (`make testservers` puts it at .bin/vault).
// Tests find it through SECRETGATE_VAULT_BIN or at <repo root>/.bin/vault;
// when it is missing they skip, saying how to build it, except under CI=true
// where a missing server is a failure.
//
// Dev mode keeps everything in memory, unsealed, with KV v2 mounted at
// "secret/". Restart brings a fresh, empty server up on the same address
// with the same root token.
package vaulttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretgate/secretgate/internal/childproc"
	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/syncbuf"
)

// startTimeout is generous: the 500 MB binary starts slowly on a loaded
// machine.
const startTimeout = 90 * time.Second

// Server is one running Vault dev server.
type Server struct {
	// Addr is the base URL, e.g. http://127.0.0.1:41234.
	Addr string
	// RootToken is the dev server's root token.
	RootToken string
	// CACert is the PEM file of the CA that signed the server's certificate
	// (StartTLS only); the certificate names localhost and 127.0.0.1.
	CACert string

	bin    string
	listen string // host:port
	home   string

	tls     bool
	certDir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{} // closed when cmd has exited
	out  *syncbuf.Buffer
}

// Binary returns the Vault binary's path, skipping (or, under CI=true,
// failing) the test when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("SECRETGATE_VAULT_BIN")
	if bin == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
		bin = filepath.Join(root, ".bin", "vault")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("vaulttest: no Vault server binary at %s (set SECRETGATE_VAULT_BIN, or run `make testservers`, which builds internal/testservers/vault into .bin/vault)", bin)
		cirequire.Unavailable(t, msg)
	}
	return bin
}

// Start runs a Vault dev server on a free loopback port and stops it when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with HTTPS (`vault server -dev-tls`): Addr is https://,
// and CACert the CA to trust.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := Binary(t)
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	home, err := os.MkdirTemp("", "vaulttest-home-")
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	s := &Server{
		RootToken: "root-" + hex.EncodeToString(tok),
		bin:       bin,
		home:      home,
		tls:       useTLS,
		certDir:   filepath.Join(home, "tls"),
	}
	if useTLS {
		if err := os.Mkdir(s.certDir, 0o700); err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
		s.CACert = filepath.Join(s.certDir, "vault-ca.pem")
	}
	t.Cleanup(func() {
		s.Stop()
		_ = os.RemoveAll(home)
	})
	// A port picked by listening on :0 can be taken by someone else before
	// Vault binds it; try a few.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
		s.listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Addr = "http://" + s.listen
		if useTLS {
			s.Addr = "https://" + s.listen
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("vaulttest: starting Vault: %v", lastErr)
	return nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := []string{"server", "-dev"}
	if s.tls {
		// Vault writes a fresh CA and certificate there at each start.
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+s.certDir)
	}
	cmd := exec.Command(s.bin, args...)
	// The root token goes through the environment, not the command line,
	// where every local user could read it.
	cmd.Env = []string{
		"HOME=" + s.home,
		"PATH=" + os.Getenv("PATH"),
		"VAULT_DEV_ROOT_TOKEN_ID=" + s.RootToken,
		"VAULT_DEV_LISTEN_ADDRESS=" + s.listen,
		"VAULT_LOG_LEVEL=warn",
		"VAULT_DISABLE_MLOCK=true",
	}
	s.out = &syncbuf.Buffer{Limit: 1 << 20} // a dev server left running a long time
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	setProcAttr(cmd)
	// plugin.Launch locks goroutines to threads and retires them with their
	// plugins: a server forked from an ordinary goroutine could die with
	// some plugin's thread mid-test (childproc says why).
	done, err := childproc.Start(cmd)
	if err != nil {
		return err
	}
	s.cmd, s.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := s.health(ctx); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("vault exited at start: %s", safeTail(s.out))
		case <-ctx.Done():
			return fmt.Errorf("vault did not become healthy within %v: %s", startTimeout, safeTail(s.out))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// health answers nil when the server is initialized, unsealed and active.
func (s *Server) health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	hc := http.DefaultClient
	if s.tls {
		// The CA file appears once the server has started.
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("no certificate in the dev CA file yet")
		}
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		defer hc.CloseIdleConnections()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sys/health: status %d", resp.StatusCode)
	}
	return nil
}

// Stop kills the server and waits for it to exit. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart starts a fresh, empty dev server on the same address with the
// same root token (dev mode is in memory: data does not survive).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		s.Stop()
		if time.Now().After(deadline) {
			t.Fatalf("vaulttest: restarting Vault on %s: %v", s.listen, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Client returns an api client with the root token.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	if s.tls {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			t.Fatalf("vaulttest: %v", err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	c.SetToken(s.RootToken)
	return c
}

// CLI runs the vault binary as a command-line client against the server,
// with token (the root token when empty) in VAULT_TOKEN, and returns its
// standard output. Failures fail the test with the command's output.
func (s *Server) CLI(t testing.TB, token string, args ...string) string {
	t.Helper()
	out, err := s.TryCLI(token, args...)
	if err != nil {
		t.Fatalf("vaulttest: vault %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TryCLI is CLI returning the error (with the command's stderr) instead.
func (s *Server) TryCLI(token string, args ...string) (string, error) {
	if token == "" {
		token = s.RootToken
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = []string{
		"HOME=" + s.home,
		"PATH=" + os.Getenv("PATH"),
		"VAULT_ADDR=" + s.Addr,
		"VAULT_TOKEN=" + token,
	}
	if s.tls {
		cmd.Env = append(cmd.Env, "VAULT_CACERT="+s.CACert)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// repoRoot walks up from the working directory to the main module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/secretgate/secretgate\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (go.mod of github.com/secretgate/secretgate) above the working directory")
		}
		dir = parent
	}
}

// safeTail is the end of the output without the lines that show the root
// token or the unseal key.
func safeTail(out *syncbuf.Buffer) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "Root Token") || strings.Contains(l, "Unseal Key") || strings.Contains(l, "root-") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
