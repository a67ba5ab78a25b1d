package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/internal/testenv"
)

// watchWait bounds every wait for a watching process to react; a reaction
// takes milliseconds, the bound is for loaded CI machines.
const watchWait = 20 * time.Second

// bgCLI is the secretgate binary running in the background: its stdout
// read line by line, its stderr kept.
type bgCLI struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	stderr syncbuf.Buffer
	eof    chan struct{} // stdout ended
	once   sync.Once
}

// startCLI starts the binary against srv as admin, with extra environment,
// in a session of its own: no controlling terminal, and one process group
// with everything it starts, killed together when the test ends.
func startCLI(t *testing.T, srv *testenv.Server, env []string, dir string, args ...string) *bgCLI {
	t.Helper()
	p := &bgCLI{t: t, lines: make(chan string, 100), eof: make(chan struct{})}
	p.cmd = exec.Command(testenv.Binary(t), args...)
	p.cmd.Env = append(append(os.Environ(), "SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+srv.Token("admin")), env...)
	p.cmd.Dir = dir
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.eof)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.wait()
	})
	return p
}

// wait reaps the process, once its whole stdout was read (as exec asks).
func (p *bgCLI) wait() {
	p.once.Do(func() {
		<-p.eof
		_ = p.cmd.Wait()
	})
}

// line returns the next line of stdout.
func (p *bgCLI) line() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		require.True(p.t, ok, "stdout closed; stderr: %s", p.stderr.String())
		return l
	case <-time.After(watchWait):
		p.t.Fatalf("no line on stdout after %s; stderr: %s", watchWait, p.stderr.String())
		return ""
	}
}

// noLine requires that stdout stays silent for d.
func (p *bgCLI) noLine(d time.Duration) {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if ok {
			p.t.Fatalf("unexpected line %q; stderr: %s", l, p.stderr.String())
		}
	case <-time.After(d):
	}
}

// waitStderr waits until stderr contains s.
func (p *bgCLI) waitStderr(s string) {
	p.t.Helper()
	deadline := time.Now().Add(watchWait)
	for !strings.Contains(p.stderr.String(), s) {
		require.True(p.t, time.Now().Before(deadline), "no %q on stderr: %s", s, p.stderr.String())
		time.Sleep(10 * time.Millisecond)
	}
}

// exit waits for the process to end and returns its exit code.
func (p *bgCLI) exit() int {
	p.t.Helper()
	ch := make(chan struct{})
	go func() { p.wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(watchWait):
		p.t.Fatalf("still running after %s; stderr: %s", watchWait, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// putDB replaces default/db with data, through the gateway.
func putDB(t *testing.T, srv *testenv.Server, data map[string]string) {
	t.Helper()
	r := srv.Do(t, "PUT", "/v1/projects/default/secrets/db", srv.Token("admin"), map[string]any{"data": data})
	require.Equal(t, 200, r.Status, "%s", r.Body)
}

var pidLine = regexp.MustCompile(`^pid=(\d+) (.*)$`)

// pidAndRest splits a child's "pid=N rest" line.
func pidAndRest(t *testing.T, line string) (int, string) {
	t.Helper()
	m := pidLine.FindStringSubmatch(line)
	require.NotNil(t, m, "line %q", line)
	pid, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return pid, m[2]
}

// requireQuiet: secretgate's own messages name variables and secrets,
// never a value.
func requireQuiet(t *testing.T, p *bgCLI, values ...string) {
	t.Helper()
	for _, v := range values {
		require.NotContains(t, p.stderr.String(), v)
	}
}

// A PUT through the gateway restarts the child with the new value: the
// stop signal once, then a new process with the new environment. A signal
// sent to run while watching reaches the current child, whose exit status
// is run's.
func TestRunWatchRestart(t *testing.T) {
	srv, canary := runEnv(t)
	next := randomCanary(t)
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password"}, t.TempDir(),
		"run", "--watch", "--no-mask", "--", "sh", "-c", `trap 'echo "stopping $$"; exit 3' TERM; echo "pid=$$ pw=$DB_PASSWORD"; while :; do sleep 0.05; done`)
	first, rest := pidAndRest(t, p.line())
	require.Equal(t, "pw="+canary, rest)

	putDB(t, srv, map[string]string{"user": "app", "password": next})
	require.Equal(t, "stopping "+strconv.Itoa(first), p.line(), "the old child gets SIGTERM once")
	second, rest := pidAndRest(t, p.line())
	require.NotEqual(t, first, second)
	require.Equal(t, "pw="+next, rest)
	p.waitStderr("secretgate: run: DB_PASSWORD changed (default/db): restarting sh\n")
	require.False(t, testenv.Alive(first))

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, "stopping "+strconv.Itoa(second), p.line())
	require.Equal(t, 3, p.exit(), "the child's exit status is run's")
	requireQuiet(t, p, canary, next)
	requireNoCanary(t, srv, canary)
}

// Masking covers the new values after a restart and keeps the old ones:
// the second child prints the first password (which it got from a plain
// variable) and its own, and both are concealed.
func TestRunWatchMasksOldAndNew(t *testing.T) {
	srv, canary := runEnv(t)
	next := randomCanary(t) + "-v2"
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password", "OLD=" + canary}, t.TempDir(),
		"run", "--watch", "--", "sh", "-c", `echo "pid=$$ pw=$DB_PASSWORD old=$OLD len=${#DB_PASSWORD}"; while :; do sleep 0.05; done`)
	first, rest := pidAndRest(t, p.line())
	require.Equal(t, "pw="+concealed+" old="+concealed+" len="+strconv.Itoa(len(canary)), rest)

	putDB(t, srv, map[string]string{"user": "app", "password": next})
	second, rest := pidAndRest(t, p.line())
	require.NotEqual(t, first, second)
	require.Equal(t, "pw="+concealed+" old="+concealed+" len="+strconv.Itoa(len(next)), rest)
	requireQuiet(t, p, canary, next)
	requireNoCanary(t, srv, canary)
}

// signal:USR1 sends USR1 once per change and does not restart; a signal
// sent to run still reaches the child once; a child that exits by itself
// ends run with its status and is not started again.
func TestRunWatchSignal(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		cirequire.Unavailable(t, "python3 is not on PATH: the child that counts signal deliveries is a Python script")
	}
	srv, canary := runEnv(t)
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password"}, t.TempDir(),
		"run", "--watch", "--on-change", "signal:USR1", "--", python, "-c", strings.ReplaceAll(signalCounter, "SIGINT", "SIGUSR1"))
	require.Equal(t, "ready", p.line())

	putDB(t, srv, map[string]string{"user": "app", "password": randomCanary(t)})
	require.Equal(t, "got 1", p.line())
	p.waitStderr("secretgate: run: DB_PASSWORD changed (default/db): sending SIGUSR1 to " + python + "\n")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGUSR1))
	require.Equal(t, "got 2", p.line())
	time.Sleep(300 * time.Millisecond) // a second copy of either would arrive now
	pids := testenv.ChildPIDs(p.cmd.Process.Pid)
	require.Len(t, pids, 1)
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGALRM))
	require.Equal(t, "total 2", p.line())
	require.Equal(t, 42, p.exit(), "the child exited by itself: run ends with its status")
	requireQuiet(t, p, canary)
	requireNoCanary(t, srv, canary)
}

// --on-change none only says which variable changed.
func TestRunWatchNone(t *testing.T) {
	srv, canary := runEnv(t)
	next := randomCanary(t)
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password"}, t.TempDir(),
		"run", "--watch", "--on-change", "none", "--", "sh", "-c", `echo "pid=$$ up"; while :; do sleep 0.05; done`)
	first, _ := pidAndRest(t, p.line())

	putDB(t, srv, map[string]string{"user": "app", "password": next})
	p.waitStderr("secretgate: run: DB_PASSWORD changed (default/db); --on-change none: sh keeps running as it is\n")
	p.noLine(500 * time.Millisecond)
	require.True(t, testenv.Alive(first))

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 128+int(syscall.SIGTERM), p.exit())
	requireQuiet(t, p, canary, next)
}

// A child that ignores the stop signal is killed after --kill-timeout,
// and the new one starts then.
func TestRunWatchKillTimeout(t *testing.T) {
	srv, canary := runEnv(t)
	next := randomCanary(t)
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password"}, t.TempDir(),
		"run", "--watch", "--no-mask", "--kill-timeout", "700ms", "--", "sh", "-c", `trap '' TERM; echo "pid=$$ pw=$DB_PASSWORD"; while :; do sleep 0.05; done`)
	first, _ := pidAndRest(t, p.line())

	start := time.Now()
	putDB(t, srv, map[string]string{"user": "app", "password": next})
	second, rest := pidAndRest(t, p.line())
	require.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond, "the restart waits for the kill timeout")
	require.NotEqual(t, first, second)
	require.Equal(t, "pw="+next, rest)
	require.False(t, testenv.Alive(first))
	p.waitStderr("secretgate: run: sh did not exit within 700ms of SIGTERM: sending SIGKILL\n")
	requireQuiet(t, p, canary, next)
}

// A change whose new version no longer resolves keeps the child running
// and says why, naming the variable and the reference; the next change
// that resolves restarts it.
func TestRunWatchFailedResolution(t *testing.T) {
	srv, canary := runEnv(t)
	next := randomCanary(t)
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password"}, t.TempDir(),
		"run", "--watch", "--no-mask", "--", "sh", "-c", `echo "pid=$$ pw=$DB_PASSWORD"; while :; do sleep 0.05; done`)
	first, _ := pidAndRest(t, p.line())

	putDB(t, srv, map[string]string{"user": "app"})
	p.waitStderr("secretgate: run: default/db changed, but resolving again failed: cannot resolve variable DB_PASSWORD=sg://default/db/password: ")
	p.waitStderr("; sh keeps running with the values it has\n")
	p.noLine(300 * time.Millisecond)
	require.True(t, testenv.Alive(first))

	putDB(t, srv, map[string]string{"user": "app", "password": next})
	second, rest := pidAndRest(t, p.line())
	require.NotEqual(t, first, second)
	require.Equal(t, "pw="+next, rest)
	requireQuiet(t, p, canary, next)
}

// --restart-jitter delays the restart by less than its bound.
func TestRunWatchJitterBounded(t *testing.T) {
	srv, _ := runEnv(t)
	const jitter = time.Second
	p := startCLI(t, srv, []string{"DB_PASSWORD=sg://default/db/password"}, t.TempDir(),
		"run", "--watch", "--restart-jitter", jitter.String(), "--", "sh", "-c", `echo "pid=$$"; while :; do sleep 0.05; done`)
	p.line()
	for range 3 {
		start := time.Now()
		putDB(t, srv, map[string]string{"user": "app", "password": randomCanary(t)})
		p.line()
		// A restart without jitter takes milliseconds here; the slack is
		// for a loaded machine, and well below a jitter of 2*D.
		require.Less(t, time.Since(start), jitter+700*time.Millisecond)
	}
}

// inject --watch renders again on a change, atomically and with its mode,
// then runs --exec, whose failure is printed without ending the watch; a
// change that does not resolve keeps the old file. SIGTERM ends it with 0.
func TestInjectWatchExec(t *testing.T) {
	srv, canary := runEnv(t)
	dir := t.TempDir()
	tpl := filepath.Join(dir, "config.tpl")
	require.NoError(t, os.WriteFile(tpl, []byte("pw: {{ sg://default/db/password }}\nuser: {{ sg://default/db/user?version=1 }}\n"), 0o600))
	out := filepath.Join(dir, "config.yaml")
	p := startCLI(t, srv, nil, dir, "inject", "-i", tpl, "-o", out, "--watch", "--exec", `echo ran >> hook.log; exit 3`)
	waitFile(t, out, "pw: "+canary+"\nuser: app\n")
	require.NoFileExists(t, filepath.Join(dir, "hook.log"), "--exec runs after a change, not after the first render")

	next := randomCanary(t)
	putDB(t, srv, map[string]string{"user": "someone-else", "password": next})
	waitFile(t, out, "pw: "+next+"\nuser: app\n")
	st, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	p.waitStderr("secretgate: inject: --exec failed (exit status 3); still watching\n")
	waitFile(t, filepath.Join(dir, "hook.log"), "ran\n")

	putDB(t, srv, map[string]string{"user": "app"})
	p.waitStderr("secretgate: inject: default/db changed, but " + out + " stays as it was: ")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "pw: "+next+"\nuser: app\n", string(got))

	last := randomCanary(t)
	putDB(t, srv, map[string]string{"user": "app", "password": last})
	waitFile(t, out, "pw: "+last+"\nuser: app\n")
	waitFile(t, filepath.Join(dir, "hook.log"), "ran\nran\n")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.exit())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 3, "template, output and hook.log: no temporary file left")
	requireQuiet(t, p, canary, next, last)
	requireNoCanary(t, srv, canary)
}

// inject --watch --signal HUP --pid sends HUP to the process after a new
// render; SIGINT ends it with 0.
func TestInjectWatchSignal(t *testing.T) {
	srv, canary := runEnv(t)
	dir := t.TempDir()
	tpl := filepath.Join(dir, "app.tpl")
	require.NoError(t, os.WriteFile(tpl, []byte("{{ sg://default/db/password }}"), 0o600))
	out := filepath.Join(dir, "app.conf")

	app := exec.Command("sh", "-c", `trap 'echo hup' HUP; echo ready; while :; do sleep 0.05; done`)
	appOut, err := app.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, app.Start())
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	rd := bufio.NewReader(appOut)
	l, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", l)

	p := startCLI(t, srv, nil, dir, "inject", "-i", tpl, "-o", out, "--watch", "--signal", "HUP", "--pid", strconv.Itoa(app.Process.Pid))
	waitFile(t, out, canary)
	next := randomCanary(t)
	putDB(t, srv, map[string]string{"user": "app", "password": next})
	waitFile(t, out, next)
	l, err = rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "hup\n", l)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	require.Equal(t, 0, p.exit())
	requireQuiet(t, p, canary, next)
}

// waitFile waits until path holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(watchWait)
	for {
		got, err := os.ReadFile(path)
		if err == nil && string(got) == want {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s never held the expected content", filepath.Base(path))
		time.Sleep(20 * time.Millisecond)
	}
}
