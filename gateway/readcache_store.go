package gateway

// The read cache's store (readcache.go reads through it): what backend
// answers teach it, the LRU by size, eviction, purges on deletes and
// re-creations, and invalidation from change events.

import (
	"container/list"
	"errors"
	"hash/maphash"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// learnRead keeps what a backend read of version (0 = latest) said, unless
// the secret changed through the gateway since the read started (tok).
func (c *readCache) learnRead(k secretKey, tok uint64, version int64, sec sdk.Secret, err error, start time.Time, f *refreshFlight) {
	var sealed []byte
	if err == nil {
		sealed = c.sealer.seal(c.backend, k, sec.Version, sec.Data)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f != nil && c.flights[k] == f {
		delete(c.flights, k)
	}
	fresh := c.tokenLocked(k) == tok
	switch {
	case err == nil:
		c.downUntil = time.Time{}
		if fresh {
			c.learnLocked(k, sec.Meta, sealed, start, version == 0)
		}
	case errors.Is(err, sdk.ErrPermission):
		c.purgeLocked(k)
	case errors.Is(err, sdk.ErrNotFound):
		c.downUntil = time.Time{}
		switch rec := c.recs[k]; {
		case !fresh || rec == nil:
		case version == 0:
			c.purgeLocked(k)
		case rec.versions[version] != nil:
			// Pruned, or of an older incarnation.
			c.dropItemLocked(rec.versions[version].item)
			c.tidyLocked(rec)
		}
	case isOutage(err):
		c.downUntil = c.now().Add(cacheDownWindow)
	}
}

// learnDescribe keeps what a Describe said.
func (c *readCache) learnDescribe(k secretKey, tok uint64, m sdk.Meta, err error, start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := c.tokenLocked(k) == tok
	switch {
	case err == nil:
		c.downUntil = time.Time{}
		if fresh {
			c.learnLocked(k, m, nil, start, true)
		}
	case errors.Is(err, sdk.ErrPermission):
		c.purgeLocked(k)
	case errors.Is(err, sdk.ErrNotFound):
		c.downUntil = time.Time{}
		if fresh {
			c.purgeLocked(k)
		}
	case isOutage(err):
		c.downUntil = c.now().Add(cacheDownWindow)
	}
}

// sameIncarnation compares two creation times of a secret, allowing for
// backends that report them at different precisions; unknown matches all.
func sameIncarnation(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return true
	}
	d := a.Sub(b)
	return d < time.Second && d > -time.Second
}

// learnLocked installs what the backend said of a secret at start: m, and
// the sealed values of m.Version when not nil; when latest, m is the latest
// metadata. An older latest version of the same incarnation than the one
// known is a lagging answer and moves no pointer; of an unknown
// incarnation, it is the backend's word.
func (c *readCache) learnLocked(k secretKey, m sdk.Meta, sealed []byte, start time.Time, latest bool) {
	if c.retired {
		return
	}
	rec := c.recs[k]
	if rec != nil {
		older := latest && rec.latest != nil && m.Version < rec.latest.meta.Version
		if !sameIncarnation(rec.created, m.CreatedAt) || older && (rec.created.IsZero() || m.CreatedAt.IsZero()) {
			c.purgeLocked(k)
			rec = nil
		}
	}
	if rec == nil {
		rec = &cacheRecord{key: k, versions: map[int64]*versionEntry{}}
		c.recs[k] = rec
	}
	if !m.CreatedAt.IsZero() {
		rec.created = m.CreatedAt
	}
	if sealed != nil {
		c.putVersionLocked(rec, m, sealed)
	}
	if latest && (rec.latest == nil || m.Version >= rec.latest.meta.Version) {
		c.putPointerLocked(rec, m, start)
	}
	c.tidyLocked(rec)
	c.evictLocked()
}

func (c *readCache) putVersionLocked(rec *cacheRecord, m sdk.Meta, sealed []byte) {
	size := metaSize(m) + int64(len(sealed))
	if size > c.set.maxBytes {
		return
	}
	if old := rec.versions[m.Version]; old != nil {
		c.dropItemLocked(old.item)
	}
	ve := &versionEntry{meta: cloneMeta(m), sealed: sealed}
	ve.item = c.addLocked(rec, m.Version, size)
	rec.versions[m.Version] = ve
}

func (c *readCache) putPointerLocked(rec *cacheRecord, m sdk.Meta, start time.Time) {
	if rec.latest != nil {
		c.dropItemLocked(rec.latest.item)
	}
	ttl := c.set.ttl
	p := &latestPointer{meta: cloneMeta(m), fetched: start}
	p.expires = start.Add(ttl - c.jitter(ttl/10))
	p.refresh = p.expires.Add(-ttl / 5)
	p.item = c.addLocked(rec, 0, metaSize(m))
	rec.latest = p
}

func metaSize(m sdk.Meta) int64 {
	n := cacheItemOverhead + len(m.Project) + len(m.Name)
	for _, k := range m.Keys {
		n += len(k) + 16
	}
	for k, v := range m.Labels {
		n += len(k) + len(v) + 32
	}
	return int64(n)
}

func (c *readCache) addLocked(rec *cacheRecord, version, size int64) *list.Element {
	c.bytes += size
	c.stats.bytes.Add(size)
	return c.lru.PushFront(&cacheItem{rec: rec, version: version, size: size})
}

// dropItemLocked removes one entry; the caller tidies its record.
func (c *readCache) dropItemLocked(e *list.Element) {
	it := e.Value.(*cacheItem)
	c.lru.Remove(e)
	c.bytes -= it.size
	c.stats.bytes.Add(-it.size)
	if it.version == 0 {
		it.rec.latest = nil
	} else {
		delete(it.rec.versions, it.version)
	}
}

// tidyLocked forgets a record that holds nothing any more.
func (c *readCache) tidyLocked(rec *cacheRecord) {
	if rec.latest == nil && len(rec.versions) == 0 && c.recs[rec.key] == rec {
		delete(c.recs, rec.key)
	}
}

// evictLocked drops the least recently used entries beyond max_bytes.
func (c *readCache) evictLocked() {
	for c.bytes > c.set.maxBytes {
		e := c.lru.Back()
		if e == nil {
			return
		}
		rec := e.Value.(*cacheItem).rec
		c.dropItemLocked(e)
		c.tidyLocked(rec)
		c.stats.evictions.Add(1)
	}
}

// purgeLocked drops everything of a secret and bumps its counter.
func (c *readCache) purgeLocked(k secretKey) {
	c.bumpLocked(k)
	rec := c.recs[k]
	if rec == nil {
		return
	}
	if rec.latest != nil {
		c.dropItemLocked(rec.latest.item)
	}
	for _, ve := range rec.versions {
		c.dropItemLocked(ve.item)
	}
	delete(c.recs, k)
}

// bumpLocked records a change of the secret: answers to calls begun before
// are not installed, and readers from now on do not join a refresh begun
// before.
func (c *readCache) bumpLocked(k secretKey) {
	c.seq[c.stripe(k)]++
	delete(c.flights, k)
}

func (c *readCache) stripe(k secretKey) int {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(k.project)
	h.WriteByte(0)
	h.WriteString(k.name)
	return int(h.Sum64() % cacheStripes)
}

func (c *readCache) tokenLocked(k secretKey) uint64 { return c.seq[c.stripe(k)] }

func (c *readCache) token(k secretKey) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokenLocked(k)
}

// dropBroken forgets a secret whose entry did not open (it cannot happen
// short of memory corruption; the backend is asked instead).
func (c *readCache) dropBroken(k secretKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked(k)
}

// openSecret unseals an entry into a Secret of its own.
func (c *readCache) openSecret(k secretKey, meta sdk.Meta, sealed []byte) (sdk.Secret, error) {
	data, err := c.sealer.open(c.backend, k, meta.Version, sealed)
	if err != nil {
		return sdk.Secret{}, err
	}
	return sdk.Secret{Meta: cloneMeta(meta), Data: data}, nil
}

// invalidate applies a change-notification event: drop what it proves
// stale. The gateway's own writes come here too, after write-through: the
// pointer then already names the event's version, and nothing is dropped.
func (c *readCache) invalidate(project, kind string, m sdk.Meta) {
	k := secretKey{project, m.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.recs[k]
	switch kind {
	case EventSecretDeleted:
		c.purgeLocked(k)
	case EventSecretCreated:
		if rec != nil && (rec.latest == nil || rec.latest.meta.Version != m.Version || !sameIncarnation(rec.created, m.CreatedAt)) {
			c.purgeLocked(k)
		}
	case EventSecretUpdated:
		if rec != nil && rec.latest != nil && rec.latest.meta.Version < m.Version {
			c.bumpLocked(k)
			c.dropItemLocked(rec.latest.item)
			c.tidyLocked(rec)
		}
	}
}

// dropProject forgets every secret of a project (a migration switched it
// to another backend, or changes went unseen while nobody watched it).
func (c *readCache) dropProject(project string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.recs {
		if k.project == project {
			c.purgeLocked(k)
		}
	}
}

// retire empties a cache that a reload replaced; calls still holding it
// go to the backend and install nothing.
func (c *readCache) retire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.bytes.Add(-c.bytes)
	c.bytes = 0
	c.recs = map[secretKey]*cacheRecord{}
	c.flights = map[secretKey]*refreshFlight{}
	c.lru.Init()
	c.retired = true
}

func cloneMeta(m sdk.Meta) sdk.Meta {
	m.Keys = append([]string(nil), m.Keys...)
	m.Labels = sdk.CloneData(m.Labels)
	return m
}

func cloneSecret(s sdk.Secret) sdk.Secret {
	return sdk.Secret{Meta: cloneMeta(s.Meta), Data: sdk.CloneData(s.Data)}
}
