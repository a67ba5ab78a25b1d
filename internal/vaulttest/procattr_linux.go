package vaulttest

import (
	"os/exec"
	"syscall"
)

// setProcAttr asks the kernel to kill the server if the test process dies
// without its cleanups, so that no Vault outlives a crashed test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
