package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/internal/testenv"
)

const concealed = "<concealed by secretgate>"

// runEnv starts a gateway with an admin and a reader narrowed to "app-*",
// and writes the secrets the tests resolve; canary is the password.
func runEnv(t *testing.T) (*testenv.Server, string) {
	t.Helper()
	srv := testenv.Start(t, testenv.Options{Subjects: []testenv.Subject{
		{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
		{Name: "narrow", Grants: []testenv.Grant{{Project: "default", Role: "reader", Secrets: []string{"app-*"}}}},
	}})
	canary := randomCanary(t)
	res := srv.CLI(t, srv.Token("admin"), canary, "secret", "create", "db", "user=app", "password=-")
	require.Equal(t, 0, res.Code, res.Stderr)
	res = srv.CLI(t, srv.Token("admin"), "", "secret", "create", "stripe", "api-key=sk_"+canary[6:], "webhook.secret=whsec_"+canary[6:])
	require.Equal(t, 0, res.Code, res.Stderr)
	return srv, canary
}

// runCLI runs the binary against srv with extra environment.
func runCLI(t *testing.T, srv *testenv.Server, token string, env []string, args ...string) testenv.CLIResult {
	t.Helper()
	full := append(os.Environ(), "SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+token)
	return testenv.Run(t, append(full, env...), t.TempDir(), "", args...)
}

func TestRunEnvironment(t *testing.T) {
	srv, canary := runEnv(t)
	admin := srv.Token("admin")
	printEnv := []string{"run", "--", "sh", "-c", `echo "pw=$DB_PASSWORD user=$DB_USER"; echo "err=$DB_PASSWORD" >&2`}
	env := []string{"DB_PASSWORD=sg://default/db/password", "DB_USER=sg://default/db/user?version=1"}

	// Output that is not a terminal is masked by default, on both streams;
	// "app" is shorter than 4 characters and stays.
	res := runCLI(t, srv, admin, env, printEnv...)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, "pw="+concealed+" user=app\n", res.Stdout)
	require.Equal(t, "err="+concealed+"\n", res.Stderr)

	// --no-mask: the child's values as they are.
	res = runCLI(t, srv, admin, env, append([]string{"run", "--no-mask"}, printEnv[1:]...)...)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, "pw="+canary+" user=app\n", res.Stdout)
	require.Equal(t, "err="+canary+"\n", res.Stderr)

	// A value split across writes is still masked.
	res = runCLI(t, srv, admin, env, "run", "--", "sh", "-c", `printf '%s' "$DB_PASSWORD" | cut -c1-12 | tr -d '\n'; sleep 0.2; printf '%s\n' "$DB_PASSWORD" | cut -c13-`)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, concealed+"\n", res.Stdout)

	// --env-file: references resolved, other values (and ${...}) as written;
	// --secret adds every key, with --prefix.
	dir := t.TempDir()
	envFile := filepath.Join(dir, "app.env")
	require.NoError(t, os.WriteFile(envFile, []byte("# comment\nexport A=sg://default/db/password\nB=\"plain value\"\nC='${NOT_EXPANDED}'\n\nD=bare # comment\n"), 0o600))
	res = runCLI(t, srv, admin, nil, "run", "--no-mask", "--env-file", envFile, "--secret", "default/stripe", "--prefix", "STRIPE_", "--",
		"sh", "-c", `printf '%s|%s|%s|%s|%s|%s\n' "$A" "$B" "$C" "$D" "$STRIPE_API_KEY" "$STRIPE_WEBHOOK_SECRET"`)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, canary+"|plain value|${NOT_EXPANDED}|bare|sk_"+canary[6:]+"|whsec_"+canary[6:]+"\n", res.Stdout)

	// --secret values are masked as well.
	res = runCLI(t, srv, admin, nil, "run", "--secret", "default/stripe", "--", "sh", "-c", `echo "$API_KEY"`)
	require.Equal(t, 0, res.Code, res.Stderr)
	require.Equal(t, concealed+"\n", res.Stdout)

	// Nothing written to disk: the working directory of the last run is
	// left as it was.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	requireNoCanary(t, srv, canary)
}

func TestRunUnresolvable(t *testing.T) {
	srv, canary := runEnv(t)
	marker := filepath.Join(t.TempDir(), "started")
	child := []string{"--", "sh", "-c", "touch " + marker}
	tests := []struct {
		name, token string
		env         []string
		code        int
		naming      []string
	}{
		{"missing key", "admin", []string{"OK=sg://default/db/user", "DB_X=sg://default/db/nokey"}, 4, []string{"DB_X", "sg://default/db/nokey"}},
		{"missing secret", "admin", []string{"DB_Y=sg://default/nope/k"}, 4, []string{"DB_Y", "sg://default/nope/k"}},
		{"malformed", "admin", []string{"BAD=sg://default/db"}, 2, []string{"BAD", "sg://default/db"}},
		{"denied", "narrow", []string{"PW=sg://default/db/password"}, 3, []string{"PW", "sg://default/db/password"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, srv, srv.Token(tc.token), tc.env, append([]string{"run"}, child...)...)
			require.Equal(t, tc.code, res.Code, res.Stderr)
			for _, s := range tc.naming {
				require.Contains(t, res.Stderr, s)
			}
			require.NotContains(t, res.Stdout+res.Stderr, canary)
			require.NoFileExists(t, marker, "the child must not start")
		})
	}
	requireNoCanary(t, srv, canary)
}

func TestRunExitCodesAndSignals(t *testing.T) {
	srv, canary := runEnv(t)
	admin := srv.Token("admin")
	env := []string{"DB_PASSWORD=sg://default/db/password"}
	res := runCLI(t, srv, admin, env, "run", "--", "sh", "-c", "exit 7")
	require.Equal(t, 7, res.Code)
	require.Empty(t, res.Stderr, "the child's status needs no message")
	res = runCLI(t, srv, admin, env, "run", "--", "sh", "-c", "kill -TERM $$")
	require.Equal(t, 128+int(syscall.SIGTERM), res.Code)
	res = runCLI(t, srv, admin, env, "run", "--", "no-such-command-secretgate")
	require.Equal(t, 127, res.Code)

	// Each forwarded signal reaches the child once: it counts them.
	python, err := exec.LookPath("python3")
	if err != nil {
		cirequire.Unavailable(t, "python3 is not on PATH: the child that counts signal deliveries is a Python script")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(testenv.Binary(t), "run", "--", python, "-c", strings.ReplaceAll(signalCounter, "SIGINT", "SIG"+sigName(sig)))
			cmd.Env = append(os.Environ(), "SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+admin, env[0])
			// A session of its own: no controlling terminal, so no signal
			// is assumed to have come from one.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			// The child's stderr is written by exec's goroutine while the
			// test reads it for failure messages.
			var stderr syncbuf.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			rd := bufio.NewReader(out)
			line, err := rd.ReadString('\n')
			require.NoError(t, err, stderr.String())
			require.Equal(t, "ready\n", line)
			require.NoError(t, cmd.Process.Signal(sig))
			line, err = rd.ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "got 1\n", line)
			// SIGALRM is not forwarded: send it to the child (our grandchild)
			// directly, after a pause in which a second copy would arrive.
			time.Sleep(300 * time.Millisecond)
			pids := testenv.ChildPIDs(cmd.Process.Pid)
			require.Len(t, pids, 1)
			require.NoError(t, syscall.Kill(pids[0], syscall.SIGALRM))
			rest, err := io.ReadAll(rd)
			require.NoError(t, err)
			require.Equal(t, "total 1\n", string(rest))
			require.Error(t, cmd.Wait())
			require.Equal(t, 42, cmd.ProcessState.ExitCode())
		})
	}
	requireNoCanary(t, srv, canary)
}

func sigName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP",
		syscall.SIGQUIT: "QUIT", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2"}[s]
}

func TestInject(t *testing.T) {
	srv, canary := runEnv(t)
	admin := srv.Token("admin")
	dir := t.TempDir()
	tpl := filepath.Join(dir, "config.tpl")
	require.NoError(t, os.WriteFile(tpl, []byte("password: {{ sg://default/db/password }}\nuser: {{sg://default/db/user?version=1}}\nhome: ${HOME}\nname: {{ .Name }}\n"), 0o600))
	out := filepath.Join(dir, "config.yaml")

	res := runCLI(t, srv, admin, nil, "inject", "-i", tpl, "-o", out, "--mode", "0640")
	require.Equal(t, 0, res.Code, res.Stderr)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "password: "+canary+"\nuser: app\nhome: ${HOME}\nname: {{ .Name }}\n", string(got))
	st, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())
	require.NotContains(t, res.Stdout+res.Stderr, canary)

	// Default mode 0600; an existing file is replaced by rename (a new inode).
	before, err := os.Stat(out)
	require.NoError(t, err)
	res = runCLI(t, srv, admin, nil, "inject", "-i", tpl, "-o", out)
	require.Equal(t, 0, res.Code, res.Stderr)
	after, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), after.Mode().Perm())
	require.False(t, os.SameFile(before, after), "the output is replaced by a rename, not rewritten in place")

	// An unresolvable reference: non-zero, the output neither changed nor
	// created, no temporary file left.
	bad := filepath.Join(dir, "bad.tpl")
	require.NoError(t, os.WriteFile(bad, []byte("a: {{ sg://default/db/password }}\nb: {{ sg://default/db/nokey }}\n"), 0o600))
	require.NoError(t, os.WriteFile(out, []byte("old\n"), 0o600))
	res = runCLI(t, srv, admin, nil, "inject", "-i", bad, "-o", out)
	require.Equal(t, 4, res.Code, res.Stderr)
	require.Contains(t, res.Stderr, "sg://default/db/nokey")
	got, err = os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "old\n", string(got))
	fresh := filepath.Join(dir, "fresh.yaml")
	res = runCLI(t, srv, admin, nil, "inject", "-i", bad, "-o", fresh)
	require.Equal(t, 4, res.Code, res.Stderr)
	require.NoFileExists(t, fresh)
	// A malformed placeholder names its line.
	require.NoError(t, os.WriteFile(bad, []byte("a: 1\nb: {{ sg://default/db }}\n"), 0o600))
	res = runCLI(t, srv, admin, nil, "inject", "-i", bad, "-o", fresh)
	require.Equal(t, 2, res.Code, res.Stderr)
	require.Contains(t, res.Stderr, "bad.tpl:2")
	require.NoFileExists(t, fresh)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"config.tpl", "config.yaml", "bad.tpl"}, names, "no temporary file left behind")

	// Every reference is audited as a read.
	var reads int
	for _, rec := range srv.AuditRecords(t) {
		if rec["action"] == "secrets.read" && rec["secret"] == "db" && rec["outcome"] == "ok" {
			reads++
		}
	}
	require.GreaterOrEqual(t, reads, 4)
	requireNoCanary(t, srv, canary)
}

func requireNoCanary(t *testing.T, srv *testenv.Server, canary string) {
	t.Helper()
	require.NotContains(t, srv.Stdout()+srv.Stderr()+srv.Audit(), canary)
	require.NotContains(t, srv.Stdout()+srv.Stderr()+srv.Audit(), canary[6:])
}

// On a terminal, Ctrl-C reaches the child once: the terminal sends SIGINT
// to the whole foreground process group, the child included, and secretgate
// does not forward it a second time.
func TestRunCtrlCOnATerminal(t *testing.T) {
	srv, _ := runEnv(t)
	master, slave := openPTY(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		cirequire.Unavailable(t, "python3 is not on PATH: the child that counts signal deliveries is a Python script")
	}
	cmd := exec.Command(testenv.Binary(t), "run", "--", python, "-c", signalCounter)
	cmd.Env = append(os.Environ(), "SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+srv.Token("admin"), "DB_PASSWORD=sg://default/db/password")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A new session whose controlling terminal is the pty: secretgate's
	// process group is the terminal's foreground group, as in a shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.NoError(t, slave.Close())

	out := make(chan string, 64)
	go func() {
		defer close(out)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				out <- string(buf[:n])
			}
			if err != nil { // EIO once the last process holding the pty exits
				return
			}
		}
	}()
	var seen strings.Builder
	waitFor := func(s string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for !strings.Contains(seen.String(), s) {
			select {
			case chunk, ok := <-out:
				require.True(t, ok, "the terminal closed before %q; it showed %q", s, seen.String())
				seen.WriteString(chunk)
			case <-deadline:
				t.Fatalf("no %q on the terminal; it showed %q", s, seen.String())
			}
		}
	}
	waitFor("ready")
	_, err = master.Write([]byte{0x03}) // Ctrl-C
	require.NoError(t, err)
	waitFor("got 1")
	time.Sleep(300 * time.Millisecond) // a second copy would arrive now
	pids := testenv.ChildPIDs(cmd.Process.Pid)
	require.Len(t, pids, 1)
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGALRM))
	waitFor("total ")
	require.Contains(t, seen.String(), "total 1", "the child counted the signals it got")
	require.Error(t, cmd.Wait())
	require.Equal(t, 42, cmd.ProcessState.ExitCode())
}

// signalCounter counts every delivery of SIGINT. A shell's trap cannot:
// two SIGINTs that arrive before it runs its trap count once. Python's C
// handler writes one byte per delivery to the wakeup fd.
const signalCounter = `
import os, signal, sys
r, w = os.pipe()
os.set_blocking(w, False)
signal.set_wakeup_fd(w)
signal.signal(signal.SIGINT, lambda *a: None)
signal.signal(signal.SIGALRM, lambda *a: None)
print("ready", flush=True)
n = 0
while True:
    b = os.read(r, 1)[0]
    if b == signal.SIGINT:
        n += 1
        print("got %d" % n, flush=True)
    elif b == signal.SIGALRM:
        print("total %d" % n, flush=True)
        sys.exit(42)
`

// openPTY opens a pseudo-terminal pair, closed when the test ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		cirequire.Unavailable(t, "no /dev/ptmx: "+err.Error())
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { _ = master.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	require.NoError(t, err)
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = slave.Close() })
	return master, slave
}

// A command that leaves something running behind it (a daemon, a
// background job of a shell) still ends run: run waits a short while for
// the masked output to drain, not for every process that inherited it.
func TestRunEndsWhenTheCommandEnds(t *testing.T) {
	srv, _ := runEnv(t)
	for _, watch := range []bool{false, true} {
		args := []string{"run", "--mask"}
		if watch {
			args = append(args, "--watch")
		}
		args = append(args, "--", "sh", "-c", `echo "pw=$DB_PASSWORD"; sleep 30 & exit 3`)
		start := time.Now()
		res := runCLI(t, srv, srv.Token("admin"), []string{"DB_PASSWORD=sg://default/db/password"}, args...)
		require.Equal(t, 3, res.Code, "watch=%v: %s", watch, res.Stderr)
		require.Contains(t, res.Stdout, "pw=<concealed by secretgate>")
		require.Less(t, time.Since(start), 15*time.Second, "watch=%v: run waited for the background job", watch)
	}
}
