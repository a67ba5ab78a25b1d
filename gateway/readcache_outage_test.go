package gateway

// The read cache when the backend fails: which errors it masks, stale
// serving through an outage, and writes that fail.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// TestReadCacheErrors: outages are hidden by stale values no older than
// stale_if_error; not found and permission errors never are.
func TestReadCacheErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		age      time.Duration // since the value was cached
		stale    bool          // served stale, with the note
		want     error         // else this error
		purged   bool          // the secret's entries are gone
		describe bool          // Describe behaves the same
	}{
		{"unavailable", fmt.Errorf("plugin: %w", sdk.ErrUnavailable), 10 * time.Minute, true, nil, false, true},
		{"timeout", fmt.Errorf("rpc: %w", context.DeadlineExceeded), 10 * time.Minute, true, nil, false, true},
		{"unavailable past stale_if_error", sdk.ErrUnavailable, 61 * time.Minute, false, sdk.ErrUnavailable, false, true},
		{"not found", sdk.NotFound("p", "a"), 10 * time.Minute, false, sdk.ErrNotFound, true, true},
		{"permission", fmt.Errorf("aws: %w", sdk.ErrPermission), 10 * time.Minute, false, sdk.ErrPermission, true, true},
		{"throttled is not an outage", sdk.Throttled("a quota", time.Second), 10 * time.Minute, false, sdk.ErrThrottled, false, true},
	}
	for _, tc := range tests {
		for _, op := range []string{"read", "describe"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				r := newCacheRig(t, testCacheSettings)
				r.write(t, "a", "1")
				r.clock.advance(tc.age)
				r.fake.setFail(tc.err)
				ctx, note := client()
				var err error
				var version int64
				if op == "read" {
					var sec sdk.Secret
					sec, err = r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a"})
					version = sec.Version
					if err == nil {
						require.Equal(t, "1", sec.Data["v"])
					}
				} else {
					var m sdk.Meta
					m, err = r.b.Describe(ctx, sdk.Ref{Project: "p", Name: "a"})
					version = m.Version
				}
				if tc.stale {
					require.NoError(t, err)
					require.Equal(t, int64(1), version)
					require.Equal(t, int64(tc.age/time.Second)+1, note.stale.Load(), "the age is reported")
					require.Equal(t, uint64(1), r.c.stats.stale.Load())
				} else {
					require.ErrorIs(t, err, tc.want)
					require.Zero(t, note.stale.Load())
					require.Zero(t, r.c.stats.stale.Load())
				}
				r.c.mu.Lock()
				_, cached := r.c.recs[secretKey{"p", "a"}]
				r.c.mu.Unlock()
				require.Equal(t, !tc.purged, cached, "entries kept")
			})
		}
	}
}

// TestReadCacheOutage: during an outage a secret never cached fails,
// versions read by number and the latest values are served (stale) without
// waiting for the backend, one refresh per secret checks whether it is back,
// and when it is, values are fresh again.
func TestReadCacheOutage(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	r.write(t, "a", "1")
	r.write(t, "b", "1")
	r.clock.advance(time.Minute)
	r.fake.setFail(sdk.ErrUnavailable)

	ctx, note := client()
	_, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "never-cached"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.Zero(t, note.stale.Load())
	require.Equal(t, "1", r.read(t, "a", 1).Data["v"], "a version by number needs no backend")
	require.Equal(t, "1", r.read(t, "a", 0).Data["v"], "stale")
	reads := r.fake.reads.Load()

	// The backend now hangs: readers within the down window do not wait,
	// and each secret has one refresh at a time.
	release := r.fake.hold()
	for range 20 {
		for _, name := range []string{"a", "b"} {
			ctx, note := client()
			sec, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: name})
			require.NoError(t, err)
			require.Equal(t, "1", sec.Data["v"])
			require.Equal(t, int64(61), note.stale.Load())
		}
	}
	require.Eventually(t, func() bool { return r.fake.reads.Load() == reads+2 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, reads+2, r.fake.reads.Load(), "one refresh per secret in flight")

	// Back: the refreshes succeed and the values are fresh again.
	r.fake.setFail(nil)
	r.fake.behind(t, "a", "2")
	release()
	require.Eventually(t, func() bool {
		ctx, note := client()
		sec, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a"})
		return err == nil && sec.Data["v"] == "2" && note.stale.Load() == 0
	}, 5*time.Second, time.Millisecond)

	// Writes during an outage fail; the value stays as it was (stale).
	r.fake.setFail(sdk.ErrUnavailable)
	_, err = r.b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"v": "3"}, Mode: sdk.WriteReplace})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	ctx, note = client()
	sec, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a"})
	require.NoError(t, err)
	require.Equal(t, "2", sec.Data["v"])
	require.Equal(t, int64(1), note.stale.Load(), "the failed write expired the pointer: the read tried the backend")
}

// TestReadCacheMutations: deletes drop a secret at once; a create drops what
// was cached of an older incarnation; a failed write whose outcome is
// unknown makes the next read ask the backend.
func TestReadCacheMutations(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	r.write(t, "a", "1")
	r.write(t, "a", "2")
	require.NoError(t, r.b.Delete(context.Background(), sdk.Ref{Project: "p", Name: "a"}))
	r.c.mu.Lock()
	require.Empty(t, r.c.recs)
	require.Zero(t, r.c.lru.Len())
	require.Zero(t, r.c.bytes)
	r.c.mu.Unlock()
	ctx, _ := client()
	_, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a"})
	require.ErrorIs(t, err, sdk.ErrNotFound)

	m, err := r.b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"v": "new"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)
	require.Equal(t, int64(1), m.Version)
	require.Equal(t, "new", r.read(t, "a", 1).Data["v"])
	_, err = r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a", Version: 2})
	require.ErrorIs(t, err, sdk.ErrNotFound, "version 2 of the deleted incarnation is gone")

	// Deleted behind the gateway's back and created again through it, in
	// the same second: the create alone proves the cached versions old.
	r.write(t, "b", "old-1")
	r.write(t, "b", "old-2")
	require.NoError(t, r.fake.memBackend.Delete(context.Background(), sdk.Ref{Project: "p", Name: "b"}))
	_, err = r.b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: "b", Data: map[string]string{"v": "new-1"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)
	require.Equal(t, "new-1", r.read(t, "b", 0).Data["v"])
	_, err = r.b.Read(ctx, sdk.Ref{Project: "p", Name: "b", Version: 2})
	require.ErrorIs(t, err, sdk.ErrNotFound)

	// A timeout after the backend committed: the next read asks it.
	r.fake.behind(t, "a", "committed")
	r.fake.setFail(context.DeadlineExceeded)
	_, err = r.b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"v": "committed"}, Mode: sdk.WriteReplace})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	r.fake.setFail(nil)
	require.Equal(t, "committed", r.read(t, "a", 0).Data["v"])

	// A refused check-and-set proves the cache old too.
	r.fake.behind(t, "a", "other")
	_, err = r.b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"v": "x"}, Mode: sdk.WriteReplace, ExpectedVersion: 2})
	require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	require.Equal(t, "other", r.read(t, "a", 0).Data["v"])
}
