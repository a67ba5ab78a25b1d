package file

import (
	"slices"
	"sync"

	"github.com/secretgate/secretgate/sdk"
	bolt "go.etcd.io/bbolt"
)

// maxMemoNames bounds the names the list memo holds, over all its pages.
const maxMemoNames = 10000

// listMemo remembers the pages List answered, each for exactly the state
// of the database it was read in. bbolt gives every committed write a new
// transaction id, and a read transaction carries the id of the last commit
// it sees, so a page read at id T is the answer of every read at T on the
// same database, and of none after any write. Walking the secrets bucket
// (opening each secret's bucket, reading and checking its record) was a
// third of the plugin's CPU under a LIST load; a client polling an
// unchanged project now costs a copy of the page.
type listMemo struct {
	mu    sync.Mutex
	db    *bolt.DB // the state the pages were read in: db at txid
	txid  int
	pages map[sdk.ListRequest]sdk.ListPage // never handed out, only copies
	names int
}

// get returns a copy of the page memoized for req in tx's state.
func (m *listMemo) get(tx *bolt.Tx, req sdk.ListRequest) (sdk.ListPage, bool) {
	m.mu.Lock()
	p, ok := m.pages[req]
	ok = ok && m.db == tx.DB() && m.txid == tx.ID()
	m.mu.Unlock()
	if !ok {
		return sdk.ListPage{}, false
	}
	// A stored page is never changed, so it can be copied unlocked.
	return clonePage(p), true
}

// put memoizes a copy of page, the answer to req in tx's state. Pages of an
// older state are dropped as soon as one of a newer state comes.
func (m *listMemo) put(tx *bolt.Tx, req sdk.ListRequest, page sdk.ListPage) {
	n := len(page.Secrets)
	if n > maxMemoNames {
		return
	}
	db, id := tx.DB(), tx.ID()
	page = clonePage(page)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.db != db || id > m.txid || m.pages == nil:
		m.db, m.txid, m.pages, m.names = db, id, map[sdk.ListRequest]sdk.ListPage{}, 0
	case id < m.txid:
		return // read before a write that the memo has already seen
	}
	if old, ok := m.pages[req]; ok {
		m.names -= len(old.Secrets)
		delete(m.pages, req)
	}
	for k, p := range m.pages { // evict at random (map order) to fit
		if m.names+n <= maxMemoNames {
			break
		}
		m.names -= len(p.Secrets)
		delete(m.pages, k)
	}
	m.pages[req] = page
	m.names += n
}

// forget drops every page (the database was closed or reopened).
func (m *listMemo) forget() {
	m.mu.Lock()
	m.db, m.txid, m.pages, m.names = nil, 0, nil, 0
	m.mu.Unlock()
}

// clonePage copies a page deep enough that neither copy's owner can change
// the other's: the slice, and each name's keys and labels.
func clonePage(p sdk.ListPage) sdk.ListPage {
	out := sdk.ListPage{Secrets: slices.Clone(p.Secrets), NextPageToken: p.NextPageToken}
	for i := range out.Secrets {
		m := &out.Secrets[i]
		m.Keys = slices.Clone(m.Keys)
		m.Labels = sdk.CloneData(m.Labels)
	}
	return out
}
