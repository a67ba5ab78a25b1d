//go:build !linux

package plugin

import (
	"os"
	"os/exec"
)

// On other systems the plugin runs in the host's process group.
func setProcAttr(*exec.Cmd) {}

// killGroup kills the plugin process itself. os.Process knows once it was
// reaped, so a late call never hits a reused pid.
func killGroup(proc *os.Process) {
	if proc != nil {
		_ = proc.Kill()
	}
}
