package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// cacheFake is a memBackend whose calls are counted and can be made to
// fail, wait or lag.
type cacheFake struct {
	*memBackend
	reads, describes atomic.Int64

	mu   sync.Mutex
	fail error         // every call but Ping fails with it when set
	gate chan struct{} // when set, Read waits until it closes
	// late: Read looks first and waits for the gate after, so that its
	// answer may be older than writes made meanwhile.
	late bool
	lag  time.Duration // Read answers up to this long after it looked
}

func newCacheFake() *cacheFake { return &cacheFake{memBackend: newMemBackend()} }

func (f *cacheFake) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *cacheFake) hold() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := make(chan struct{})
	f.gate = g
	return func() {
		f.mu.Lock()
		f.gate = nil
		f.mu.Unlock()
		close(g)
	}
}

// failing returns the error every call fails with, nil for none.
func (f *cacheFake) failing() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

func (f *cacheFake) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	f.reads.Add(1)
	f.mu.Lock()
	fail, gate, lag, late := f.fail, f.gate, f.lag, f.late
	f.mu.Unlock()
	var sec sdk.Secret
	var err error
	if late {
		sec, err = f.memBackend.Read(ctx, ref)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return sdk.Secret{}, ctx.Err()
		}
	}
	if fail != nil {
		return sdk.Secret{}, fail
	}
	if !late {
		sec, err = f.memBackend.Read(ctx, ref)
	}
	if lag > 0 {
		time.Sleep(sdk.Jitter(lag))
	}
	return sec, err
}

func (f *cacheFake) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	f.describes.Add(1)
	if fail := f.failing(); fail != nil {
		return sdk.Meta{}, fail
	}
	return f.memBackend.Describe(ctx, ref)
}

func (f *cacheFake) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if fail := f.failing(); fail != nil {
		return sdk.Meta{}, fail
	}
	return f.memBackend.Write(ctx, req)
}

func (f *cacheFake) Delete(ctx context.Context, ref sdk.Ref) error {
	if fail := f.failing(); fail != nil {
		return fail
	}
	return f.memBackend.Delete(ctx, ref)
}

// behind writes directly in the backend, as another gateway would.
func (f *cacheFake) behind(t *testing.T, name, value string) sdk.Meta {
	t.Helper()
	m, err := f.memBackend.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"v": value}, Mode: sdk.WriteUpsert})
	require.NoError(t, err)
	return m
}

// fakeClock is the cache's time in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type cacheRig struct {
	c     *readCache
	fake  *cacheFake
	clock *fakeClock
	b     sdk.Backend
}

func newCacheRig(t *testing.T, set cacheSettings) *cacheRig {
	t.Helper()
	c, err := newReadCache("be", set, &cacheStats{}, 5*time.Second)
	require.NoError(t, err)
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.now = clock.now
	c.jitter = func(time.Duration) time.Duration { return 0 }
	fake := newCacheFake()
	return &cacheRig{c: c, fake: fake, clock: clock, b: cachedBackend{Backend: fake, c: c}}
}

var testCacheSettings = cacheSettings{ttl: 30 * time.Second, maxBytes: 64 << 20, staleIfError: time.Hour}

// client is the context of a client's read (GET), which the cache may answer.
func client() (context.Context, *cacheNote) {
	n := &cacheNote{}
	return context.WithValue(context.Background(), cacheNoteKey{}, n), n
}

func (r *cacheRig) write(t *testing.T, name, value string) sdk.Meta {
	t.Helper()
	m, err := r.b.Write(context.Background(), sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"v": value}, Mode: sdk.WriteUpsert})
	require.NoError(t, err)
	return m
}

func (r *cacheRig) read(t *testing.T, name string, version int64) sdk.Secret {
	t.Helper()
	ctx, _ := client()
	sec, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: name, Version: version})
	require.NoError(t, err)
	return sec
}

// TestReadCacheAnswers: which calls the cache answers and which reach the
// backend.
func TestReadCacheAnswers(t *testing.T) {
	tests := []struct {
		name                  string
		do                    func(t *testing.T, r *cacheRig)
		reads, describes      int64
		hits, misses, entries int
	}{
		{"written through, read three times", func(t *testing.T, r *cacheRig) {
			r.write(t, "a", "1")
			for range 3 {
				require.Equal(t, "1", r.read(t, "a", 0).Data["v"])
			}
		}, 0, 0, 3, 0, 2},
		{"written behind, read three times", func(t *testing.T, r *cacheRig) {
			r.fake.behind(t, "a", "1")
			for range 3 {
				require.Equal(t, "1", r.read(t, "a", 0).Data["v"])
			}
		}, 1, 0, 2, 1, 2},
		{"a version by number", func(t *testing.T, r *cacheRig) {
			r.fake.behind(t, "a", "1")
			r.fake.behind(t, "a", "2")
			for range 3 {
				require.Equal(t, "1", r.read(t, "a", 1).Data["v"])
			}
		}, 1, 0, 2, 1, 1},
		{"the latest version also answers a read by its number", func(t *testing.T, r *cacheRig) {
			m := r.write(t, "a", "1")
			require.Equal(t, "1", r.read(t, "a", m.Version).Data["v"])
		}, 0, 0, 1, 0, 2},
		{"reads that are not a client's go to the backend", func(t *testing.T, r *cacheRig) {
			r.write(t, "a", "1")
			for range 2 {
				sec, err := r.b.Read(context.Background(), sdk.Ref{Project: "p", Name: "a"})
				require.NoError(t, err)
				require.Equal(t, "1", sec.Data["v"])
				_, err = r.b.Describe(context.Background(), sdk.Ref{Project: "p", Name: "a"})
				require.NoError(t, err)
			}
		}, 2, 2, 0, 0, 2},
		{"metadata from the latest pointer", func(t *testing.T, r *cacheRig) {
			r.write(t, "a", "1")
			ctx, _ := client()
			m, err := r.b.Describe(ctx, sdk.Ref{Project: "p", Name: "a"})
			require.NoError(t, err)
			require.Equal(t, int64(1), m.Version)
			require.Equal(t, []string{"v"}, m.Keys)
		}, 0, 0, 1, 0, 2},
		{"metadata fetched, then the values", func(t *testing.T, r *cacheRig) {
			r.fake.behind(t, "a", "1")
			ctx, _ := client()
			_, err := r.b.Describe(ctx, sdk.Ref{Project: "p", Name: "a"})
			require.NoError(t, err)
			require.Equal(t, "1", r.read(t, "a", 0).Data["v"])
			require.Equal(t, "1", r.read(t, "a", 0).Data["v"])
		}, 1, 1, 1, 2, 2},
		{"a missing secret is asked every time", func(t *testing.T, r *cacheRig) {
			for range 2 {
				ctx, _ := client()
				_, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "nope"})
				require.ErrorIs(t, err, sdk.ErrNotFound)
			}
		}, 2, 0, 0, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newCacheRig(t, testCacheSettings)
			tc.do(t, r)
			require.Equal(t, tc.reads, r.fake.reads.Load(), "backend reads")
			require.Equal(t, tc.describes, r.fake.describes.Load(), "backend describes")
			require.Equal(t, uint64(tc.hits), r.c.stats.hits.Load(), "hits")
			require.Equal(t, uint64(tc.misses), r.c.stats.misses.Load(), "misses")
			require.Equal(t, tc.entries, r.c.lru.Len(), "entries")
			require.Equal(t, r.c.bytes, r.c.stats.bytes.Load())
		})
	}
}

// TestReadCacheTTL: the latest pointer is trusted for the TTL; in its last
// fifth a hit refreshes it in the background; after it, readers wait for
// the backend. A write made behind the gateway's back is seen within the TTL.
func TestReadCacheTTL(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	r.write(t, "a", "1")
	r.clock.advance(20 * time.Second)
	r.fake.behind(t, "a", "2")
	require.Equal(t, "1", r.read(t, "a", 0).Data["v"], "within the TTL")
	require.Zero(t, r.fake.reads.Load())

	r.clock.advance(5 * time.Second) // 25s of 30: the last fifth
	require.Equal(t, "1", r.read(t, "a", 0).Data["v"], "the hit does not wait for the refresh")
	require.Eventually(t, func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		return len(r.c.flights) == 0 && r.fake.reads.Load() == 1
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, "2", r.read(t, "a", 0).Data["v"], "refreshed in the background")
	require.Equal(t, int64(1), r.fake.reads.Load())

	// Expired: the reader waits for the backend.
	r.fake.behind(t, "a", "3")
	r.clock.advance(31 * time.Second)
	require.Equal(t, "3", r.read(t, "a", 0).Data["v"])
	require.Equal(t, int64(2), r.fake.reads.Load())
}

// TestReadCacheJitter: pointers expire within the last tenth of the TTL,
// not all at once.
func TestReadCacheJitter(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	r.c.jitter = sdk.Jitter
	start := r.clock.now()
	seen := map[time.Time]bool{}
	for i := range 50 {
		name := fmt.Sprintf("s%d", i)
		r.write(t, name, "x")
		p, _ := r.c.latestLocked(secretKey{"p", name})
		require.False(t, p.expires.Before(start.Add(27*time.Second)), "expires %s", p.expires.Sub(start))
		require.False(t, p.expires.After(start.Add(30*time.Second)), "expires %s", p.expires.Sub(start))
		seen[p.expires] = true
	}
	require.Greater(t, len(seen), 1, "every pointer expires at the same time")
}

// TestReadCacheSingleRefresh: many readers of an expired secret cause one
// backend read, and all get its answer.
func TestReadCacheSingleRefresh(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	r.write(t, "a", "1")
	r.fake.behind(t, "a", "2")
	r.clock.advance(time.Minute)
	release := r.fake.hold()
	const readers = 64
	got := make(chan string, readers)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, _ := client()
			sec, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a"})
			if err != nil {
				got <- err.Error()
				return
			}
			got <- sec.Data["v"]
		}()
	}
	require.Eventually(t, func() bool { return r.fake.reads.Load() == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // any second refresh would start now
	release()
	wg.Wait()
	close(got)
	for v := range got {
		require.Equal(t, "2", v)
	}
	require.Equal(t, int64(1), r.fake.reads.Load(), "one refresh for every reader")
	require.Equal(t, "2", r.read(t, "a", 0).Data["v"])
	require.Equal(t, int64(1), r.fake.reads.Load())
}

// TestReadCacheReadYourWrites: each writer, after each create, replace or
// delete, reads exactly what it did, while other readers keep the same
// secrets refreshing (TTL 20ms) from a backend whose answers are up to 2ms
// old when they arrive: refreshes that looked before a write and answer
// after it.
func TestReadCacheReadYourWrites(t *testing.T) {
	r := newCacheRig(t, cacheSettings{ttl: 20 * time.Millisecond, maxBytes: 64 << 20, staleIfError: time.Hour})
	r.c.now, r.c.jitter = time.Now, sdk.Jitter
	r.fake.lag = 2 * time.Millisecond
	const writers, rounds = 4, 30
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for i := range writers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, _ := client()
				_, _ = r.b.Read(ctx, sdk.Ref{Project: "p", Name: fmt.Sprintf("w%d", i)})
			}
		}()
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readYourWrites(r.b, fmt.Sprintf("w%d", i), rounds)
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func readYourWrites(b sdk.Backend, name string, rounds int) error {
	bg := context.Background()
	ref := sdk.Ref{Project: "p", Name: name}
	check := func(want map[string]string, version int64) error {
		time.Sleep(sdk.Jitter(500 * time.Microsecond)) // let refreshes overlap the writes
		ctx, _ := client()
		sec, err := b.Read(ctx, ref)
		if err != nil {
			return fmt.Errorf("%s: reading version %d back: %w", name, version, err)
		}
		if sec.Version != version || sec.Data["v"] != want["v"] {
			return fmt.Errorf("%s: wrote version %d (%s), read version %d (%s)", name, version, want["v"], sec.Version, sec.Data["v"])
		}
		return nil
	}
	for i := range rounds {
		data := map[string]string{"v": fmt.Sprintf("%s-%d-create", name, i)}
		m, err := b.Write(bg, sdk.WriteRequest{Project: "p", Name: name, Data: data, Mode: sdk.WriteCreate})
		if err != nil {
			return err
		}
		if err := check(data, m.Version); err != nil {
			return err
		}
		for j := range 3 {
			data = map[string]string{"v": fmt.Sprintf("%s-%d-%d", name, i, j)}
			if m, err = b.Write(bg, sdk.WriteRequest{Project: "p", Name: name, Data: data, Mode: sdk.WriteReplace}); err != nil {
				return err
			}
			if err := check(data, m.Version); err != nil {
				return err
			}
		}
		if err := b.Delete(bg, ref); err != nil {
			return err
		}
		time.Sleep(sdk.Jitter(500 * time.Microsecond))
		ctx, _ := client()
		if _, err := b.Read(ctx, ref); !errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("%s: read after delete: %v", name, err)
		}
	}
	return nil
}

// TestReadCacheLateAnswers: a refresh that looked at the backend before a
// write through the gateway and answers after it does not undo the write
// in the cache, whatever the write was.
func TestReadCacheLateAnswers(t *testing.T) {
	bg := context.Background()
	ref := sdk.Ref{Project: "p", Name: "a"}
	tests := []struct {
		name   string
		change func(t *testing.T, b sdk.Backend)
		want   string // "" = not found
	}{
		{"delete", func(t *testing.T, b sdk.Backend) {
			require.NoError(t, b.Delete(bg, ref))
		}, ""},
		{"delete and create", func(t *testing.T, b sdk.Backend) {
			require.NoError(t, b.Delete(bg, ref))
			_, err := b.Write(bg, sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"v": "new"}, Mode: sdk.WriteCreate})
			require.NoError(t, err)
		}, "new"},
		{"replace", func(t *testing.T, b sdk.Backend) {
			_, err := b.Write(bg, sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"v": "new"}, Mode: sdk.WriteReplace})
			require.NoError(t, err)
		}, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newCacheRig(t, testCacheSettings)
			r.write(t, "a", "old")
			r.write(t, "a", "old")
			r.clock.advance(time.Minute)
			r.fake.mu.Lock()
			r.fake.late = true
			r.fake.mu.Unlock()
			release := r.fake.hold()
			done := make(chan struct{})
			go func() {
				defer close(done)
				ctx, _ := client()
				_, _ = r.b.Read(ctx, ref) // its refresh looks now, answers later
			}()
			require.Eventually(t, func() bool { return r.fake.reads.Load() == 1 }, 5*time.Second, time.Millisecond)
			tc.change(t, r.b)
			release()
			<-done
			r.c.mu.Lock()
			require.Empty(t, r.c.flights)
			r.c.mu.Unlock()
			ctx, _ := client()
			sec, err := r.b.Read(ctx, ref)
			if tc.want == "" {
				require.ErrorIs(t, err, sdk.ErrNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, sec.Data["v"])
			require.Equal(t, int64(1), r.fake.reads.Load(), "served from the cache")
		})
	}
}

// TestReadCacheVersionsNeverExpire: a version read by number is served
// from the cache however old, while "latest" moves on.
func TestReadCacheVersionsNeverExpire(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	r.write(t, "a", "1")
	r.write(t, "a", "2")
	r.fake.behind(t, "a", "3")
	r.clock.advance(240 * time.Hour)
	require.Equal(t, "1", r.read(t, "a", 1).Data["v"])
	require.Equal(t, "2", r.read(t, "a", 2).Data["v"])
	require.Zero(t, r.fake.reads.Load())
	require.Equal(t, "3", r.read(t, "a", 0).Data["v"])
	require.Equal(t, int64(1), r.fake.reads.Load())
	require.Equal(t, "3", r.read(t, "a", 3).Data["v"], "the latest, read by number")
	require.Equal(t, int64(1), r.fake.reads.Load())

	// Deleted and created again behind the gateway's back: the versions
	// of the old incarnation go as soon as the backend shows the new one.
	require.NoError(t, r.fake.memBackend.Delete(context.Background(), sdk.Ref{Project: "p", Name: "a"}))
	r.clock.advance(time.Hour)
	r.fake.memBackend.mu.Lock()
	r.fake.memBackend.secrets[key("p", "a")] = &memSecret{
		meta:     sdk.Meta{Project: "p", Name: "a", Version: 1, Keys: []string{"v"}, CreatedAt: time.Now().Add(time.Hour)},
		versions: []map[string]string{{"v": "new-1"}}, times: []time.Time{time.Now()},
	}
	r.fake.memBackend.mu.Unlock()
	require.Equal(t, "new-1", r.read(t, "a", 0).Data["v"])
	reads := r.fake.reads.Load()
	require.Equal(t, "new-1", r.read(t, "a", 0).Data["v"])
	require.Equal(t, "new-1", r.read(t, "a", 1).Data["v"])
	require.Equal(t, reads, r.fake.reads.Load(), "the new incarnation is cached")
	ctx, _ := client()
	_, err := r.b.Read(ctx, sdk.Ref{Project: "p", Name: "a", Version: 2})
	require.ErrorIs(t, err, sdk.ErrNotFound, "version 2 of the old incarnation is not served")
}

// TestReadCacheEvictsBySize: entries beyond max_bytes go, least recently
// used first.
func TestReadCacheEvictsBySize(t *testing.T) {
	r := newCacheRig(t, cacheSettings{ttl: time.Hour, maxBytes: 1 << 20, staleIfError: time.Hour})
	big := strings.Repeat("x", 50_000)
	for i := range 15 {
		r.write(t, fmt.Sprintf("s%02d", i), big+fmt.Sprint(i))
	}
	require.Zero(t, r.c.stats.evictions.Load())
	r.read(t, "s00", 0) // the oldest, now the most recently used
	for i := 15; i < 25; i++ {
		r.write(t, fmt.Sprintf("s%02d", i), big+fmt.Sprint(i))
		require.LessOrEqual(t, r.c.bytes, r.c.set.maxBytes)
	}
	require.Positive(t, r.c.stats.evictions.Load())
	require.Equal(t, r.c.bytes, r.c.stats.bytes.Load())
	require.Equal(t, big+"0", r.read(t, "s00", 0).Data["v"])
	require.Equal(t, big+"24", r.read(t, "s24", 0).Data["v"])
	require.Zero(t, r.fake.reads.Load(), "s00 was used recently and s24 written last: both stay")
	require.Equal(t, big+"1", r.read(t, "s01", 0).Data["v"])
	require.Equal(t, int64(1), r.fake.reads.Load(), "s01 was the least recently used: evicted")
}

// TestReadCacheSealsValues: what the cache keeps of a value is ciphertext
// bound to its slot.
func TestReadCacheSealsValues(t *testing.T) {
	r := newCacheRig(t, testCacheSettings)
	const secret = "CANARY-cache-0b5e7d"
	r.write(t, "a", secret)
	r.fake.behind(t, "b", secret)
	require.Equal(t, secret, r.read(t, "b", 0).Data["v"])
	require.Equal(t, secret, r.read(t, "b", 1).Data["v"])

	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	require.Len(t, r.c.recs, 2)
	var sealed [][]byte
	for k, rec := range r.c.recs {
		for v, ve := range rec.versions {
			require.NotContains(t, string(ve.sealed), secret, "%s v%d", k.name, v)
			require.NotContains(t, string(ve.sealed), `"v":`, "%s v%d holds the encoded values", k.name, v)
			require.NotContains(t, fmt.Sprintf("%+v", ve.meta), secret)
			data, err := r.c.sealer.open("be", k, v, ve.sealed)
			require.NoError(t, err)
			require.Equal(t, secret, data["v"])
			// Bound to backend, project, name and version.
			for _, o := range []struct {
				backend string
				k       secretKey
				v       int64
			}{{"other", k, v}, {"be", secretKey{"q", k.name}, v}, {"be", secretKey{"p", k.name + "x"}, v}, {"be", k, v + 1}} {
				_, err := r.c.sealer.open(o.backend, o.k, o.v, ve.sealed)
				require.ErrorIs(t, err, errCacheOpen, "%+v", o)
			}
			tampered := bytes.Clone(ve.sealed)
			tampered[len(tampered)-1] ^= 1
			_, err = r.c.sealer.open("be", k, v, tampered)
			require.ErrorIs(t, err, errCacheOpen)
			sealed = append(sealed, ve.sealed)
		}
		require.NotContains(t, fmt.Sprintf("%+v", rec.latest.meta), secret)
	}
	require.Len(t, sealed, 2)
	require.NotEqual(t, sealed[0][:12], sealed[1][:12], "nonces are never reused")
	require.NotEqual(t, sealed[0][12:], sealed[1][12:], "the same value seals differently")
}
