//go:build !linux

package sdk

import "os/exec"

// On other systems the plugin runs in the host's process group; go-plugin's
// Kill ends the plugin process itself.
func setProcAttr(*exec.Cmd) {}

func killGroup(int) {}
