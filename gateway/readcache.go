package gateway

// The read cache of a backend (docs/configuration.md, "Read cache"): an
// sdk.Backend decorator that s.backend puts in front of every backend with
// a `cache:` block, inside the gateway process.
//
// Design:
//   - Only the reads of clients are answered from the cache: GET of a
//     secret or of its metadata and POST /v1/resolve mark their call's
//     context (cacheReads). Every other read (PATCH's read-modify-write, a
//     rollback's check, migrations, the watch poller) goes to the backend,
//     whose answer then refreshes the cache: those callers need the
//     backend's word, not a copy up to a TTL old.
//   - A version never changes: the entry of (project, name, version) goes
//     only for room (least recently used first, max_bytes), when the secret
//     is deleted, or when the backend shows another incarnation of the name
//     (another creation time: deleted and created again behind the
//     gateway's back).
//   - "Latest" is a pointer to a version, trusted for the TTL less up to a
//     tenth (jitter: pointers filled together do not expire together). In
//     its last fifth a hit starts a refresh in the background, so a secret
//     read often never makes a reader wait; once it has expired, readers
//     wait for one refresh shared by all of them (singleflight). Either
//     way a write made behind the gateway's back is seen within the TTL.
//   - Writes through the gateway are write-through: the new version and
//     the pointer are cached before Write returns, so a client always reads
//     its own writes. A delete drops the secret's entries. Both bump the
//     secret's mutation counter: a backend answer to a call that started
//     before is not installed, since it may predate the change.
//   - Change-notification events drop what they prove stale: a newer
//     version or a deletion found by the watch poller (readcache_server.go).
//   - Stale if error: when the backend is unavailable or times out, a
//     cached latest value that the backend vouched for no longer than
//     stale_if_error ago is served, and the handler sends
//     X-Secretgate-Stale. After such a failure the backend counts as down
//     for cacheDownWindow: readers get stale values at once while one
//     refresh per secret finds out whether it is back. Not-found and
//     permission answers are never masked: they drop the secret's entries.
//   - Values are sealed (readcache_seal.go); metadata (names, keys,
//     labels, versions and dates, which listings show to viewers) is not.

import (
	"container/list"
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

const (
	// cacheDownWindow is how long after an outage error readers get stale
	// values without waiting for the backend: each secret's refresh still
	// asks it, one call at a time.
	cacheDownWindow = time.Second
	// cacheItemOverhead approximates an entry's bookkeeping (structs, list
	// element, map slot) in max_bytes and the bytes metric.
	cacheItemOverhead = 256
	// cacheStripes is the number of mutation counters; two secrets sharing
	// one only cost each other an install now and then.
	cacheStripes = 1024
)

// secretKey names a secret within one backend's cache.
type secretKey struct{ project, name string }

// cacheStats are one backend's cache counters (secretgate_cache_*).
type cacheStats struct {
	hits, misses, stale, evictions atomic.Uint64
	bytes                          atomic.Int64
}

// readCache is one backend's cache.
type readCache struct {
	backend string
	set     cacheSettings
	sealer  *cacheSealer
	stats   *cacheStats
	// timeout bounds a refresh, which no reader's context governs.
	timeout time.Duration
	seed    maphash.Seed
	// now and jitter are time.Now and sdk.Jitter; tests replace them.
	now    func() time.Time
	jitter func(time.Duration) time.Duration

	mu      sync.Mutex
	recs    map[secretKey]*cacheRecord
	flights map[secretKey]*refreshFlight
	// seq counts the changes made through the gateway (and the
	// invalidations), by stripe of secrets.
	seq       [cacheStripes]uint64
	lru       list.List // of *cacheItem, most recently used first
	bytes     int64
	downUntil time.Time
	retired   bool
}

// cacheRecord is what the cache holds of one secret.
type cacheRecord struct {
	key secretKey
	// created is the incarnation (Meta.CreatedAt) the entries belong to;
	// zero when unknown.
	created  time.Time
	latest   *latestPointer
	versions map[int64]*versionEntry
}

// latestPointer says which version is the latest, and until when.
type latestPointer struct {
	meta sdk.Meta // Version is the latest version
	// fetched is when the backend last vouched for it: the start of the
	// call that returned it (so, if anything, it is older than it is).
	fetched time.Time
	refresh time.Time // from then on, a hit refreshes it in the background
	expires time.Time
	item    *list.Element
}

// versionEntry is one version: its metadata and its sealed values.
type versionEntry struct {
	meta   sdk.Meta // Version is this version, Keys are its keys
	sealed []byte
	item   *list.Element
}

// cacheItem is an entry in the LRU list: a version, or (version 0) the
// latest pointer.
type cacheItem struct {
	rec     *cacheRecord
	version int64
	size    int64
}

// refreshFlight is the one backend read of a secret's latest version in
// progress; readers that need it wait for it instead of calling again.
type refreshFlight struct {
	done chan struct{}
	sec  sdk.Secret // shared: each waiter gets a copy
	err  error
}

func newReadCache(backend string, set cacheSettings, stats *cacheStats, timeout time.Duration) (*readCache, error) {
	sealer, err := processSealer()
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultBackendTimeout
	}
	return &readCache{
		backend: backend, set: set, sealer: sealer, stats: stats, timeout: timeout, seed: maphash.MakeSeed(),
		now: time.Now, jitter: sdk.Jitter,
		recs: map[secretKey]*cacheRecord{}, flights: map[secretKey]*refreshFlight{},
	}, nil
}

// cachedBackend is the decorator: Read, Describe, Write and Delete go
// through the cache, the other methods straight to the backend.
type cachedBackend struct {
	sdk.Backend
	c *readCache
}

// isOutage reports the failures stale values may hide: the backend is down
// or did not answer in time.
func isOutage(err error) bool {
	return errors.Is(err, sdk.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func (cb cachedBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	note := cacheNoteOf(ctx)
	switch {
	case note == nil:
		return cb.c.readThrough(ctx, cb.Backend, ref)
	case ref.Version > 0:
		return cb.c.readVersion(ctx, cb.Backend, ref)
	}
	return cb.c.readLatest(ctx, cb.Backend, ref, note)
}

func (cb cachedBackend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	return cb.c.describe(ctx, cb.Backend, ref, cacheNoteOf(ctx))
}

// Write is write-through: when it returns, the new version is cached and
// is the latest.
func (cb cachedBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	c, k := cb.c, secretKey{req.Project, req.Name}
	start := c.now()
	m, err := cb.Backend.Write(ctx, req)
	if err != nil {
		c.mutationFailed(k, err)
		return m, err
	}
	sealed := c.sealer.seal(c.backend, k, m.Version, req.Data)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bumpLocked(k)
	if req.Mode == sdk.WriteCreate {
		// A create starts a new incarnation: whatever was cached of the
		// name belongs to an older one, deleted behind the gateway's back.
		c.purgeLocked(k)
	}
	c.learnLocked(k, m, sealed, start, true)
	return m, nil
}

// Delete drops the secret's entries whatever the outcome but a refusal
// that proves nothing changed.
func (cb cachedBackend) Delete(ctx context.Context, ref sdk.Ref) error {
	c, k := cb.c, secretKey{ref.Project, ref.Name}
	err := cb.Backend.Delete(ctx, ref)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) && !errors.Is(err, sdk.ErrPermission) {
		c.mutationFailed(k, err)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked(k)
	return err
}

// mutationFailed reacts to a failed write or delete. Unless the failure
// proves that nothing changed, the latest pointer expires: the next read
// asks the backend (or, during an outage, serves the value as stale).
func (c *readCache) mutationFailed(k secretKey, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrPermission):
		c.purgeLocked(k)
	case errors.Is(err, sdk.ErrInvalid), errors.Is(err, sdk.ErrThrottled), errors.Is(err, context.Canceled):
		// Refused before anything was stored.
	default:
		// A mismatch, or an outcome nobody knows (a timeout may follow a
		// commit): what the cache holds may be old.
		c.bumpLocked(k)
		if rec := c.recs[k]; rec != nil && rec.latest != nil {
			now := c.now()
			rec.latest.expires = minTime(rec.latest.expires, now)
			rec.latest.refresh = minTime(rec.latest.refresh, now)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// readThrough asks the backend and keeps what it says.
func (c *readCache) readThrough(ctx context.Context, b sdk.Backend, ref sdk.Ref) (sdk.Secret, error) {
	k := secretKey{ref.Project, ref.Name}
	tok, start := c.token(k), c.now()
	sec, err := b.Read(ctx, ref)
	c.learnRead(k, tok, ref.Version, sec, err, start, nil)
	return sec, err
}

// readVersion serves a version by number: it never changes, so a cached
// one is served without asking the backend.
func (c *readCache) readVersion(ctx context.Context, b sdk.Backend, ref sdk.Ref) (sdk.Secret, error) {
	k := secretKey{ref.Project, ref.Name}
	c.mu.Lock()
	if rec := c.recs[k]; rec != nil {
		if ve := rec.versions[ref.Version]; ve != nil {
			c.lru.MoveToFront(ve.item)
			meta := ve.meta
			if p := rec.latest; p != nil {
				// A read by version reports the secret's current labels
				// and dates, as the backends do.
				meta.Labels, meta.CreatedAt, meta.UpdatedAt = p.meta.Labels, p.meta.CreatedAt, p.meta.UpdatedAt
			}
			sealed := ve.sealed
			c.mu.Unlock()
			if sec, err := c.openSecret(k, meta, sealed); err == nil {
				c.stats.hits.Add(1)
				return sec, nil
			}
			c.dropBroken(k)
			c.mu.Lock()
		}
	}
	c.mu.Unlock()
	c.stats.misses.Add(1)
	return c.readThrough(ctx, b, ref)
}

// readLatest serves the latest version of a client's read.
func (c *readCache) readLatest(ctx context.Context, b sdk.Backend, ref sdk.Ref, note *cacheNote) (sdk.Secret, error) {
	k := secretKey{ref.Project, ref.Name}
	now := c.now()
	c.mu.Lock()
	p, ve := c.latestLocked(k)
	if p != nil && ve != nil && now.Before(p.expires) {
		c.lru.MoveToFront(p.item)
		c.lru.MoveToFront(ve.item)
		if !now.Before(p.refresh) && c.flights[k] == nil {
			c.startFlightLocked(b, k)
		}
		meta, sealed := p.meta, ve.sealed
		c.mu.Unlock()
		if sec, err := c.openSecret(k, meta, sealed); err == nil {
			c.stats.hits.Add(1)
			return sec, nil
		}
		c.dropBroken(k)
		c.mu.Lock()
		p, ve = nil, nil
	}
	if p != nil && ve != nil && now.Before(c.downUntil) && now.Sub(p.fetched) <= c.set.staleIfError {
		// The backend just failed: serve at once, and let one refresh per
		// secret find out when it is back.
		if c.flights[k] == nil {
			c.startFlightLocked(b, k)
		}
		c.mu.Unlock()
		if sec, ok := c.serveStale(k, note); ok {
			return sec, nil
		}
		c.mu.Lock()
	}
	f := c.flights[k]
	if f == nil {
		f = c.startFlightLocked(b, k)
	}
	c.mu.Unlock()
	c.stats.misses.Add(1)
	var err error
	select {
	case <-f.done:
		if f.err == nil {
			return cloneSecret(f.sec), nil
		}
		err = f.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	if isOutage(err) {
		if sec, ok := c.serveStale(k, note); ok {
			return sec, nil
		}
	}
	return sdk.Secret{}, err
}

// serveStale returns the cached latest value if the backend vouched for it
// within stale_if_error, and notes its age for the handler.
func (c *readCache) serveStale(k secretKey, note *cacheNote) (sdk.Secret, bool) {
	now := c.now()
	c.mu.Lock()
	p, ve := c.latestLocked(k)
	if p == nil || ve == nil || now.Sub(p.fetched) > c.set.staleIfError {
		c.mu.Unlock()
		return sdk.Secret{}, false
	}
	meta, sealed, age := p.meta, ve.sealed, now.Sub(p.fetched)
	c.mu.Unlock()
	sec, err := c.openSecret(k, meta, sealed)
	if err != nil {
		c.dropBroken(k)
		return sdk.Secret{}, false
	}
	note.markStale(age)
	c.stats.stale.Add(1)
	return sec, true
}

// describe serves the latest metadata: from the pointer for a client's
// read while it is fresh (or stale during an outage), else the backend's.
func (c *readCache) describe(ctx context.Context, b sdk.Backend, ref sdk.Ref, note *cacheNote) (sdk.Meta, error) {
	k := secretKey{ref.Project, ref.Name}
	now := c.now()
	c.mu.Lock()
	var p *latestPointer
	if rec := c.recs[k]; rec != nil && note != nil {
		p = rec.latest
	}
	if p != nil && now.Before(p.expires) {
		c.lru.MoveToFront(p.item)
		m := p.meta
		c.mu.Unlock()
		c.stats.hits.Add(1)
		return cloneMeta(m), nil
	}
	if p != nil && now.Before(c.downUntil) && now.Sub(p.fetched) <= c.set.staleIfError {
		m, age := p.meta, now.Sub(p.fetched)
		c.mu.Unlock()
		note.markStale(age)
		c.stats.stale.Add(1)
		return cloneMeta(m), nil
	}
	tok := c.tokenLocked(k)
	c.mu.Unlock()
	if note != nil {
		c.stats.misses.Add(1)
	}
	m, err := b.Describe(ctx, ref)
	c.learnDescribe(k, tok, m, err, now)
	if err != nil && note != nil && isOutage(err) {
		now = c.now()
		c.mu.Lock()
		if rec := c.recs[k]; rec != nil && rec.latest != nil && now.Sub(rec.latest.fetched) <= c.set.staleIfError {
			p := rec.latest
			m, age := p.meta, now.Sub(p.fetched)
			c.mu.Unlock()
			note.markStale(age)
			c.stats.stale.Add(1)
			return cloneMeta(m), nil
		}
		c.mu.Unlock()
	}
	return m, err
}

// latestLocked returns the secret's pointer and the entry it points to
// (either may be nil).
func (c *readCache) latestLocked(k secretKey) (*latestPointer, *versionEntry) {
	rec := c.recs[k]
	if rec == nil || rec.latest == nil {
		return nil, nil
	}
	return rec.latest, rec.versions[rec.latest.meta.Version]
}

// startFlightLocked starts the refresh of a secret's latest version. It
// runs on its own deadline: the reader that started it may leave, others
// wait for it.
func (c *readCache) startFlightLocked(b sdk.Backend, k secretKey) *refreshFlight {
	f := &refreshFlight{done: make(chan struct{})}
	c.flights[k] = f
	tok := c.tokenLocked(k)
	go func() {
		defer close(f.done)
		start := c.now()
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		f.sec, f.err = b.Read(ctx, sdk.Ref{Project: k.project, Name: k.name})
		cancel()
		c.learnRead(k, tok, 0, f.sec, f.err, start, f)
	}()
	return f
}
