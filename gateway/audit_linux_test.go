package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/cirequire"
)

// mountTmpfs mounts a tmpfs of size bytes for the test. It needs root
// (CI runs as root); elsewhere the test is skipped, saying why.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		cirequire.Unavailable(t, "filling a small filesystem needs a tmpfs, and mounting one needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			cirequire.Unavailable(t, "mounting a tmpfs is not permitted here (a container without CAP_SYS_ADMIN?): "+err.Error())
		}
		require.NoError(t, err)
	}
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0)) })
	return dir
}

// fill writes a file until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer func() { require.NoError(t, f.Close()) }()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return
		}
	}
}

// A record that does not fit on a full filesystem is not left half
// written, and once space is back the next record is a line of its own.
func TestAuditNeverTornOnFullFilesystem(t *testing.T) {
	// Longer than a page, so the failing write always fills what is left
	// of the file's last page and then stops short.
	big := func(id string) AuditRecord {
		r := readRecord(id)
		r.Secret = strings.Repeat("s", 5000)
		return r
	}
	tests := []struct {
		name string
		// truncateFails makes removing the partial record fail until the
		// test lets it succeed.
		truncateFails bool
	}{
		{"partial record removed at once", false},
		{"partial record removed by a later write", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := mountTmpfs(t, "64k")
			path, ballast := filepath.Join(dir, "audit.log"), filepath.Join(dir, "ballast")
			a := openTestAuditor(t, path, FsyncMutations)
			require.NoError(t, a.Write(readRecord("r1")))
			require.NoError(t, a.Write(readRecord("r2")))
			errTruncate := errors.New("truncate refused by the test")
			if tc.truncateFails {
				a.mu.Lock()
				a.truncate = func(*os.File, int64) error { return errTruncate }
				a.mu.Unlock()
			}

			fill(t, ballast)
			err := a.Write(big("full"))
			require.ErrorContains(t, err, "record not written")
			require.ErrorIs(t, err, syscall.ENOSPC)
			require.NoError(t, os.Remove(ballast))

			if tc.truncateFails {
				require.ErrorIs(t, err, errTruncate)
				torn, rerr := os.ReadFile(path)
				require.NoError(t, rerr)
				require.NotEqual(t, byte('\n'), torn[len(torn)-1], "the test needs a partial record to remain")
				err := a.Write(readRecord("refused"))
				require.ErrorContains(t, err, "record not written")
				require.ErrorIs(t, err, errTruncate)
				after, rerr := os.ReadFile(path)
				require.NoError(t, rerr)
				require.Equal(t, torn, after, "nothing is appended to a partial record")
				a.mu.Lock()
				a.truncate = (*os.File).Truncate
				a.mu.Unlock()
			} else {
				require.Equal(t, []string{"r1", "r2"}, requestIDs(auditLines(t, path)))
			}

			require.NoError(t, a.Write(big("r3")))
			require.NoError(t, a.Write(readRecord("r4")))
			recs := auditLines(t, path)
			require.Equal(t, []string{"r1", "r2", "r3", "r4"}, requestIDs(recs))
			require.Equal(t, big("r3").Secret, recs[2].Secret)
		})
	}
}

// audit.path on a pipe (/dev/stdout in a container): mutation records,
// which the default policy fsyncs, are written, not refused with EINVAL.
func TestAuditToPipe(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	lines := make(chan string, 4)
	go func() {
		buf := make([]byte, 4096)
		n, _ := r.Read(buf)
		lines <- string(buf[:n])
	}()
	for _, policy := range []FsyncPolicy{FsyncMutations, FsyncAlways} {
		a, err := OpenFileAuditor(fmt.Sprintf("/proc/self/fd/%d", w.Fd()), policy)
		require.NoError(t, err, policy)
		require.NoError(t, a.Write(AuditRecord{Subject: "alice", Action: ActionUpdate, Phase: "intent", Project: "p", Secret: "s"}), policy)
		require.NoError(t, a.Close())
	}
	require.Contains(t, <-lines, `"subject":"alice"`)
}
