// Package childproc starts test servers (PostgreSQL, Vault) so that they
// die with the test process.
package childproc

import (
	"os/exec"
	"runtime"
)

// Start starts cmd from a goroutine locked to its own OS thread, which
// lives until the process exits, and returns a channel closed then.
//
// Why: Linux's parent-death signal (SysProcAttr.Pdeathsig) fires when the
// thread that forked the child ends, not the process. Forked from an
// ordinary goroutine, the server could be killed whenever the Go runtime
// retires that thread, mid-test.
func Start(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}
