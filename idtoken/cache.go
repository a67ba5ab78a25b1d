package idtoken

import (
	"sync"
	"time"
)

// DefaultCacheSize is how many verified tokens are remembered by default.
const DefaultCacheSize = 10_000

// sweepEvery bounds how often a full cache scans itself for expired entries,
// so that a cache full of live tokens does not cost a scan per insert.
const sweepEvery = time.Second

// cacheEntry is a successful verification, remembered until the token's exp.
type cacheEntry struct {
	src     *keySource
	keyID   string // thumbprint of the key that verified the signature
	expires time.Time
	id      Identity
}

// resultCache maps the SHA-256 of a token to its verified identity. The key
// is a hash, so the cache never holds a token.
type resultCache struct {
	mu        sync.RWMutex
	entries   map[[32]byte]*cacheEntry
	max       int
	lastSweep time.Time
}

func newResultCache(max int) *resultCache {
	return &resultCache{entries: make(map[[32]byte]*cacheEntry), max: max}
}

func (c *resultCache) get(h [32]byte) *cacheEntry {
	c.mu.RLock()
	e := c.entries[h]
	c.mu.RUnlock()
	return e
}

func (c *resultCache) put(h [32]byte, e *cacheEntry, now time.Time) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[h]; !ok && len(c.entries) >= c.max {
		if now.Sub(c.lastSweep) >= sweepEvery {
			c.lastSweep = now
			for k, old := range c.entries {
				if !now.Before(old.expires) {
					delete(c.entries, k)
				}
			}
		}
		// Still full of live tokens: drop one at random (map order). Such a
		// token is verified again on its next use, which is only slower.
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[h] = e
}

func (c *resultCache) remove(h [32]byte) {
	c.mu.Lock()
	delete(c.entries, h)
	c.mu.Unlock()
}

func (c *resultCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
