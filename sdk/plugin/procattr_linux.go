package plugin

import (
	"os"
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

// killGroup SIGKILLs the plugin's process group: the plugin, stopped or
// not, and whatever it started.
func killGroup(proc *os.Process) {
	if proc != nil && proc.Pid > 0 {
		_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
	}
}
