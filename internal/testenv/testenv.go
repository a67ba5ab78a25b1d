// Package testenv runs the real secretgate binary for end-to-end tests: it
// builds the binary once per test process, writes a configuration, starts
// `secretgate server` on a free loopback port, waits until it listens, and
// stops it (and its plugins) in t.Cleanup.
//
// Backend helpers use it for gateway tests of their own plugin:
//
//	srv := testenv.Start(t, testenv.Options{
//		Backends: []testenv.Backend{{Name: "vault", Plugin: "vault", Settings: map[string]string{...}}},
//		Projects: []testenv.Project{{Name: "payments", Backend: "vault"}},
//	})
//	resp := srv.Do(t, "GET", "/v1/projects/payments/secrets", srv.Token("admin"), nil)
package testenv

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// StartTimeout bounds how long Start waits for the server to listen.
var StartTimeout = 90 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Main runs the tests of a package and removes the binary built for them.
// Use it from TestMain: func TestMain(m *testing.M) { testenv.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Binary builds ./cmd/secretgate once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		buildDir, buildErr = os.MkdirTemp("", "secretgate-bin-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "secretgate")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/secretgate")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/secretgate: %w\n%s", err, msg)
		}
	})
	require.NoError(t, buildErr)
	return buildPath
}

// Backend is one configured backend.
type Backend struct {
	Name     string
	Plugin   string
	Settings map[string]string
	SHA256   string
}

// Project binds a project to a backend.
type Project struct{ Name, Backend string }

// Grant is one binding of a subject.
type Grant struct {
	Project string // a project or "*"
	Role    string
	Secrets []string
}

// Subject is a principal; Start makes a random token for it.
type Subject struct {
	Name   string
	Grants []Grant
}

// Options describe the server to start. Zero values give one file backend
// "local" in the test's temp dir, project "default" on it, and a subject
// "admin" with role admin on every project.
type Options struct {
	// UI turns on the embedded web UI (config `ui: true`).
	UI       bool
	Backends []Backend
	Projects []Project
	Subjects []Subject
	// AuditPath defaults to <Dir>/audit.log.
	AuditPath string
	// Env is added to the server's environment (SECRETGATE_* of the test
	// process are never inherited).
	Env []string
	// Args are extra arguments of `secretgate server`.
	Args []string
	// Dir holds the config, logs and the file backend; t.TempDir() when "".
	Dir string
	// TLS, when set, turns on HTTPS (the config's tls section).
	TLS *TLSFiles
}

// TLSFiles are the PEM files of an HTTPS server.
type TLSFiles struct {
	CertFile, KeyFile string
	// CAFile, when set, is the CA that Server.Do, Try and CLI trust.
	CAFile string
}

// FileBackend is a file backend whose database and key file live in dir.
func FileBackend(name, dir string) Backend {
	return Backend{Name: name, Plugin: "file", Settings: map[string]string{
		"path":     filepath.Join(dir, name+".db"),
		"key_file": filepath.Join(dir, name+".key"),
	}}
}

// Server is a running `secretgate server`.
type Server struct {
	URL        string
	Dir        string
	ConfigPath string
	AuditPath  string
	StdoutPath string
	StderrPath string
	// HTTPClient sends the requests of Do and Try; a shared plain client
	// when nil. Start sets one trusting Options.TLS.CAFile.
	HTTPClient *http.Client
	// CAFile, when set, is passed to CLI as SECRETGATE_CACERT.
	CAFile string

	tokens map[string]string
	cmd    *exec.Cmd
	done   chan struct{}
	waitMu sync.Mutex
	state  *os.ProcessState
	plugin map[int]bool // every plugin pid seen, killed at cleanup if left
}

// NewToken returns a random bearer token.
func NewToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "sgt_" + hex.EncodeToString(b[:])
}

// TokenSHA256 is the config's token_sha256 of a token.
func TokenSHA256(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

type yamlConfig struct {
	Listen   string        `yaml:"listen"`
	TLS      *yamlTLS      `yaml:"tls,omitempty"`
	Audit    yamlAudit     `yaml:"audit"`
	Backends []yamlBackend `yaml:"backends"`
	Projects []yamlProject `yaml:"projects"`
	Subjects []yamlSubject `yaml:"subjects"`
	Bindings []yamlBinding `yaml:"bindings"`
	UI       bool          `yaml:"ui,omitempty"`
}
type yamlTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}
type yamlAudit struct {
	Path string `yaml:"path"`
}
type yamlBackend struct {
	Name     string            `yaml:"name"`
	Plugin   string            `yaml:"plugin"`
	Settings map[string]string `yaml:"settings,omitempty"`
	SHA256   string            `yaml:"sha256,omitempty"`
}
type yamlProject struct {
	Name    string `yaml:"name"`
	Backend string `yaml:"backend"`
}
type yamlSubject struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
}
type yamlBinding struct {
	Subject string   `yaml:"subject"`
	Project string   `yaml:"project"`
	Role    string   `yaml:"role"`
	Secrets []string `yaml:"secrets,omitempty"`
}

// WriteConfig writes the YAML configuration of opts into opts.Dir (which
// must be set) and returns its path and each subject's token.
func WriteConfig(t testing.TB, opts Options) (string, map[string]string) {
	t.Helper()
	require.NotEmpty(t, opts.Dir, "WriteConfig needs Options.Dir")
	if len(opts.Backends) == 0 {
		opts.Backends = []Backend{FileBackend("local", opts.Dir)}
	}
	if len(opts.Projects) == 0 {
		opts.Projects = []Project{{Name: "default", Backend: opts.Backends[0].Name}}
	}
	if len(opts.Subjects) == 0 {
		opts.Subjects = []Subject{{Name: "admin", Grants: []Grant{{Project: "*", Role: "admin"}}}}
	}
	if opts.AuditPath == "" {
		opts.AuditPath = filepath.Join(opts.Dir, "audit.log")
	}
	cfg := yamlConfig{Listen: "127.0.0.1:0", Audit: yamlAudit{Path: opts.AuditPath}, UI: opts.UI}
	if opts.TLS != nil {
		cfg.TLS = &yamlTLS{CertFile: opts.TLS.CertFile, KeyFile: opts.TLS.KeyFile}
	}
	for _, b := range opts.Backends {
		cfg.Backends = append(cfg.Backends, yamlBackend(b))
	}
	for _, p := range opts.Projects {
		cfg.Projects = append(cfg.Projects, yamlProject(p))
	}
	tokens := map[string]string{}
	for _, s := range opts.Subjects {
		tok := NewToken()
		tokens[s.Name] = tok
		cfg.Subjects = append(cfg.Subjects, yamlSubject{Name: s.Name, TokenSHA256: TokenSHA256(tok)})
		for _, g := range s.Grants {
			cfg.Bindings = append(cfg.Bindings, yamlBinding{Subject: s.Name, Project: g.Project, Role: g.Role, Secrets: g.Secrets})
		}
	}
	data, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(opts.Dir, "secretgate.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path, tokens
}

// Start writes the configuration of opts and starts the server on it.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.AuditPath == "" {
		opts.AuditPath = filepath.Join(opts.Dir, "audit.log")
	}
	path, tokens := WriteConfig(t, opts)
	s := StartConfig(t, path, opts.Env, opts.Args...)
	s.tokens = tokens
	s.AuditPath = opts.AuditPath
	if opts.TLS != nil && opts.TLS.CAFile != "" {
		s.CAFile = opts.TLS.CAFile
		s.HTTPClient = HTTPSClient(t, opts.TLS.CAFile)
	}
	return s
}

// HTTPSClient is an HTTP client that trusts only the PEM certificates of
// caFile (TLS 1.2 or later).
func HTTPSClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem), "no PEM certificate in %s", caFile)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// StartConfig starts `secretgate server --config path --listen 127.0.0.1:0`
// and waits until it listens. Tokens are unknown to it (use Start).
func StartConfig(t testing.TB, path string, env []string, args ...string) *Server {
	t.Helper()
	s := start(t, filepath.Dir(path), env, append([]string{"server", "--config", path, "--listen", "127.0.0.1:0"}, args...))
	s.ConfigPath = path
	return s
}

// StartDev starts `secretgate server --dev --listen 127.0.0.1:0 args...` in
// dir (so its data lands in dir/.secretgate) and waits until it listens.
func StartDev(t testing.TB, dir string, args ...string) *Server {
	t.Helper()
	s := start(t, dir, nil, append([]string{"server", "--dev", "--listen", "127.0.0.1:0"}, args...))
	s.AuditPath = filepath.Join(dir, ".secretgate", "audit.log")
	return s
}

func start(t testing.TB, dir string, env, args []string) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{
		Dir: dir, tokens: map[string]string{}, done: make(chan struct{}), plugin: map[int]bool{},
		StdoutPath: uniquePath(dir, "stdout", ".log"), StderrPath: uniquePath(dir, "stderr", ".log"),
	}
	stdout, err := os.OpenFile(s.StdoutPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	require.NoError(t, err)
	stderr, err := os.OpenFile(s.StderrPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	require.NoError(t, err)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	s.cmd.Env = append(cleanEnv(), env...)
	s.cmd.Stdout, s.cmd.Stderr = stdout, stderr
	require.NoError(t, s.cmd.Start())
	go func() {
		_ = s.cmd.Wait()
		s.waitMu.Lock()
		s.state = s.cmd.ProcessState
		s.waitMu.Unlock()
		_ = stdout.Close()
		_ = stderr.Close()
		close(s.done)
	}()
	t.Cleanup(s.cleanup)

	re := regexp.MustCompile(`secretgate listening on (\S+)`)
	deadline := time.Now().Add(StartTimeout)
	for {
		if m := re.FindStringSubmatch(s.Stdout()); m != nil {
			s.URL = m[1]
			break
		}
		select {
		case <-s.done:
			t.Fatalf("secretgate server exited before listening (%s)\nstdout:\n%s\nstderr:\n%s", s.state, s.Stdout(), s.Stderr())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("secretgate server did not listen within %s\nstderr:\n%s", StartTimeout, s.Stderr())
		}
	}
	s.notePlugins()
	return s
}

func uniquePath(dir, base, ext string) string {
	p := filepath.Join(dir, base+ext)
	for i := 1; ; i++ {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, base+"-"+strconv.Itoa(i)+ext)
	}
}

// cleanEnv is the test's environment without SECRETGATE_* variables.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETGATE_") {
			out = append(out, kv)
		}
	}
	return out
}

// Token returns the bearer token of a subject of Options.Subjects.
func (s *Server) Token(subject string) string { return s.tokens[subject] }

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// PluginPIDs lists the server's live child processes (its plugins).
func (s *Server) PluginPIDs() []int {
	pids := ChildPIDs(s.PID())
	s.waitMu.Lock()
	for _, p := range pids {
		s.plugin[p] = true
	}
	s.waitMu.Unlock()
	return pids
}

func (s *Server) notePlugins() { s.PluginPIDs() }

// WaitPlugins waits until the server has n live plugin processes.
func (s *Server) WaitPlugins(t testing.TB, n int, timeout time.Duration) []int {
	t.Helper()
	var pids []int
	require.Eventually(t, func() bool {
		pids = s.PluginPIDs()
		return len(pids) == n
	}, timeout, 20*time.Millisecond, "want %d plugin processes", n)
	return pids
}

// ChildPIDs lists the live (non-zombie) children of pid, from /proc.
func ChildPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, state, ok := procStat(n)
		if ok && ppid == pid && state != "Z" {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// Alive reports whether a process exists and is not a zombie.
func Alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", false
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// Signal sends sig to the server.
func (s *Server) Signal(sig syscall.Signal) error { return s.cmd.Process.Signal(sig) }

// Wait waits for the server to exit and returns its exit code (-1 when a
// signal ended it); it fails the test after timeout.
func (s *Server) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("secretgate server still running after %s", timeout)
	}
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	return s.state.ExitCode()
}

// Stop sends SIGTERM and waits for the exit code.
func (s *Server) Stop(t testing.TB) int {
	t.Helper()
	s.notePlugins()
	if !s.Exited() {
		require.NoError(t, s.Signal(syscall.SIGTERM))
	}
	return s.Wait(t, 30*time.Second)
}

// Kill sends SIGKILL to the server (its plugins die by Pdeathsig).
func (s *Server) Kill() {
	s.notePlugins()
	_ = s.cmd.Process.Kill()
	<-s.done
}

func (s *Server) cleanup() {
	if !s.Exited() {
		s.notePlugins()
		_ = s.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	// Whatever a failed test left behind, never leak a plugin process.
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for pid := range s.plugin {
		if Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Stdout returns what the server printed on stdout so far.
func (s *Server) Stdout() string { return readFile(s.StdoutPath) }

// Stderr returns what the server printed on stderr so far.
func (s *Server) Stderr() string { return readFile(s.StderrPath) }

// Audit returns the audit file's content.
func (s *Server) Audit() string { return readFile(s.AuditPath) }

// AuditRecords parses the audit file.
func (s *Server) AuditRecords(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.Audit()))
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), "audit line %q", sc.Text())
		out = append(out, rec)
	}
	return out
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// Response is an HTTP answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// ErrorCode returns error.code of an error envelope ("" if none).
func (r *Response) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

var client = &http.Client{Timeout: 30 * time.Second}

// Do sends a request; body is JSON-encoded unless it is a string or []byte.
// headers are name, value pairs.
func (s *Server) Do(t testing.TB, method, path, token string, body any, headers ...string) *Response {
	t.Helper()
	resp, err := s.Try(method, path, token, body, headers...)
	require.NoError(t, err)
	return resp
}

// Try is Do that returns errors instead of failing (for goroutines).
func (s *Server) Try(method, path, token string, body any, headers ...string) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	hc := s.HTTPClient
	if hc == nil {
		hc = client
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// CLIResult is the outcome of a CLI run.
type CLIResult struct {
	Stdout, Stderr string
	Code           int
}

// CLI runs the secretgate binary as a client of this server (with
// SECRETGATE_ADDR and SECRETGATE_TOKEN set, and SECRETGATE_CACERT when
// CAFile is), feeding stdin.
func (s *Server) CLI(t testing.TB, token, stdin string, args ...string) CLIResult {
	t.Helper()
	env := append(cleanEnv(), "SECRETGATE_ADDR="+s.URL, "SECRETGATE_TOKEN="+token)
	if s.CAFile != "" {
		env = append(env, "SECRETGATE_CACERT="+s.CAFile)
	}
	return Run(t, env, s.Dir, stdin, args...)
}

// Run runs the secretgate binary with env (complete) in dir and returns its
// output and exit code; it fails the test if it runs over two minutes.
func Run(t testing.TB, env []string, dir, stdin string, args ...string) CLIResult {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("secretgate %v did not finish", args)
	}
	return CLIResult{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
}

// RunServer runs `secretgate server` with the given config file content
// (written into a temp dir) and waits for it to exit by itself: for configs
// that must be refused. It fails the test if the server starts listening.
func RunServer(t testing.TB, configYAML string, env []string, args ...string) CLIResult {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "secretgate.yaml")
	require.NoError(t, os.WriteFile(path, []byte(configYAML), 0o600))
	res := Run(t, append(cleanEnv(), env...), dir, "", append([]string{"server", "--config", path, "--listen", "127.0.0.1:0"}, args...)...)
	require.NotContains(t, res.Stdout, "secretgate listening on", "the server started on a config it should refuse")
	return res
}
