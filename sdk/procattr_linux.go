package sdk

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the plugin in a process group of its own, so that Kill
// can take down anything the plugin started, and asks the kernel to kill it
// if the thread that started it dies (see Launch: that thread lives as long
// as the plugin), so that a crashed host leaves no plugin behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills what is left of the plugin's process group.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
