// Package proctest stops and inspects processes for tests that make a
// plugin hang (SIGSTOP) and check that nothing is left behind. It reads
// Linux's /proc.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Stop stops pid with SIGSTOP and waits until every thread of it has
// stopped: the stop is asynchronous, and a thread still running could yet
// answer a call. Its cleanup SIGKILLs the process whatever the test did, so
// that a failing test leaves no stopped process behind (cleanups run last
// registered first: this one before those of whatever started it).
func Stop(t testing.TB, pid int) {
	t.Helper()
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	require.Eventually(t, func() bool { return allThreadsStopped(pid) }, 10*time.Second, time.Millisecond, "process %d did not stop", pid)
}

func allThreadsStopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, f := range stats {
		if State(f) != 'T' {
			return false
		}
	}
	return true
}

// State is the state letter of a /proc stat file, 0 when unreadable.
func State(statFile string) byte {
	stat, err := os.ReadFile(statFile)
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(stat, ')') // the state follows the command name
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	st := State(fmt.Sprintf("/proc/%d/stat", pid))
	return st != 0 && st != 'Z' && st != 'X'
}
