package file

import "bytes"

// remember caches rec as the decoding of raw: one that shared just decoded,
// or a record this process just encoded and committed, so that the next
// Read or Write of the secret (a read-back after a write, the next version)
// does not decode the JSON it wrote: that decoding was a twentieth of the
// plugin's CPU under a PUT load. rec must be what decodeRecord(raw) returns
// (held equal by TestRememberedRecordIsTheDecodedOne); the cache keeps its
// own copies.
func (c *recordCache) remember(project, name string, raw []byte, rec *secretRecord) {
	e := cachedRecord{raw: bytes.Clone(raw), rec: rec.clone()}
	key := recordKey{project, name}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[recordKey]cachedRecord{}
	}
	if _, present := c.m[key]; !present && len(c.m) >= maxCachedRecords {
		for k := range c.m { // evict one at random (map order)
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
}
