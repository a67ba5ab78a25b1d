package gcp

import (
	"maps"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// maxCacheEntries bounds the metadata cache; past it, entries are dropped
// at random (Go's map order), which costs a GetSecret later, nothing more.
const maxCacheEntries = 10000

// entry is what this process knows about one GCP secret. pb and the
// tombstone expire after the metadata TTL; the versions known to exist are
// facts about one incarnation of the secret (its create_time) and are kept
// while the incarnation is.
type entry struct {
	pb      *secretmanagerpb.Secret // nil when only a tombstone
	at      time.Time               // when pb or the tombstone was learnt
	own     bool                    // pb is the answer to our own mutation
	deleted bool                    // we deleted the secret at `at`
	stale   bool                    // an etag failure showed pb is old (the secret existed)
	// versions known to exist in this incarnation, with their create time
	// (zero when only their existence is known): our own adds, and versions
	// verified by an access by number.
	versions map[int64]time.Time
}

type cache struct {
	mu  sync.Mutex
	m   map[string]*entry
	ttl time.Duration
	now func() time.Time
}

func newCache(ttl time.Duration, now func() time.Time) *cache {
	return &cache{m: map[string]*entry{}, ttl: ttl, now: now}
}

// get returns a copy of the entry of name; fresh says whether its pb or
// tombstone is younger than the TTL.
func (c *cache) get(name string) (e entry, ok, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.m[name]
	if p == nil {
		return entry{}, false, false
	}
	e = *p
	e.versions = maps.Clone(p.versions)
	return e, true, c.now().Sub(p.at) < c.ttl
}

func sameIncarnation(a, b *secretmanagerpb.Secret) bool {
	return a != nil && b != nil && a.GetCreateTime().AsTime().Equal(b.GetCreateTime().AsTime())
}

func (c *cache) slot(name string) *entry {
	p := c.m[name]
	if p == nil {
		if len(c.m) >= maxCacheEntries {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		p = &entry{}
		c.m[name] = p
	}
	return p
}

// putOwn records the answer to our own UpdateSecret or CreateSecret. Our
// answers can come back out of order; the claim number only grows, so an
// older claim never replaces a newer one of the same incarnation.
func (c *cache) putOwn(name string, pb *secretmanagerpb.Secret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.slot(name)
	if p.pb != nil && !p.deleted && sameIncarnation(p.pb, pb) && readState(p.pb).claim > readState(pb).claim {
		return
	}
	if !sameIncarnation(p.pb, pb) {
		p.versions = nil
	}
	p.pb, p.at, p.own, p.deleted, p.stale = pb, c.now(), true, false, false
}

// putSeen records a GetSecret answer. It can lag behind what our own writes
// told us: then it is kept only if it shows a newer claim.
func (c *cache) putSeen(name string, pb *secretmanagerpb.Secret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.slot(name)
	fresh := c.now().Sub(p.at) < c.ttl
	if fresh && p.deleted {
		return // a lagging view of what we deleted
	}
	if fresh && p.own && p.pb != nil && (!sameIncarnation(p.pb, pb) || readState(p.pb).claim > readState(pb).claim) {
		return
	}
	if !sameIncarnation(p.pb, pb) {
		p.versions = nil
	}
	p.pb, p.at, p.own, p.deleted, p.stale = pb, c.now(), false, false, false
}

// addVersion records that version n of the incarnation pb exists.
func (c *cache) addVersion(name string, pb *secretmanagerpb.Secret, n int64, created time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.m[name]
	if p == nil || p.pb == nil || p.deleted || !sameIncarnation(p.pb, pb) {
		return
	}
	if p.versions == nil {
		p.versions = map[int64]time.Time{}
	}
	if t, ok := p.versions[n]; !ok || t.IsZero() {
		p.versions[n] = created
	}
}

// deleted records our own delete.
func (c *cache) deleted(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.slot(name)
	*p = entry{at: c.now(), deleted: true}
}

// staleEtag marks name's entry stale when it still holds the state whose
// etag just failed (another of our writers may have put a newer one
// meanwhile): not to be used as a view to write on, still a sign that the
// secret exists when a lagging GetSecret does not show it yet.
func (c *cache) staleEtag(name, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.m[name]; p != nil && !p.deleted && p.pb.GetEtag() == etag {
		p.stale = true
	}
}

// drop forgets name (a mutation found it gone: that answer is current).
func (c *cache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

// ownNames lists the secrets our own writes created or changed within the
// TTL (for List: a lagging ListSecrets may not show them yet).
func (c *cache) ownNames() map[string]*secretmanagerpb.Secret {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*secretmanagerpb.Secret{}
	now := c.now()
	for k, p := range c.m {
		if now.Sub(p.at) < c.ttl && (p.own || p.deleted) {
			out[k] = p.pb // nil for a tombstone
		}
	}
	return out
}
