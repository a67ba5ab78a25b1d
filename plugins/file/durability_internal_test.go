package file

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// An acknowledged write must survive a power cut, so every commit is
// fsync'd. A test that kills the process cannot tell: the page cache
// outlives the process, and bbolt offers no hook to count its fdatasync
// calls. So the sync options of the database are read back, as production
// opens it (New, then Configure through the plugin's settings), on each way
// Configure opens a file. NoFreelistSync is not checked: it only makes bbolt
// rebuild the freelist at open, committed data is fsync'd either way.
func TestDatabaseSyncsEveryCommit(t *testing.T) {
	f := newIFixture(t)
	newKey := filepath.Join(filepath.Dir(f.db), "new.key")
	b, ok := New().(*Backend)
	require.True(t, ok, "New returns the file backend")
	t.Cleanup(func() { _ = b.Close() })
	for _, tc := range []struct {
		name     string
		settings map[string]string
	}{
		{"a new database", f.settings()},
		{"an existing database", f.settings()},
		{"a key rotation", f.settings(SettingKeyFile, newKey, SettingPreviousKeyFile, f.key)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, b.Configure(context.Background(), tc.settings))
			iwrite(t, b, "p", "s", map[string]string{"k": "v"})
			b.mu.RLock()
			defer b.mu.RUnlock()
			require.NotNil(t, b.db)
			require.False(t, b.db.NoSync, "every commit must be fsync'd")
			require.False(t, b.db.NoGrowSync, "growing the file must be fsync'd (ext3/ext4 lose the new size otherwise)")
		})
	}
}
