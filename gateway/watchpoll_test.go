package gateway

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// pollEnv is an events env whose backend "mem" is polled every interval,
// and whose writes "behind the gateway's back" go straight to the backend.
type pollEnv struct {
	*eventsEnv
	mem *memBackend
}

func newPollEnv(t *testing.T, interval string, tune ...func(*Server)) *pollEnv {
	t.Helper()
	e := newEventsEnv(t, append([]func(*Server){func(s *Server) {
		s.cfg.Backends = []BackendConfig{{Name: "mem", Plugin: "/opt/mem-plugin", WatchPollInterval: interval}}
		s.events().linger = 300 * time.Millisecond
	}}, tune...)...)
	return &pollEnv{eventsEnv: e, mem: e.backends.m["mem"]}
}

// direct writes behind the gateway's back.
func (p *pollEnv) direct(t *testing.T, name, value string) sdk.Meta {
	t.Helper()
	m, err := p.mem.Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: name, Data: map[string]string{"password": value}, Mode: sdk.WriteUpsert})
	require.NoError(t, err)
	return m
}

func (p *pollEnv) directDelete(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, p.mem.Delete(context.Background(), sdk.Ref{Project: "payments", Name: name}))
}

// lists counts the List calls the gateway made to "mem".
func (p *pollEnv) lists() uint64 {
	return p.srv.metrics.backendCalls.counters("mem")[callList].Load()
}

// Writes made behind the gateway's back reach watchers as events; what
// existed before the first watcher (the baseline) is not announced.
func TestPollerAnnouncesDirectWrites(t *testing.T) {
	p := newPollEnv(t, "100ms")
	p.direct(t, "before", eventsSecret)
	s := p.watch(t, "", "t-admin")
	require.Eventually(t, func() bool { return p.lists() >= 1 }, 5*time.Second, 10*time.Millisecond, "no baseline listing")

	p.direct(t, "db", eventsSecret)
	expect(t, s.next(t), 1, EventSecretCreated, "db", 1)
	p.direct(t, "db", eventsSecret+"2")
	expect(t, s.next(t), 2, EventSecretUpdated, "db", 2)
	p.directDelete(t, "db")
	expect(t, s.next(t), 3, EventSecretDeleted, "db", 0)
	// Deleted and created again between two rounds: both are told.
	p.direct(t, "before", eventsSecret+"3") // v2
	expect(t, s.next(t), 4, EventSecretUpdated, "before", 2)
	p.mu(func() {
		p.mem.secrets[key("payments", "before")].meta.Version = 1
		p.mem.secrets[key("payments", "before")].meta.CreatedAt = time.Now().Add(time.Second)
	})
	expect(t, s.next(t), 5, EventSecretDeleted, "before", 0)
	expect(t, s.next(t), 6, EventSecretCreated, "before", 1)
	s.none(t, 300*time.Millisecond)
	require.NotContains(t, s.rawText(), eventsSecret)
}

func (p *pollEnv) mu(f func()) {
	p.mem.mu.Lock()
	defer p.mem.mu.Unlock()
	f()
}

// A write through the gateway is announced once, by the gateway, never a
// second time by the poller that lists it afterwards.
func TestPollerNeverRepeatsGatewayWrites(t *testing.T) {
	p := newPollEnv(t, "100ms")
	s := p.watch(t, "", "t-admin")
	require.Eventually(t, func() bool { return p.lists() >= 1 }, 5*time.Second, 10*time.Millisecond)
	// Two rounds after each write: each had its chance to repeat it.
	rounds := func() {
		at := p.lists()
		require.Eventually(t, func() bool { return p.lists() >= at+2 }, 5*time.Second, 10*time.Millisecond)
	}
	p.write(t, "POST", "payments/secrets", secretBody("db"), 201)
	expect(t, s.next(t), 1, EventSecretCreated, "db", 1)
	rounds()
	p.write(t, "PUT", "payments/secrets/db", map[string]any{"data": map[string]string{"password": "x-2"}}, 200)
	expect(t, s.next(t), 2, EventSecretUpdated, "db", 2)
	rounds()
	p.write(t, "DELETE", "payments/secrets/db", nil, 204)
	expect(t, s.next(t), 3, EventSecretDeleted, "db", 0)
	rounds()
	// The next event is the sentinel: nothing was announced twice.
	p.direct(t, "sentinel", "v")
	expect(t, s.next(t), 4, EventSecretCreated, "sentinel", 1)
}

// One listing a round, whatever the number of watchers; narrowed to the
// prefix the watchers' globs share; no polling once nobody watches.
func TestPollerCost(t *testing.T) {
	rec := &prefixRecorder{}
	p := newPollEnv(t, "100ms", func(s *Server) { s.backends = recordingBackends{Backends: s.backends, rec: rec} })

	var streams []*stream
	for range 20 {
		streams = append(streams, p.watch(t, "?secrets=db-*", "t-admin"))
	}
	streams = append(streams, p.watch(t, "?secrets=db-main", "t-admin"))
	require.Eventually(t, func() bool { return p.lists() >= 2 }, 5*time.Second, 10*time.Millisecond)
	start, t0 := p.lists(), time.Now()
	time.Sleep(time.Second)
	rounds := float64(p.lists()-start) / time.Since(t0).Seconds()
	// 100 ms ±10%: about 10 rounds a second for 21 watchers, not 210.
	require.InDelta(t, 10, rounds, 4, "listings per second")
	require.Equal(t, []string{"db-"}, rec.prefixes(), "the listing is narrowed to the globs' common prefix")

	p.direct(t, "db-main", "v")
	p.direct(t, "web", "v") // no watcher's glob selects it
	for _, s := range streams {
		expect(t, s.next(t), 1, EventSecretCreated, "db-main", 1)
	}

	for _, s := range streams {
		s.close()
	}
	// After the linger (300 ms here), the poller stops.
	time.Sleep(time.Second)
	at := p.lists()
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, at, p.lists(), "polling went on with nobody watching")
}

// A listing that lags (eventual consistency) announces nothing false: an
// older version, a deleted name still listed, a name missing from the
// listing that Describe still finds.
func TestPollerToleratesStaleListings(t *testing.T) {
	t.Run("unit", func(t *testing.T) {
		created := time.Now().Add(-time.Hour)
		pl := &projectLog{subs: map[*subscriber]struct{}{}}
		pl.reconcile("mem", "", 0, map[string]sdk.Meta{"db": {Name: "db", Version: 4, CreatedAt: created, UpdatedAt: created}})
		pl.append(EventSecretUpdated, sdk.Meta{Name: "db", Version: 5, CreatedAt: created}) // through the gateway
		pl.append(EventSecretCreated, sdk.Meta{Name: "new", Version: 1, CreatedAt: time.Now()})
		pl.append(EventSecretDeleted, sdk.Meta{Name: "gone"})
		start := pl.last
		missing := pl.reconcile("mem", "", start, map[string]sdk.Meta{
			"db":   {Name: "db", Version: 4, CreatedAt: created, UpdatedAt: created},   // lags behind v5
			"gone": {Name: "gone", Version: 3, CreatedAt: created, UpdatedAt: created}, // deleted, still listed
		})
		require.Equal(t, start, pl.last, "a stale listing announced something")
		require.Equal(t, []string{"new"}, missing, "a name missing from the listing is only a candidate")
		// Writes made while the listing ran are newer news: no delete.
		missing = pl.reconcile("mem", "", 0, map[string]sdk.Meta{})
		require.Empty(t, missing)
	})
	t.Run("describe confirms deletes", func(t *testing.T) {
		hide := &atomic.Bool{}
		p := newPollEnv(t, "100ms", func(s *Server) { s.backends = hidingListBackends{Backends: s.backends, hide: hide, name: "db"} })
		p.direct(t, "db", "v")
		s := p.watch(t, "", "t-admin")
		require.Eventually(t, func() bool { return p.lists() >= 1 }, 5*time.Second, 10*time.Millisecond)
		hide.Store(true) // the listing lags: db is missing, but exists
		at := p.lists()
		require.Eventually(t, func() bool { return p.lists() >= at+3 }, 5*time.Second, 10*time.Millisecond)
		p.direct(t, "sentinel", "v")
		expect(t, s.next(t), 1, EventSecretCreated, "sentinel", 1)
		p.directDelete(t, "db")
		expect(t, s.next(t), 2, EventSecretDeleted, "db", 0)
	})
}

// One round whose listing and Describe both miss a secret (a replica that
// has not seen it yet) announces nothing; deleteRounds rounds in a row do,
// and a listing that shows the name again in between starts the count over.
func TestPollerDeleteNeedsRoundsInARow(t *testing.T) {
	created := time.Now().Add(-time.Hour)
	db := map[string]sdk.Meta{"db": {Name: "db", Version: 1, CreatedAt: created, UpdatedAt: created}}
	pl := &projectLog{subs: map[*subscriber]struct{}{}}
	pl.reconcile("mem", "", 0, db) // the baseline
	round := func(listed map[string]sdk.Meta) {
		t.Helper()
		start := pl.last
		if missing := pl.reconcile("mem", "", start, listed); len(missing) > 0 {
			require.Equal(t, []string{"db"}, missing)
			pl.confirmDeleted("mem", start, missing) // Describe: not found
		}
	}
	round(map[string]sdk.Meta{})
	require.Zero(t, pl.last, "one round that missed db announced its delete")
	round(db) // listed again
	for range deleteRounds - 1 {
		round(map[string]sdk.Meta{})
	}
	require.Zero(t, pl.last, "the rounds before the listing that showed db counted")
	round(map[string]sdk.Meta{})
	require.EqualValues(t, 1, pl.last, "no delete after %d rounds in a row", deleteRounds)
	require.Equal(t, EventSecretDeleted, pl.ring[1].kind)
	require.Equal(t, "db", pl.ring[1].name)
	round(map[string]sdk.Meta{})
	require.EqualValues(t, 1, pl.last, "a delete announced twice")
}

// Changes made while nobody watched were not seen: a watcher resuming
// across that gap is told to re-list.
func TestPollerBaselineAfterGapResyncs(t *testing.T) {
	p := newPollEnv(t, "100ms")
	s := p.watch(t, "", "t-admin")
	require.Eventually(t, func() bool { return p.lists() >= 1 }, 5*time.Second, 10*time.Millisecond)
	p.direct(t, "db", "v")
	expect(t, s.next(t), 1, EventSecretCreated, "db", 1)
	s.close()
	time.Sleep(time.Second) // beyond the linger: the poller stops
	p.direct(t, "db", "v2") // unseen
	r := p.watch(t, "", "t-admin", "Last-Event-ID", "1")
	expect(t, r.next(t), 2, EventResync, "", 0)
	p.direct(t, "db", "v3")
	expect(t, r.next(t), 3, EventSecretUpdated, "db", 3)
}

// Writes through the gateway while the first round lists are delivered as
// they are and never again: no resync, since nothing went unpolled between
// them and the listing (a watcher that connected, then saw writes before
// the slow first listing ended, was told to re-list for nothing), and the
// baseline notes them though the listing, read before them, does not show
// them (the next round announced them a second time).
func TestPollerFirstBaselineAfterGatewayWritesDoesNotResync(t *testing.T) {
	p := newPollEnv(t, "100ms")
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the server's shutdown waits for the poller
	p.mu(func() { p.mem.listGate = gate })
	s := p.watch(t, "", "t-admin")
	require.Eventually(t, func() bool { return p.lists() >= 1 }, 5*time.Second, 10*time.Millisecond, "no baseline listing")
	p.write(t, http.MethodPost, "payments/secrets", secretBody("db"), http.StatusCreated)
	open() // the baseline listing, read before the write, ends after it
	expect(t, s.next(t), 1, EventSecretCreated, "db", 1)
	require.Eventually(t, func() bool { return p.lists() >= 2 }, 5*time.Second, 10*time.Millisecond, "no round after the baseline")
	p.direct(t, "db", eventsSecret+"2")
	expect(t, s.next(t), 2, EventSecretUpdated, "db", 2)
}

// A baseline that comes late, after failed rounds, owes a resync: changes
// made behind the gateway's back between the watcher's start and the
// listing that finally worked are in the baseline, never announced.
func TestPollerLateBaselineResyncs(t *testing.T) {
	p := newPollEnv(t, "100ms")
	p.mu(func() { p.mem.listErr = sdk.ErrUnavailable })
	s := p.watch(t, "", "t-admin")
	require.Eventually(t, func() bool { return p.lists() >= 1 }, 5*time.Second, 10*time.Millisecond, "no first round")
	p.direct(t, "db", eventsSecret) // unseen: no baseline yet
	p.write(t, http.MethodPost, "payments/secrets", secretBody("gw"), http.StatusCreated)
	expect(t, s.next(t), 1, EventSecretCreated, "gw", 1)
	p.mu(func() { p.mem.listErr = nil })
	expect(t, s.next(t), 2, EventResync, "", 0)
}

// Backends without polling (file, or watch_poll_interval 0) are never
// listed for watchers.
func TestPollerOff(t *testing.T) {
	p := newPollEnv(t, "0")
	s := p.watch(t, "", "t-admin")
	p.direct(t, "db", "v")
	s.none(t, 500*time.Millisecond)
	require.Zero(t, p.lists())
}

func (s *stream) close() { _ = s.resp.Body.Close() }

// prefixRecorder records the prefixes of List calls.
type prefixRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *prefixRecorder) prefixes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p := range r.seen {
		out = append(out, p)
	}
	return out
}

type recordingBackends struct {
	Backends
	rec *prefixRecorder
}

func (b recordingBackends) Backend(name string) (sdk.Backend, error) {
	be, err := b.Backends.Backend(name)
	if err != nil {
		return nil, err
	}
	return recordingBackend{Backend: be, rec: b.rec}, nil
}

type recordingBackend struct {
	sdk.Backend
	rec *prefixRecorder
}

func (b recordingBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	b.rec.mu.Lock()
	if b.rec.seen == nil {
		b.rec.seen = map[string]bool{}
	}
	b.rec.seen[req.Prefix] = true
	b.rec.mu.Unlock()
	return b.Backend.List(ctx, req)
}

// hidingListBackends leaves one name out of listings while hide is set.
type hidingListBackends struct {
	Backends
	hide *atomic.Bool
	name string
}

func (b hidingListBackends) Backend(name string) (sdk.Backend, error) {
	be, err := b.Backends.Backend(name)
	if err != nil {
		return nil, err
	}
	return hidingListBackend{Backend: be, b: b}, nil
}

type hidingListBackend struct {
	sdk.Backend
	b hidingListBackends
}

func (h hidingListBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	page, err := h.Backend.List(ctx, req)
	if err != nil || !h.b.hide.Load() {
		return page, err
	}
	kept := page.Secrets[:0:0]
	for _, m := range page.Secrets {
		if m.Name != h.b.name {
			kept = append(kept, m)
		}
	}
	page.Secrets = kept
	return page, nil
}

// Which first baselines owe watchers a resync: the rule of reconcile,
// term by term, on the event log alone.
func TestPollerBaselineResyncRule(t *testing.T) {
	tests := []struct {
		name   string
		since  uint64 // the log's last index when the poller started
		rounds int    // rounds begun, this one included
		during int    // gateway writes logged while the baseline listed
		resync bool
	}{
		{"first round, writes while it listed", 0, 1, 3, false},
		{"events before the poller started", 2, 1, 3, true},
		{"a late baseline after failed rounds", 0, 2, 3, true},
		// A watcher may have missed writes the log no longer holds, and
		// the replay cannot note them in the baseline.
		{"more writes while it listed than the log holds", 0, 1, eventLogSize, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl := &projectLog{subs: map[*subscriber]struct{}{}}
			for range tc.since {
				pl.append(EventSecretCreated, sdk.Meta{Name: "old", Version: 1})
			}
			pl.poll.since, pl.poll.rounds = tc.since, tc.rounds
			start := pl.last
			for i := range tc.during {
				pl.append(EventSecretUpdated, sdk.Meta{Name: "db", Version: int64(i + 2)})
			}
			pl.reconcile("mem", "", start, map[string]sdk.Meta{"db": {Name: "db", Version: 1}})
			require.Equal(t, tc.resync, pl.ring[pl.last%eventLogSize].kind == EventResync)
			if !tc.resync {
				require.Equal(t, int64(tc.during+1), pl.poll.known["db"].version, "the writes while it listed are noted in the baseline")
			}
		})
	}
}
