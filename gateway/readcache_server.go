package gateway

// How the read caches (readcache.go) meet the server: one cache per backend
// with a `cache:` block, kept across reloads while the backend's
// configuration is unchanged; the mark a client's read carries so that the
// cache may answer it and report a stale answer (X-Secretgate-Stale); and
// the change-notification events that invalidate entries.

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
)

// HeaderStale is sent with an answer served from the read cache while the
// backend was unavailable: the age in seconds of the oldest value served.
const HeaderStale = "X-Secretgate-Stale"

// ctxKeyCacheNote holds a request's *cacheNote in the gin context.
const ctxKeyCacheNote = "sg.cache_note"

// cacheNote is what the read cache tells a handler about a client's read.
type cacheNote struct {
	// stale is 1 + the age in whole seconds of the oldest stale value
	// served; 0 = none.
	stale atomic.Int64
}

type cacheNoteKey struct{}

// cacheReads marks ctx as a client's read that the read cache may answer;
// staleHeader then reports whatever it served stale.
func cacheReads(c *gin.Context, ctx context.Context) context.Context {
	v, _ := c.Get(ctxKeyCacheNote)
	n, _ := v.(*cacheNote)
	if n == nil {
		n = &cacheNote{}
		c.Set(ctxKeyCacheNote, n)
	}
	return context.WithValue(ctx, cacheNoteKey{}, n)
}

func cacheNoteOf(ctx context.Context) *cacheNote {
	n, _ := ctx.Value(cacheNoteKey{}).(*cacheNote)
	return n
}

func (n *cacheNote) markStale(age time.Duration) {
	if n == nil {
		return
	}
	v := int64(max(age, 0)/time.Second) + 1
	for {
		cur := n.stale.Load()
		if cur >= v || n.stale.CompareAndSwap(cur, v) {
			return
		}
	}
}

// staleHeader sets X-Secretgate-Stale when the request's reads were served
// stale; call it before writing the answer.
func staleHeader(c *gin.Context) {
	v, _ := c.Get(ctxKeyCacheNote)
	n, _ := v.(*cacheNote)
	if n == nil {
		return
	}
	if v := n.stale.Load(); v > 0 {
		c.Header(HeaderStale, strconv.FormatInt(v-1, 10))
	}
}

// readCaches holds the server's caches, rebuilt when the configuration
// changes (a reload).
type readCaches struct {
	s     *Server
	mu    sync.Mutex // serializes rebuilds
	table atomic.Pointer[cacheTable]
}

// cacheTable is the caches of one configuration.
type cacheTable struct {
	cfg    *Config
	caches map[string]*readCache
	prints map[string][sha256.Size]byte
}

// readCaches returns the server's caches; the first call registers their
// invalidation by change-notification events.
func (s *Server) readCaches() *readCaches {
	s.cachesOnce.Do(func() {
		s.caches = &readCaches{s: s}
		s.events().observe(s.caches.observe)
	})
	return s.caches
}

// lookup returns the named backend's cache, nil when it has none.
func (rc *readCaches) lookup(name string) *readCache {
	live := rc.s.live.Load()
	if live == nil {
		return nil // a Server New did not build
	}
	t := rc.table.Load()
	if t == nil || t.cfg != live.cfg {
		t = rc.rebuild()
	}
	return t.caches[name]
}

// rebuild makes the table of the current configuration. A backend whose
// settings or cache block changed gets an empty cache: its old entries
// may come from other storage.
func (rc *readCaches) rebuild() *cacheTable {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	cfg := rc.s.config()
	old := rc.table.Load()
	if old != nil && old.cfg == cfg {
		return old
	}
	t := &cacheTable{cfg: cfg, caches: map[string]*readCache{}, prints: map[string][sha256.Size]byte{}}
	for _, b := range cfg.Backends {
		if b.Cache == nil {
			continue
		}
		fp := backendPrint(b)
		if old != nil && old.caches[b.Name] != nil && old.prints[b.Name] == fp {
			t.caches[b.Name], t.prints[b.Name] = old.caches[b.Name], fp
			continue
		}
		c, err := rc.newCache(b)
		if err != nil {
			rc.s.log.Error("the read cache of this backend stays off", "backend", b.Name, "error", err)
			continue
		}
		t.caches[b.Name], t.prints[b.Name] = c, fp
	}
	if old != nil {
		for name, c := range old.caches {
			if t.caches[name] != c {
				c.retire()
			}
		}
	}
	rc.table.Store(t)
	return t
}

func (rc *readCaches) newCache(b BackendConfig) (*readCache, error) {
	set, err := b.Cache.settings()
	if err != nil {
		return nil, err
	}
	// New refused core dumps for the caches of the configuration it
	// started with; a reload may be the first to turn one on.
	if err := refuseCoreDumps(); err != nil {
		return nil, err
	}
	return newReadCache(b.Name, set, rc.s.metrics.cacheStats(b.Name), rc.s.backendTimeout)
}

// backendPrint identifies what a backend's cache depends on: where its
// data comes from and the cache's own settings. Hashed, since settings
// hold credentials.
func backendPrint(b BackendConfig) [sha256.Size]byte {
	h := sha256.New()
	put := func(s string) {
		h.Write(strconv.AppendInt(nil, int64(len(s)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	put(b.Plugin)
	put(b.SHA256)
	for _, k := range sortedKeys(b.Settings) {
		put(k)
		put(b.Settings[k])
	}
	put(b.Cache.TTL)
	put(b.Cache.MaxBytes)
	put(b.Cache.StaleIfError)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// observe applies a change-notification event (the gateway's own writes
// and the watch poller's findings) to the cache of the project's backend.
// It runs under the project's event lock and takes only cache locks.
func (rc *readCaches) observe(project, kind string, m sdk.Meta) {
	t := rc.table.Load()
	if t == nil || len(t.caches) == 0 {
		return
	}
	if kind == EventResync {
		for _, c := range t.caches {
			c.dropProject(project)
		}
		return
	}
	if rt, ok := rc.s.routing.Lookup(project); ok {
		if c := t.caches[rt.Backend]; c != nil {
			c.invalidate(project, kind, m)
		}
	}
}

// refuseCoreDumpsIfCached is called by New: a process holding a read
// cache never dumps core (the key and cleartext values in transit are in
// its memory).
func refuseCoreDumpsIfCached(cfg *Config) error {
	for _, b := range cfg.Backends {
		if b.Cache != nil {
			return refuseCoreDumps()
		}
	}
	return nil
}

var refuseCoreDumps = sync.OnceValue(func() error {
	if err := setNoCoreDumps(); err != nil {
		return errors.Join(errors.New("read cache: cannot set RLIMIT_CORE to 0"), err)
	}
	return nil
})

// downBackend stands for a backend whose plugin is down, so that its
// cache can still answer reads: every call fails as the host said.
type downBackend struct{ err error }

func (d downBackend) Configure(context.Context, map[string]string) error { return d.err }
func (d downBackend) Capabilities(context.Context) (sdk.Capabilities, error) {
	return sdk.Capabilities{}, d.err
}
func (d downBackend) List(context.Context, sdk.ListRequest) (sdk.ListPage, error) {
	return sdk.ListPage{}, d.err
}
func (d downBackend) Describe(context.Context, sdk.Ref) (sdk.Meta, error) { return sdk.Meta{}, d.err }
func (d downBackend) Read(context.Context, sdk.Ref) (sdk.Secret, error)   { return sdk.Secret{}, d.err }
func (d downBackend) Write(context.Context, sdk.WriteRequest) (sdk.Meta, error) {
	return sdk.Meta{}, d.err
}
func (d downBackend) Delete(context.Context, sdk.Ref) error { return d.err }
func (d downBackend) Versions(context.Context, sdk.Ref) ([]sdk.VersionMeta, error) {
	return nil, d.err
}
func (d downBackend) Ping(context.Context) error { return d.err }
