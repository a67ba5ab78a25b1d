package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Many writers of synced and unsynced records while the log is rotated
// (with and without Reopen) and finally closed: every record whose Write
// succeeded is in exactly one file, exactly once, after every record its
// writer handed in before it (files read in rotation order), and no file
// ends in or holds a partial line. Run under -race, this also checks the
// queue, its riders and the hand-offs between sync leaders.
func TestAuditConcurrentWritersAndRotations(t *testing.T) {
	const writers, rotations, minPerWriter = 16, 8, 20
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, err := openFileAuditor(path, FsyncMutations, 5*time.Millisecond)
	require.NoError(t, err)

	stop := make(chan struct{})
	acked := make([][]string, writers) // ids whose Write returned nil, per writer
	handed := make([]int, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					if i >= minPerWriter {
						return
					}
				default:
				}
				id := fmt.Sprintf("w%02d-%05d", w, i)
				rec := intentRecord(id)
				if i%3 == 2 {
					rec = readRecord(id) // not synced at once: written at once, after the queue
				}
				handed[w]++
				if err := a.Write(rec); err == nil {
					acked[w] = append(acked[w], id)
				}
			}
		})
	}
	var rotated []string
	for r := range rotations {
		// Renamed without Reopen, the path is missing until the next
		// record makes it again.
		require.Eventually(t, func() bool { _, err := os.Stat(path); return err == nil }, 10*time.Second, time.Millisecond)
		time.Sleep(2 * time.Millisecond)
		name := filepath.Join(dir, "audit.log."+strconv.Itoa(r))
		require.NoError(t, os.Rename(path, name))
		rotated = append(rotated, name)
		if r%2 == 0 {
			require.NoError(t, a.Reopen())
		}
	}
	close(stop)
	wg.Wait()
	require.NoError(t, a.Close())

	var lines []string
	for _, f := range append(rotated, path) {
		if _, err := os.Stat(f); os.IsNotExist(err) {
			continue // the last rotation had no Reopen and no record came after it
		}
		lines = append(lines, requestIDs(auditLines(t, f))...)
	}
	seen := map[string]int{}
	for i, id := range lines {
		_, dup := seen[id]
		require.False(t, dup, "%s is in the log twice", id)
		seen[id] = i
	}
	for w, ids := range acked {
		require.Len(t, ids, handed[w], "writer %d: no Write failed", w)
		prev := -1
		for _, id := range ids {
			at, ok := seen[id]
			require.True(t, ok, "%s was acknowledged but is in no file", id)
			require.Greater(t, at, prev, "writer %d: %s is before a record handed in earlier", w, id)
			prev = at
		}
	}
	for _, id := range lines {
		require.True(t, strings.HasPrefix(id, "w"), "an unknown record: %s", id)
	}
}
