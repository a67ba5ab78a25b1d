package plugin

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// directSupported: the direct channel needs SO_PEERCRED, which is Linux's.
const directSupported = true

// checkPeer requires the process at the other end of c to be pid, running
// as this process's user. The kernel records both when the connection is
// made; the peer cannot choose them.
func checkPeer(c *net.UnixConn, pid int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("reading peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("reading peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("reading peer credentials: %w", credErr)
	}
	if int(cred.Pid) != pid || int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer is pid %d uid %d, want pid %d uid %d", cred.Pid, cred.Uid, pid, os.Getuid())
	}
	return nil
}

// checkPrivateDir requires dir to be a directory, not a symlink, owned by
// this process's user and closed to everyone else (0700).
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case fi.Mode().Perm() != 0o700:
		return fmt.Errorf("%s has mode %o, want 700", dir, fi.Mode().Perm())
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s is not owned by uid %d", dir, os.Getuid())
	}
	return nil
}
