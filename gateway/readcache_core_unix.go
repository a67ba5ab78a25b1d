//go:build unix

package gateway

import "syscall"

// setNoCoreDumps sets RLIMIT_CORE to 0, soft and hard: the process (and the
// plugins it starts afterwards) can never dump core again.
func setNoCoreDumps() error {
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}
