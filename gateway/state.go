package gateway

// Shared state between replicas (docs/replicas.md). With `state.postgres`
// set, every replica keeps its routing (the migrations' switches and the
// projects they pause) in step with PostgreSQL, and change events travel
// between replicas by LISTEN/NOTIFY.
//
// How a pause reaches every replica before a migration reads the source:
//   - The replica starting a migration records it and its paused projects
//     in one transaction that bumps a shared epoch and notifies.
//   - Each replica applies a new epoch (its routing and paused projects),
//     waits for the writes it had already admitted to those projects to
//     finish (Routing.WaitWrites), then acknowledges the epoch.
//   - The starting replica waits until every replica that heartbeated in
//     the last lease has acknowledged it; a replica silent for longer
//     refuses writes by itself, because a replica accepts writes only
//     while its last completed round with the database, which found it
//     current, began less than two thirds of a lease ago (freshFor). Rounds
//     run every sixth of a lease, so a few late rounds on a loaded machine
//     do not stop writes, and the third of a lease left over covers the
//     gap between the round's start and its heartbeat's commit time.
// Writes thus never hit the database on the request path; reads never
// depend on it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretgate/secretgate/internal/pgstate"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// sharedEventQueue bounds the events waiting to be sent to other replicas;
// past it, the project's watchers elsewhere get a resync instead.
const sharedEventQueue = 4096

type sharedState struct {
	s     *Server
	store *pgstate.Store
	id    string
	lease time.Duration
	base  time.Time // lastOK counts from here, on the monotonic clock

	// lastOK is when (ns after base) the last round that found this
	// replica at the current epoch began; 0 before the first one.
	lastOK  atomic.Int64
	applied atomic.Int64 // the epoch this replica's routing reflects
	failing atomic.Bool  // for logging transitions only

	applyMu sync.Mutex // one sync at a time
	kick    chan struct{}
	events  chan sharedEvent
	lost    sync.Map // project -> struct{}: events dropped, resync owed

	// listening is closed once the first LISTEN is in place; run waits
	// for it. late: run stopped waiting first, so that connection owes
	// watchers a resync like a reconnection. Closing and late are under
	// listenMu.
	listenMu  sync.Mutex
	listening chan struct{}
	late      bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// sharedEvent is a change event as it travels between replicas: what a
// watcher and a read cache need, never a value.
type sharedEvent struct {
	Origin  string   `json:"o"`
	Project string   `json:"p"`
	Kind    string   `json:"k"`
	Meta    sdk.Meta `json:"m"`
}

func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	if host == "" {
		host = "replica"
	}
	return host + "-" + hex.EncodeToString(b)
}

// openShared connects to the state database and brings this replica's
// routing to the shared one; a replica that cannot do so does not start.
func openShared(ctx context.Context, s *Server, cfg *PostgresStateConfig) (*sharedState, error) {
	dsn, err := cfg.ConnString()
	if err != nil {
		return nil, err
	}
	store, err := pgstate.Open(ctx, dsn, cfg.stateSchema())
	if err != nil {
		return nil, fmt.Errorf("state.postgres: %w", err)
	}
	st := &sharedState{s: s, store: store, id: replicaID(), lease: cfg.LeaseDuration(), base: time.Now(),
		kick: make(chan struct{}, 1), events: make(chan sharedEvent, sharedEventQueue), listening: make(chan struct{})}
	st.ctx, st.cancel = context.WithCancel(context.Background())
	key, err := store.PageKey(ctx)
	if err == nil {
		s.pages, err = newPageSealerWithKey(key)
	}
	if err == nil {
		err = st.round(ctx)
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("state.postgres: %w", err)
	}
	s.log.Info("shared state in PostgreSQL", "replica", st.id, "schema", cfg.stateSchema(), "lease", st.lease, "epoch", st.applied.Load())
	return st, nil
}

// run starts the heartbeat, listener and event sender, and returns once
// the listener is in place: events other replicas send before it listens
// never reach this one (NOTIFY keeps nothing), so a watcher or read cache
// of a replica that serves earlier could miss a change. Past freshFor it
// returns anyway, and the late first connection sends watchers a resync.
func (st *sharedState) run() {
	st.wg.Add(3)
	go st.heartbeats()
	go st.listen()
	go st.sendEvents()
	select {
	case <-st.listening:
	case <-time.After(st.freshFor()):
		st.listenMu.Lock()
		st.late = !isClosed(st.listening)
		st.listenMu.Unlock()
		st.s.log.Warn("shared state: not listening for other replicas' changes yet; serving anyway, watchers get a resync once it is")
	}
}

// noteListening notes a LISTEN in place; it says whether this connection owes
// watchers a resync (a reconnection, or a first connection run gave up on).
func (st *sharedState) noteListening() (resync bool) {
	st.listenMu.Lock()
	defer st.listenMu.Unlock()
	if isClosed(st.listening) {
		return true
	}
	close(st.listening)
	return st.late
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// stopLoops ends the heartbeat, listener and event sender: no migration
// is adopted after it, so the migrator can stop (and save) its own.
func (st *sharedState) stopLoops() {
	if st == nil {
		return
	}
	st.cancel()
	st.wg.Wait()
}

// close leaves cleanly, handing this replica's migrations to the others at
// once, and closes the pool; after stopLoops and the migrator's last saves.
func (st *sharedState) close(ctx context.Context) {
	if st == nil {
		return
	}
	st.stopLoops()
	if err := st.store.Leave(ctx, st.id); err != nil {
		st.s.log.Warn("shared state: could not leave cleanly; this replica's migrations resume elsewhere when their lease ends", "error", err)
	}
	st.store.Close()
}

func (st *sharedState) now() int64 { return int64(time.Since(st.base)) }

// roundEvery is the heartbeat interval; freshFor how long a round that
// found this replica current vouches for its view. freshFor must stay
// under the lease: the replica starting a migration stops waiting for a
// replica silent for a lease, which by then refuses writes by itself.
func (st *sharedState) roundEvery() time.Duration { return st.lease / 6 }
func (st *sharedState) freshFor() time.Duration   { return st.lease * 2 / 3 }

// fresh: this replica's view of the shared state is recent enough to
// accept writes on.
func (st *sharedState) fresh() bool {
	last := st.lastOK.Load()
	return last != 0 && st.now()-last < int64(st.freshFor())
}

// writeError refuses writes while the view is not fresh (nil: go ahead).
func (st *sharedState) writeError() *apiError {
	if st == nil || st.fresh() {
		return nil
	}
	return newAPIError(http.StatusServiceUnavailable, api.CodeBackendUnavailable,
		"this replica has not heard from the shared state database recently enough (state.postgres), so it refuses writes rather than risk diverging from the other replicas; retry, or use another replica")
}

// readyError fails /readyz while the view is not fresh.
func (st *sharedState) readyError() error {
	if st == nil || st.fresh() {
		return nil
	}
	return errors.New("the shared state database (state.postgres) cannot be reached")
}

// round is one heartbeat: renew leases, apply a newer epoch if any, adopt
// an orphaned migration. It marks the view fresh only when it ends current.
func (st *sharedState) round(ctx context.Context) error {
	start := st.now()
	asOf := time.Now()
	epoch, owned, err := st.store.Heartbeat(ctx, st.id, st.applied.Load(), st.lease)
	if err != nil {
		return err
	}
	if st.s.migrator != nil {
		st.s.migrator.keepOwned(owned, asOf)
	}
	if epoch > st.applied.Load() {
		if err := st.sync(ctx); err != nil {
			return err
		}
	}
	st.lastOK.Store(start)
	if st.s.migrator != nil {
		st.s.migrator.adoptOrphans(ctx)
	}
	return nil
}

// sync reads the shared routing and applies it, then acknowledges it.
func (st *sharedState) sync(ctx context.Context) error {
	st.applyMu.Lock()
	defer st.applyMu.Unlock()
	snap, err := st.store.Snapshot(ctx)
	if err != nil {
		return err
	}
	if snap.Epoch <= st.applied.Load() {
		return nil
	}
	paused := st.apply(snap)
	if err := st.s.routing.WaitWrites(ctx, paused); err != nil {
		return fmt.Errorf("pausing writes to %v: %w", paused, err)
	}
	st.applied.Store(snap.Epoch)
	return st.store.Ack(ctx, st.id, snap.Epoch)
}

// apply sets every configured project's backend (a switch recorded for a
// backend this replica's configuration lacks is ignored, as with the local
// overlay) and pause; it returns every paused project, not only those it
// paused now: a sync that gave up waiting for their writes (sync) did not
// acknowledge, and the next one must wait for them again.
func (st *sharedState) apply(snap pgstate.Snapshot) []string {
	var paused []string
	for _, p := range st.s.config().Projects {
		rt, ok := st.s.routing.Lookup(p.Name)
		if !ok {
			continue
		}
		want := p.Backend
		if b, ok := snap.Routing[p.Name]; ok && st.s.backendConfigured(b) {
			want = b
		}
		// Pause before a rebinding and rebind before resuming, so that no
		// write is admitted with the backend it should no longer use.
		_, ro := snap.Paused[p.Name]
		if ro {
			paused = append(paused, p.Name)
		}
		if ro && !rt.ReadOnly {
			_ = st.s.routing.SetReadOnly(p.Name, true)
		}
		if rt.Backend != want {
			_ = st.s.routing.SetBackend(p.Name, want)
			st.s.log.Info("project rebound by the shared state", "project", p.Name, "backend", want, "epoch", snap.Epoch)
			st.s.events().publish(p.Name, EventResync, sdk.Meta{})
		}
		if !ro && rt.ReadOnly {
			_ = st.s.routing.SetReadOnly(p.Name, false)
		}
	}
	return paused
}

// reapply makes the next sync apply the shared routing again even at the
// same epoch: a configuration reload rebuilt the routing table from the file.
func (st *sharedState) reapply() {
	if st == nil {
		return
	}
	st.applyMu.Lock()
	st.applied.Store(0)
	st.applyMu.Unlock()
	st.poke()
}

// awaitAcks waits until every live replica applied epoch.
func (st *sharedState) awaitAcks(ctx context.Context, epoch int64) error {
	if err := st.sync(ctx); err != nil {
		return err
	}
	for {
		lag, err := st.store.Laggards(ctx, st.id, epoch, st.lease)
		if err != nil {
			return err
		}
		if len(lag) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replicas %v did not confirm the pause in time: %w", lag, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (st *sharedState) heartbeats() {
	defer st.wg.Done()
	t := time.NewTicker(st.roundEvery())
	defer t.Stop()
	for {
		var err error
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(st.ctx, st.freshFor())
			began := time.Now()
			err = st.round(ctx)
			cancel()
			if took := time.Since(began); err == nil && took > st.roundEvery() {
				st.s.log.Warn("shared state: a heartbeat round was slow; writes stop if rounds keep failing to finish within two thirds of the lease",
					"took", took.Round(time.Millisecond), "lease", st.lease)
			}
		case <-st.kick:
			// A round, not only a sync: a sync waiting for writes in
			// flight may take freshFor, and two such in a row without a
			// heartbeat would outlast the lease, after which the replica
			// starting a migration no longer waits for this one.
			ctx, cancel := context.WithTimeout(st.ctx, st.freshFor())
			err = st.round(ctx)
			cancel()
		}
		if st.ctx.Err() != nil {
			return
		}
		st.noteHealth(err)
	}
}

func (st *sharedState) noteHealth(err error) {
	switch {
	case err != nil && !st.failing.Swap(true):
		st.s.log.Error("shared state database unreachable: this replica refuses writes once its view is two thirds of a lease old", "replica", st.id, "error", err)
	case err == nil && st.failing.Swap(false):
		st.s.log.Info("shared state database reachable again", "replica", st.id, "epoch", st.applied.Load())
	}
}

func (st *sharedState) poke() {
	select {
	case st.kick <- struct{}{}:
	default:
	}
}

// listen keeps a LISTEN connection; after a reconnection the events missed
// meanwhile are unknown, so every project's watchers re-list and its read
// cache entries are dropped (a resync does both).
func (st *sharedState) listen() {
	defer st.wg.Done()
	backoff := 100 * time.Millisecond
	for st.ctx.Err() == nil {
		err := st.store.Listen(st.ctx, func() {
			backoff = 100 * time.Millisecond
			st.poke()
			if st.noteListening() {
				for _, p := range st.s.config().Projects {
					st.s.events().publish(p.Name, EventResync, sdk.Meta{})
				}
			}
		}, func(epoch int64) {
			if epoch > st.applied.Load() {
				st.poke()
			}
		}, st.receive)
		if st.ctx.Err() != nil {
			return
		}
		st.s.log.Debug("shared state: listening again after an error", "error", err)
		select {
		case <-st.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, st.roundEvery())
	}
}

// receive publishes another replica's event to this replica's watchers
// and read caches.
func (st *sharedState) receive(payload []byte) {
	var ev sharedEvent
	if err := json.Unmarshal(payload, &ev); err != nil || ev.Origin == st.id {
		return
	}
	if _, ok := st.s.routing.Lookup(ev.Project); !ok {
		return
	}
	st.s.events().publish(ev.Project, ev.Kind, ev.Meta)
}

// forward queues a local event for the other replicas; it never blocks a
// write.
func (st *sharedState) forward(project, kind string, m sdk.Meta) {
	if st == nil {
		return
	}
	select {
	case st.events <- sharedEvent{Origin: st.id, Project: project, Kind: kind, Meta: m}:
	default:
		st.lost.Store(project, struct{}{})
	}
}

func (st *sharedState) sendEvents() {
	defer st.wg.Done()
	for {
		select {
		case <-st.ctx.Done():
			return
		case ev := <-st.events:
			st.send(ev)
			// Projects whose events were dropped get one resync each; one
			// that fails to send is owed again, on the next event.
			var owed []string
			st.lost.Range(func(k, _ any) bool {
				st.lost.Delete(k)
				owed = append(owed, k.(string))
				return true
			})
			for _, p := range owed {
				st.send(sharedEvent{Origin: st.id, Project: p, Kind: EventResync})
			}
		}
	}
}

func (st *sharedState) send(ev sharedEvent) {
	b, err := json.Marshal(ev)
	if err == nil && len(b) > pgstate.MaxEventPayload {
		// Labels or many keys: the name and version are what matter.
		ev.Meta = sdk.Meta{Name: ev.Meta.Name, Version: ev.Meta.Version, CreatedAt: ev.Meta.CreatedAt, UpdatedAt: ev.Meta.UpdatedAt}
		b, err = json.Marshal(ev)
	}
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(st.ctx, st.freshFor())
	defer cancel()
	if err := st.store.Publish(ctx, b); err != nil && st.ctx.Err() == nil {
		st.lost.Store(ev.Project, struct{}{})
	}
}
