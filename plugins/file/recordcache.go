package file

import (
	"bytes"
	"maps"
	"slices"
	"sync"

	"github.com/secretgate/secretgate/sdk"
)

// maxCachedRecords bounds the record cache (about 1 KiB an entry).
const maxCachedRecords = 10000

// recordCache memoizes decoded metadata records. An entry is used only when
// the stored bytes are exactly the ones it was decoded from, so it can never
// serve a stale record: a changed record has other bytes and is decoded
// again. Records hold metadata (keys, labels, versions, times), never a
// value. Decoding the JSON was about a quarter of the plugin's CPU under a
// read load, and a list page decodes up to 1,000 of them.
type recordCache struct {
	mu sync.Mutex
	m  map[recordKey]cachedRecord

	// pages memoizes whole List pages of these records (listmemo.go).
	pages listMemo
}

type recordKey struct{ project, name string }

type cachedRecord struct {
	raw []byte
	rec *secretRecord
}

// decode returns a record the caller owns (a copy of the cached one).
func (c *recordCache) decode(project, name string, raw []byte) (*secretRecord, error) {
	rec, cached, err := c.shared(project, name, raw)
	if err != nil || !cached {
		return rec, err
	}
	return rec.clone(), nil
}

// meta is decode(...).meta(project, name) without copying the whole record
// first (its versions too) only to copy keys and labels out of the copy:
// that clone was a fifth of the plugin's CPU under a LIST load.
func (c *recordCache) meta(project, name string, raw []byte) (sdk.Meta, error) {
	rec, _, err := c.shared(project, name, raw)
	if err != nil {
		return sdk.Meta{}, err
	}
	return rec.meta(project, name), nil
}

// shared returns the record of raw. When cached is true it is the cache's
// own: the caller reads it and must not change it or let it escape.
func (c *recordCache) shared(project, name string, raw []byte) (rec *secretRecord, cached bool, err error) {
	key := recordKey{project, name}
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	// Entries are never changed once stored (a new one replaces them), so
	// reading e.rec outside the lock is safe.
	if ok && bytes.Equal(e.raw, raw) {
		return e.rec, true, nil
	}
	rec, err = decodeRecord(project, name, raw)
	if err != nil {
		return nil, false, err
	}
	// raw belongs to a bbolt transaction: remember keeps copies.
	c.remember(project, name, raw, rec)
	return rec, false, nil
}

// forget drops every entry and page (the database was reopened).
func (c *recordCache) forget() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
	c.pages.forget()
}

func (r *secretRecord) clone() *secretRecord {
	out := *r
	out.Incarnation = bytes.Clone(r.Incarnation)
	out.Keys = slices.Clone(r.Keys)
	out.Labels = maps.Clone(r.Labels)
	out.Versions = slices.Clone(r.Versions)
	return &out
}
