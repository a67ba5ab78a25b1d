//go:build !linux && !windows

package pgtest

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs the command as cred (nil: the current user).
func setProcAttr(cmd *exec.Cmd, cred *syscall.Credential) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
}
