package gateway

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A deferred record is written at once and synced by nobody until Sync,
// which returns only after a sync that started after the record was
// written: the pending batch's, or the one running when Sync is called
// with nothing pending.
func TestAuditWriteDeferredAndSync(t *testing.T) {
	t.Run("Sync syncs what is pending", func(t *testing.T) {
		a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), nil)
		b, err := a.WriteDeferred(intentRecord("d1"))
		require.NoError(t, err, "a deferred record never waits for a sync")
		synced, _ := b.synced()
		require.False(t, synced)
		require.Equal(t, 0, g.syncs())
		require.True(t, recordIDs(a.f)["d1"], "written before WriteDeferred returns")

		done := make(chan error, 1)
		go func() { done <- a.Sync() }()
		<-g.started
		select {
		case <-done:
			t.Fatal("Sync returned before its fsync")
		case <-time.After(50 * time.Millisecond):
		}
		g.open()
		require.NoError(t, within(t, done, "Sync"))
		require.True(t, g.coveredBySync("d1"))
		synced, err = b.synced()
		require.True(t, synced)
		require.NoError(t, err)
	})

	t.Run("Sync waits for the running sync that holds the record", func(t *testing.T) {
		a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), nil)
		_, err := a.WriteDeferred(intentRecord("d1"))
		require.NoError(t, err)
		wrote := make(chan error, 1)
		go func() { wrote <- a.Write(intentRecord("m1")) }() // leads a sync of d1 and m1
		<-g.started
		done := make(chan error, 1)
		go func() { done <- a.Sync() }() // nothing pending: the running sync is d1's
		select {
		case <-done:
			t.Fatal("Sync returned while the sync of its record ran")
		case <-time.After(50 * time.Millisecond):
		}
		g.open()
		require.NoError(t, within(t, done, "Sync"))
		require.NoError(t, within(t, wrote, "Write"))
		require.True(t, g.coveredBySync("d1"))
		require.Equal(t, 1, g.syncs(), "one fsync served both")
	})

	t.Run("a failed sync fails Sync", func(t *testing.T) {
		boom := errors.New("EIO")
		a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), boom)
		b, err := a.WriteDeferred(intentRecord("d1"))
		require.NoError(t, err)
		g.open()
		require.ErrorIs(t, a.Sync(), boom)
		done, err := b.synced()
		require.True(t, done)
		require.ErrorIs(t, err, boom, "the batch keeps the failure: its receipts must not be forgotten")
		require.NoError(t, a.Sync(), "nothing written since")
	})

	t.Run("nothing written, nothing synced", func(t *testing.T) {
		a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), nil)
		require.NoError(t, a.Sync())
		require.Equal(t, 0, g.syncs())
		require.NoError(t, a.Close())
		require.Error(t, a.Sync(), "a closed log")
	})
}
