package gateway

// GET /v1/projects/{project}/events: Server-Sent Events of the writes made
// through this gateway (docs/api.md, "Change notifications").
//
// Design:
//   - Each project has an in-memory log: a ring of its last eventLogSize
//     events, indexed from 1 in each process. Writers append under the
//     project's lock and never wait for a watcher: they only poke each
//     subscriber's one-slot wake-up channel with a non-blocking send.
//   - A watcher's only buffer is that slot and its cursor into the shared
//     ring; on waking it copies what follows its cursor and writes it. No
//     watcher ever calls a backend: events carry what the write returned.
//   - A watcher that falls more than eventLogSize events behind (a slow
//     reader), or resumes from an id the log no longer holds or never held
//     (a gateway restart starts again at 1), gets `resync` with the latest
//     index and continues live from there: it must re-list to catch up.
//   - A migration switch appends a `resync` to each switched project's log:
//     the project's secrets now come from another backend, whose contents
//     may differ (on_conflict skip), so every watcher re-lists.
//   - Writes made behind the gateway's back (directly in Vault, AWS, GCP)
//     are found by the project's poller while someone watches it
//     (watchpoll.go); they enter the same log.
//   - Events carry names and versions, never a value. A deleted secret's
//     event carries version 0: backends' Delete returns no version.

import (
	"context"
	"encoding/json"
	"net/http"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
)

// Event kinds, as sent on the `event:` line.
const (
	EventSecretCreated = "secret.created"
	EventSecretUpdated = "secret.updated"
	EventSecretDeleted = "secret.deleted"
	EventResync        = "resync"
)

const (
	// eventLogSize is how many events of each project the gateway keeps
	// for resuming watchers: about 200 KiB per project that has had a
	// write (each event is kept rendered).
	eventLogSize = 1024
	// defaultKeepAlive is the comment interval that keeps proxies (most
	// close idle connections after 30 to 60 s) from cutting quiet streams.
	defaultKeepAlive = 15 * time.Second
)

// event is one entry of a project's log.
type event struct {
	index   uint64
	kind    string
	name    string // "" for resync
	version int64
	// wire is the event as sent, rendered once when it is appended
	// instead of once per watcher.
	wire []byte
}

// subscriber is one open stream. wake has one slot: many writes while the
// watcher is busy cost one wake-up, and a writer never blocks on it.
type subscriber struct {
	wake   chan struct{}
	glob   string // ?secrets=, "" = all; narrows what the poller lists
	cursor uint64 // last index handled; guarded by the project's lock
	resync bool   // owes a resync before anything else; same lock
}

// projectLog is one project's ring of events and its subscribers.
type projectLog struct {
	name string
	// mu is taken for reading by every watcher that wakes up (pending): a
	// write wakes them all at once, and they must not queue on a mutex.
	mu   sync.RWMutex
	ring [eventLogSize]event
	last uint64 // index of the newest event; 0 = none yet
	subs map[*subscriber]struct{}
	poll pollState // writes behind the gateway's back (watchpoll.go)
	hub  *eventHub // its observers see every event; nil in some tests
}

// eventHub holds every project's log of one Server.
type eventHub struct {
	mu       sync.Mutex
	projects map[string]*projectLog
	// keepAlive is the comment interval in nanoseconds; tests shorten it.
	keepAlive atomic.Int64
	// closed ends every stream at Shutdown, which otherwise would wait
	// for watchers that never hang up.
	closed    chan struct{}
	closeOnce sync.Once
	servers   map[*http.Server]bool // whose Shutdown closes the hub
	// ctx ends with the hub: the pollers' backend calls stop with it.
	ctx     context.Context
	cancel  context.CancelFunc
	pollers sync.WaitGroup
	// linger is pollLinger (watchpoll.go); tests shorten it.
	linger time.Duration
	// observers see every event as it is appended, under its project's
	// lock (the read caches' invalidation, readcache_server.go).
	observers atomic.Pointer[[]func(project, kind string, m sdk.Meta)]
}

// observe registers f to see every event of every project from now on.
func (h *eventHub) observe(f func(project, kind string, m sdk.Meta)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var fs []func(project, kind string, m sdk.Meta)
	if cur := h.observers.Load(); cur != nil {
		fs = append(fs, *cur...)
	}
	fs = append(fs, f)
	h.observers.Store(&fs)
}

func newEventHub() *eventHub {
	h := &eventHub{projects: map[string]*projectLog{}, closed: make(chan struct{}), servers: map[*http.Server]bool{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.linger = pollLinger
	h.keepAlive.Store(int64(defaultKeepAlive))
	return h
}

// close ends every stream and poller, and waits for the pollers: after it,
// nothing of the hub calls a backend.
func (h *eventHub) close() {
	h.closeOnce.Do(func() {
		close(h.closed)
		h.cancel()
	})
	h.pollers.Wait()
}

// events returns the server's hub (New makes it; handler tests that build
// a Server by hand get one on first use).
func (s *Server) events() *eventHub {
	s.eventsOnce.Do(func() {
		if s.hub == nil {
			s.hub = newEventHub()
		}
	})
	return s.hub
}

// publish records a successful write through the gateway and wakes the
// project's watchers. It never blocks on a watcher. m is what the write
// returned (a delete knows only the name).
func (s *Server) publish(project, kind string, m sdk.Meta) {
	s.events().publish(project, kind, m)
	s.shared.forward(project, kind, m) // to the other replicas (state.go)
}

func (h *eventHub) project(name string) *projectLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	pl, ok := h.projects[name]
	if !ok {
		pl = &projectLog{name: name, subs: map[*subscriber]struct{}{}, hub: h}
		h.projects[name] = pl
	}
	return pl
}

func (h *eventHub) publish(project, kind string, m sdk.Meta) {
	pl := h.project(project)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.append(kind, m)
}

// append adds an event under pl.mu and wakes every subscriber.
func (pl *projectLog) append(kind string, m sdk.Meta) {
	if kind == EventSecretDeleted {
		m.Version = 0
	}
	pl.last++
	ev := event{index: pl.last, kind: kind, name: m.Name, version: m.Version}
	d := eventData{Project: pl.name, Name: m.Name, Index: pl.last}
	if kind != EventResync {
		d.Version = &ev.version
	}
	ev.wire = appendEvent(nil, pl.last, kind, d)
	pl.ring[pl.last%eventLogSize] = ev
	pl.poll.note(kind, m, pl.last)
	if pl.hub != nil {
		if fs := pl.hub.observers.Load(); fs != nil {
			for _, f := range *fs {
				f(pl.name, kind, m)
			}
		}
	}
	for sub := range pl.subs {
		select {
		case sub.wake <- struct{}{}:
		default: // already poked: it will read everything up to pl.last
		}
	}
}

// subscribe registers a watcher resuming after lastID (resume false: live
// only, from the next event). A lastID the log cannot continue from (older
// than the ring, or newer than the latest index) owes a resync first.
func (pl *projectLog) subscribe(lastID uint64, resume bool, glob string) *subscriber {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	sub := &subscriber{wake: make(chan struct{}, 1), glob: glob, cursor: pl.last}
	if resume {
		if lastID > pl.last || pl.last-lastID > eventLogSize {
			sub.resync = true
		} else {
			sub.cursor = lastID
		}
		sub.wake <- struct{}{}
	}
	pl.subs[sub] = struct{}{}
	pl.poll.idleSince = time.Time{}
	return sub
}

func (pl *projectLog) unsubscribe(sub *subscriber) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	delete(pl.subs, sub)
	if len(pl.subs) == 0 {
		pl.poll.idleSince = time.Now()
	}
}

// pending copies the events after the subscriber's cursor and advances it.
// A cursor the ring has overwritten (the watcher fell behind) turns into a
// resync at the latest index; resync is then the index to announce.
// The cursor and resync flag are the subscriber's own once it is
// subscribed: a read lock is enough.
func (pl *projectLog) pending(sub *subscriber, buf []event) (evs []event, resync uint64, owes bool) {
	pl.mu.RLock()
	defer pl.mu.RUnlock()
	if sub.resync || pl.last-sub.cursor > eventLogSize {
		sub.resync = false
		sub.cursor = pl.last
		return buf[:0], pl.last, true
	}
	evs = buf[:0]
	for i := sub.cursor + 1; i <= pl.last; i++ {
		evs = append(evs, pl.ring[i%eventLogSize])
	}
	sub.cursor = pl.last
	return evs, 0, false
}

// closeOnShutdown makes srv's Shutdown end every stream of this hub.
func (h *eventHub) closeOnShutdown(srv *http.Server) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if srv == nil || h.servers[srv] {
		return
	}
	h.servers[srv] = true
	srv.RegisterOnShutdown(func() {
		h.closeOnce.Do(func() {
			close(h.closed)
			h.cancel()
		})
	})
}

// eventData is the JSON of an event's data line: names and numbers only.
type eventData struct {
	Project string `json:"project"`
	Name    string `json:"name,omitempty"`
	Version *int64 `json:"version,omitempty"`
	Index   uint64 `json:"index"`
}

// registerEvents adds the event stream, under the middleware of every
// project route (404 without a binding on the project).
func (s *Server) registerEvents(e *gin.Engine) {
	s.events() // the hub exists before the first write or watcher
	e.GET("/v1/projects/:project/events", noStore, withAction(ActionList), s.authenticate, s.authorizeProject, s.watchEvents)
}

func (s *Server) watchEvents(c *gin.Context) {
	r := s.req(c)
	q := c.Request.URL.Query()
	glob := q.Get("secrets")
	if glob != "" {
		if _, err := path.Match(glob, ""); err != nil {
			r.fail(invalidArg("secrets", "is not a valid glob (path.Match syntax: *, ?, [...])"))
			return
		}
	}
	raw, field := c.GetHeader("Last-Event-ID"), "Last-Event-ID"
	if raw == "" {
		raw, field = q.Get("last_event_id"), "last_event_id"
	}
	var lastID uint64
	if raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			r.fail(invalidArg(field, "must be the id of an event: a non-negative integer"))
			return
		}
		lastID = n
	}
	if !r.allowed(ActionList) || !r.auditSuccess() {
		return
	}

	h := s.events()
	if srv, ok := c.Request.Context().Value(http.ServerContextKey).(*http.Server); ok {
		h.closeOnShutdown(srv)
	}
	pl := h.project(r.route.Project)
	sub := pl.subscribe(lastID, raw != "", glob)
	st := &eventStream{s: s, h: h, pl: pl, sub: sub, subject: r.subject, project: r.route.Project, glob: glob}
	s.startPoller(r.route.Project, pl)
	c.Header("Content-Type", "text/event-stream")
	c.Header("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	if c.Request.ProtoMajor == 1 && st.hijack(c) {
		return // the stream goes on in goroutines of its own
	}
	// HTTP/2 cannot hand its stream over: it is served in this handler.
	defer pl.unsubscribe(sub)
	st.serveInHandler(c)
}

// appendEvent renders one event. The resync's id lets a client that
// reconnects afterwards resume from the index it re-listed at.
func appendEvent(buf []byte, index uint64, kind string, d eventData) []byte {
	j, _ := json.Marshal(d) // names and numbers: Marshal cannot fail
	buf = append(buf, "id: "...)
	buf = strconv.AppendUint(buf, index, 10)
	buf = append(buf, "\nevent: "...)
	buf = append(buf, kind...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, j...)
	return append(buf, "\n\n"...)
}
