package testenv

// The server process: start, signals, exit, its plugin children, its output.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
)

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
