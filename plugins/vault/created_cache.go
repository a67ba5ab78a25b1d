package vault

import (
	"sync"
	"time"
)

// createdCache remembers each secret's CreatedAt, so that reading a secret
// past version 1 is one request instead of two (data, then metadata for the
// creation time). An entry is only trusted for the exact version it was
// recorded with, identified by number and nanosecond creation time: a
// secret deleted and made again (by anyone) has new versions, so a stale
// entry never matches. It holds names and times, never values.
type createdCache struct {
	mu      sync.Mutex
	entries map[string]createdEntry
}

type createdEntry struct {
	version        int64
	versionCreated time.Time
	createdAt      time.Time
}

// createdCacheMax bounds memory; when full the cache starts over, which
// costs one metadata read per secret.
const createdCacheMax = 10000

func cacheKey(project, name string) string { return project + "/" + name }

func (c *createdCache) get(project, name string, version int64, versionCreated time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[cacheKey(project, name)]
	if !ok || e.version != version || !e.versionCreated.Equal(versionCreated) {
		return time.Time{}, false
	}
	return e.createdAt, true
}

func (c *createdCache) put(project, name string, e createdEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= createdCacheMax {
		c.entries = make(map[string]createdEntry)
	}
	c.entries[cacheKey(project, name)] = e
}

func (c *createdCache) forget(project, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, cacheKey(project, name))
}
