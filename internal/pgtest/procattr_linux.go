package pgtest

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs the command as cred (nil: the current user) and asks the
// kernel to stop it, as PostgreSQL's immediate shutdown does, if the test
// process dies without its cleanups.
func setProcAttr(cmd *exec.Cmd, cred *syscall.Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
