//go:build unix

package main

import (
	"bufio"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
)

func TestRunWatchFlagErrors(t *testing.T) {
	t.Setenv(envToken, "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"on-change without watch", []string{"--on-change", "none"}, "--on-change applies to --watch"},
		{"stop-signal without watch", []string{"--stop-signal", "INT"}, "--stop-signal applies to --watch"},
		{"kill-timeout without watch", []string{"--kill-timeout", "1s"}, "--kill-timeout applies to --watch"},
		{"restart-jitter without watch", []string{"--restart-jitter", "1s"}, "--restart-jitter applies to --watch"},
		{"default value given without watch", []string{"--on-change", "restart"}, "--on-change applies to --watch"},
		{"unknown action", []string{"--watch", "--on-change", "reload"}, `--on-change "reload": want restart, signal:NAME`},
		{"unknown signal", []string{"--watch", "--on-change", "signal:NOPE"}, `--on-change "signal:NOPE": unknown signal "NOPE"`},
		{"empty signal", []string{"--watch", "--on-change", "signal:"}, `--on-change "signal:": unknown signal`},
		{"unknown stop signal", []string{"--watch", "--stop-signal", "BOGUS"}, `--stop-signal "BOGUS": unknown signal`},
		{"stop-signal with none", []string{"--watch", "--on-change", "none", "--stop-signal", "INT"}, "--stop-signal applies to --on-change restart"},
		{"kill-timeout with signal", []string{"--watch", "--on-change", "signal:HUP", "--kill-timeout", "1s"}, "--kill-timeout applies to --on-change restart"},
		{"negative kill-timeout", []string{"--watch", "--kill-timeout", "-1s"}, "--kill-timeout -1s: must not be negative"},
		{"negative jitter", []string{"--watch", "--restart-jitter", "-1s"}, "--restart-jitter -1s: must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(append(append([]string{"run"}, tc.args...), "--", "true"))
			err := root.Execute()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, exitUsage, exitCode(err))
		})
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
	}{
		{"HUP", syscall.SIGHUP}, {"SIGHUP", syscall.SIGHUP}, {"hup", syscall.SIGHUP},
		{"usr1", syscall.SIGUSR1}, {"TERM", syscall.SIGTERM}, {"KILL", syscall.SIGKILL},
	} {
		got, err := parseSignal(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"", "SIG", "1", "HUPP", "sig hup"} {
		_, err := parseSignal(bad)
		require.Error(t, err, bad)
	}
}

func TestNamesGlob(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"db"}, "db"},
		{[]string{"stripe-live", "stripe-test"}, "stripe-*"},
		{[]string{"db", "db-replica"}, "db*"},
		{[]string{"api", "db"}, ""},
	} {
		require.Equal(t, tc.want, namesGlob(tc.names), "%v", tc.names)
	}
}

func TestWatchTargets(t *testing.T) {
	base := newChildEnv()
	base.addEnviron([]string{
		"A=sg://p/db/password", "B=sg://p/db/user?version=3", "C=sg://q/pinned/k?version=1",
		"D=plain", "E=sg://q/api/key", "F=sg://malformed",
	})
	src := &envSource{base: base, secrets: []string{"r/whole", "not-a-spec"}}
	require.Equal(t, map[string]map[string]bool{
		"p": {"db": true}, "q": {"api": true}, "r": {"whole": true},
	}, src.targets(base), "pinned references never change; malformed ones are left to the resolution")
}

func TestChangedNames(t *testing.T) {
	a, b := newChildEnv(), newChildEnv()
	a.addEnviron([]string{"SAME=1", "CHANGED=old", "GONE=x"})
	b.addEnviron([]string{"SAME=1", "CHANGED=new", "ADDED=y"})
	require.Equal(t, []string{"ADDED", "CHANGED", "GONE"}, changedNames(a, b))
	require.Empty(t, changedNames(a, a.clone()))
}

func TestJitterDelay(t *testing.T) {
	require.Zero(t, jitterDelay(0))
	const d = 50 * time.Millisecond
	distinct := map[time.Duration]bool{}
	for range 1000 {
		j := jitterDelay(d)
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.Less(t, j, d, "the delay is drawn in [0, D)")
		distinct[j] = true
	}
	require.Greater(t, len(distinct), 900, "the delay is random")
}

// watchHarness runs the watch loop on `sh -c script` with a resolution the
// test controls: X is whatever value holds.
type watchHarness struct {
	w     *watching
	value atomic.Value
	calls atomic.Int32
	lines chan string
	log   syncbuf.Buffer
	done  chan int
	pids  []int // every child seen, killed when the test ends
}

func startWatchLoop(t *testing.T, script string, opts watchOptions) *watchHarness {
	t.Helper()
	h := &watchHarness{lines: make(chan string, 16), done: make(chan int, 1)}
	h.value.Store("v1")
	envWith := func(x string) *childEnv {
		e := newChildEnv()
		e.addEnviron([]string{"PATH=" + os.Getenv("PATH"), "X=" + x})
		return e
	}
	r, wr, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = wr.Close() })
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// A test that fails may leave a child running: the loop does not stop
	// it when its context ends.
	t.Cleanup(func() {
		for {
			select {
			case l := <-h.lines:
				if m := shLine.FindStringSubmatch(l); m != nil {
					pid, _ := strconv.Atoi(m[1])
					h.pids = append(h.pids, pid)
				}
				continue
			case <-time.After(100 * time.Millisecond):
			}
			break
		}
		for _, pid := range h.pids {
			// Only a process that is still our child: a pid reaped
			// earlier may belong to another process by now.
			if ourChild(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	h.w = &watching{
		sup: &supervisor{args: []string{"sh", "-c", script}, path: "/bin/sh", file: [2]*os.File{wr, os.Stderr}, log: &h.log},
		resolve: func(context.Context) (*childEnv, []string, error) {
			h.calls.Add(1)
			return envWith(h.value.Load().(string)), nil, nil
		},
		feed: newChangeFeed(ctx), opts: opts, env: envWith("v1"), name: "sh",
	}
	go func() {
		code, err := h.w.loop(ctx)
		if err != nil {
			t.Errorf("loop: %v", err)
		}
		h.done <- code
	}()
	return h
}

var shLine = regexp.MustCompile(`^pid=(\d+) x=(\S+)$`)

// next reads the child's next "pid=N x=V" line.
func (h *watchHarness) next(t *testing.T) (int, string) {
	t.Helper()
	select {
	case l := <-h.lines:
		m := shLine.FindStringSubmatch(l)
		require.NotNil(t, m, l)
		pid, _ := strconv.Atoi(m[1])
		h.pids = append(h.pids, pid)
		return pid, m[2]
	case <-time.After(10 * time.Second):
		t.Fatalf("no line from the child; log: %s", h.log.String())
		return 0, ""
	}
}

func (h *watchHarness) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case code := <-h.done:
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("the loop did not end; log: %s", h.log.String())
		return -1
	}
}

// Changes during the jitter delay are one resolution and one restart, with
// the values of the last change, and no restart comes before the delay.
func TestWatchCoalescesChangesDuringJitter(t *testing.T) {
	const delay = 300 * time.Millisecond
	saved := jitterDelay
	jitterDelay = func(time.Duration) time.Duration { return delay }
	t.Cleanup(func() { jitterDelay = saved })
	h := startWatchLoop(t, `echo "pid=$$ x=$X"; while :; do sleep 0.05; done`,
		watchOptions{stopSignal: syscall.SIGTERM, killTimeout: 5 * time.Second, jitter: time.Second})
	first, x := h.next(t)
	require.Equal(t, "v1", x)

	start := time.Now()
	h.value.Store("v2")
	h.w.feed.note("p/a")
	h.w.feed.note("p/b")
	time.Sleep(delay / 3)
	h.value.Store("v3")
	h.w.feed.note("p/a")
	second, x := h.next(t)
	require.GreaterOrEqual(t, time.Since(start), delay, "the restart waits for the jitter")
	require.NotEqual(t, first, second)
	require.Equal(t, "v3", x)
	require.EqualValues(t, 1, h.calls.Load(), "one resolution for three changes")
	require.Equal(t, "secretgate: run: X changed (p/a, p/b): restarting sh\n", h.log.String())

	// A change that leaves every value as it was does nothing.
	h.w.feed.note("p/a")
	select {
	case l := <-h.lines:
		t.Fatalf("restarted without a new value: %q", l)
	case <-time.After(delay + 300*time.Millisecond):
	}
	require.EqualValues(t, 2, h.calls.Load())

	require.NoError(t, syscall.Kill(second, syscall.SIGKILL))
	require.Equal(t, 128+int(syscall.SIGKILL), h.exitCode(t), "a child that dies by itself ends the loop with its status")
}

// SIGTERM sent to secretgate while a restart waits for the child to stop
// reaches the child and cancels the restart: the loop ends with the
// child's status instead of starting it again.
func TestWatchSignalDuringRestartEnds(t *testing.T) {
	saved := jitterDelay
	jitterDelay = func(time.Duration) time.Duration { return 0 }
	t.Cleanup(func() { jitterDelay = saved })
	// The first TERM (the stop signal) is ignored, the second ends it.
	h := startWatchLoop(t, `n=0; trap 'n=$((n+1)); [ $n -ge 2 ] && exit 5' TERM; echo "pid=$$ x=$X"; while :; do sleep 0.05; done`,
		watchOptions{stopSignal: syscall.SIGTERM, killTimeout: 20 * time.Second})
	h.next(t)
	h.value.Store("v2")
	h.w.feed.note("p/a")
	deadline := time.Now().Add(10 * time.Second)
	for h.log.String() == "" {
		require.True(t, time.Now().Before(deadline), "no restart began")
		time.Sleep(10 * time.Millisecond)
	}
	// The stop signal was sent just before the log line: let the child's
	// trap count it before the second one arrives.
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	require.Equal(t, 5, h.exitCode(t))
	select {
	case l := <-h.lines:
		t.Fatalf("started again after SIGTERM: %q", l)
	default:
	}
}

// ourChild says whether pid is a child of this test process, from
// /proc/PID/stat (false where there is none).
func ourChild(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Fields after the command name, which may hold spaces, in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 1 && f[1] == strconv.Itoa(os.Getpid())
}
