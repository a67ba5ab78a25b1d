package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/pgstate"
	"github.com/secretgate/secretgate/internal/pgtest"
	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// sharedEnv is several gateways (replicas, in this process) over the same
// two backends, sharing their state in a real PostgreSQL.
type sharedEnv struct {
	pg       *pgtest.Server
	dsn      string
	src, dst *hookedBackend
	replicas []*migrateEnv
}

// sharedTestLease is short enough for a quick takeover, long enough for
// heartbeats on a loaded machine under -race.
const sharedTestLease = "3s"

func newSharedEnv(t *testing.T, n int) *sharedEnv {
	t.Helper()
	pg := pgtest.Start(t)
	e := &sharedEnv{pg: pg, dsn: pg.NewDatabase(t), src: &hookedBackend{memBackend: newMemBackend()}, dst: &hookedBackend{memBackend: newMemBackend()}}
	for range n {
		e.add(t)
	}
	return e
}

// add starts one more replica.
func (e *sharedEnv) add(t *testing.T) *migrateEnv {
	t.Helper()
	logs := &syncbuf.Buffer{}
	audit := &memAuditor{}
	cfg := &Config{
		Backends: []BackendConfig{{Name: "a"}, {Name: "b"}},
		Projects: []ProjectConfig{{Name: "payments", Backend: "a"}, {Name: "other", Backend: "a"}},
		State:    StateConfig{Postgres: &PostgresStateConfig{DSN: e.dsn, Lease: sharedTestLease}},
	}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}
	authz := fakeAuthz{
		tokens: map[string]string{"t-admin": "admin"},
		grants: map[string]fakeGrant{"admin/payments": {actions: all}, "admin/other": {actions: all}},
	}
	srv, err := New(context.Background(), cfg, Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Authorizer: authz, Auditor: audit,
		Backends: &hookedBackends{hooked: map[string]*hookedBackend{"a": e.src, "b": e.dst}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	r := &migrateEnv{h: &harness{srv: srv, audit: audit}, srv: srv, src: e.src, dst: e.dst, audit: audit, logs: logs}
	e.replicas = append(e.replicas, r)
	return r
}

// putSecret creates a secret.
func putSecret(t *testing.T, r *migrateEnv, project, name, value string) resp {
	t.Helper()
	return r.h.do(t, "POST", "/v1/projects/"+project+"/secrets", "t-admin", map[string]any{"name": name, "data": map[string]string{"v": value}})
}

func TestSharedStateMigrationPausesEveryReplica(t *testing.T) {
	e := newSharedEnv(t, 3)
	a, b, c := e.replicas[0], e.replicas[1], e.replicas[2]
	seed(t, e.src.memBackend, "payments", 5, func(i int) string { return "v" })
	e.src.gate = make(chan struct{})

	id := a.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "switch": true})
	// Once A answered 202, no replica accepts a write to the project.
	for i, r := range []*migrateEnv{a, b, c} {
		w := putSecret(t, r, "payments", "late", "x")
		require.Equal(t, http.StatusConflict, w.code, "replica %d: %s", i, w.body)
		code, _ := errCode(t, w)
		require.Equal(t, api.CodeMigrationInProgress, code)
		// Another project stays writable.
		require.Equal(t, http.StatusCreated, putSecret(t, r, "other", "s"+string(rune('a'+i)), "x").code)
	}
	// A second migration of the project is refused on another replica.
	w := b.h.do(t, "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}})
	require.Equal(t, http.StatusConflict, w.code, "%s", w.body)

	close(e.src.gate)
	rep := c.wait(t, id) // the report is read on a replica that does not run it
	require.Equal(t, api.MigrationSucceeded, rep.State, "%+v", rep)
	require.True(t, rep.Switched)
	for i, r := range []*migrateEnv{a, b, c} {
		require.Eventually(t, func() bool {
			rt, _ := r.srv.Routing().Lookup("payments")
			return rt.Backend == "b" && !rt.ReadOnly
		}, 10*time.Second, 10*time.Millisecond, "replica %d never saw the switch", i)
		require.Equal(t, http.StatusCreated, putSecret(t, r, "payments", "after"+string(rune('a'+i)), "y").code)
	}
	for _, name := range []string{"aftera", "afterb", "afterc"} {
		_, err := e.dst.memBackend.Describe(context.Background(), sdk.Ref{Project: "payments", Name: name})
		require.NoError(t, err, "%s was not written to the target after the switch", name)
	}
	// A replica started later serves the switched binding at once.
	d := e.add(t)
	rt, _ := d.srv.Routing().Lookup("payments")
	require.Equal(t, "b", rt.Backend)
}

func TestSharedStateTakeover(t *testing.T) {
	e := newSharedEnv(t, 2)
	a, b := e.replicas[0], e.replicas[1]
	seed(t, e.src.memBackend, "payments", 5, func(i int) string { return "v" })
	e.src.gate = make(chan struct{})
	id := a.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "switch": true})

	// A dies: no more heartbeats, no clean leave, its copy stops.
	a.srv.shared.cancel()
	a.srv.shared.wg.Wait()
	a.srv.migrator.cancel()
	close(e.src.gate)

	rep := b.wait(t, id)
	require.Equal(t, api.MigrationSucceeded, rep.State, "%+v", rep)
	require.GreaterOrEqual(t, rep.Resumed, 1)
	require.True(t, rep.Switched)
	rt, _ := b.srv.Routing().Lookup("payments")
	require.Equal(t, "b", rt.Backend)
	require.Contains(t, b.logs.String(), "resuming a migration whose replica stopped")
}

func TestSharedStateEventsAndPageTokens(t *testing.T) {
	e := newSharedEnv(t, 2)
	a, b := e.replicas[0], e.replicas[1]
	for _, n := range []string{"one", "two", "three"} {
		require.Equal(t, http.StatusCreated, putSecret(t, a, "payments", n, "v").code)
	}
	// Every write on A reaches B's event log (its watchers, its read cache).
	pl := b.srv.events().project("payments")
	require.Eventually(t, func() bool {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return pl.last >= 3
	}, 5*time.Second, 10*time.Millisecond)

	w := a.h.do(t, "GET", "/v1/projects/payments/secrets?page_size=1", "t-admin", nil)
	require.Equal(t, http.StatusOK, w.code, "%s", w.body)
	var page struct {
		NextPageToken string `json:"next_page_token"`
	}
	require.NoError(t, json.Unmarshal(w.body, &page))
	require.NotEmpty(t, page.NextPageToken)
	w = b.h.do(t, "GET", "/v1/projects/payments/secrets?page_size=1&page_token="+page.NextPageToken, "t-admin", nil)
	require.Equal(t, http.StatusOK, w.code, "a page token from replica A is refused by B: %s", w.body)
}

// A replica serves only once it listens: a write on another replica right
// after it started reaches its event log (NOTIFY keeps nothing for a
// replica not listening yet).
func TestSharedStateListensBeforeServing(t *testing.T) {
	e := newSharedEnv(t, 1)
	a := e.replicas[0]
	for i := range 5 {
		b := e.add(t)
		require.Equal(t, http.StatusCreated, putSecret(t, a, "payments", fmt.Sprintf("s%d", i), "v").code)
		pl := b.srv.events().project("payments")
		require.Eventually(t, func() bool {
			pl.mu.Lock()
			defer pl.mu.Unlock()
			return pl.last >= 1
		}, 5*time.Second, 10*time.Millisecond, "replica %d missed a write made right after it started", i+2)
	}
}

func TestSharedStateDatabaseDown(t *testing.T) {
	e := newSharedEnv(t, 1)
	a := e.replicas[0]
	require.Equal(t, http.StatusOK, a.h.do(t, "GET", "/readyz", "", nil).code)
	e.pg.Halt()
	require.Eventually(t, func() bool { return a.h.do(t, "GET", "/readyz", "", nil).code == http.StatusServiceUnavailable },
		10*time.Second, 20*time.Millisecond)
	w := putSecret(t, a, "payments", "down", "x")
	require.Equal(t, http.StatusServiceUnavailable, w.code, "%s", w.body)
	require.Contains(t, string(w.body), "shared state database")
	// Reads do not depend on the state database.
	require.Equal(t, http.StatusOK, a.h.do(t, "GET", "/v1/projects/payments/secrets", "t-admin", nil).code)

	e.pg.Restart(t)
	require.Eventually(t, func() bool { return a.h.do(t, "GET", "/readyz", "", nil).code == http.StatusOK },
		20*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusCreated, putSecret(t, a, "payments", "up", "x").code)
}

// A migration's 202 waits until every replica finished the writes to its
// projects that it admitted before the pause (the copy lists the source
// only after they landed), even when a write outlasts one attempt to
// confirm the pause (freshFor): the next attempt waits for it again.
func TestSharedStatePauseWaitsForWritesInFlight(t *testing.T) {
	e := newSharedEnv(t, 2)
	a, b := e.replicas[0], e.replicas[1]
	done, ok := b.srv.Routing().BeginWrite("payments") // admitted on B, still landing
	require.True(t, ok)
	defer done()

	answered := make(chan *httptest.ResponseRecorder, 1)
	posted := time.Now()
	go func() {
		req := httptest.NewRequest("POST", "/v1/migrations", strings.NewReader(`{"source":"a","target":"b","projects":["payments"]}`))
		req.Header.Set("Authorization", "Bearer t-admin")
		w := httptest.NewRecorder()
		a.srv.Handler().ServeHTTP(w, req)
		answered <- w
	}()
	// B pauses the project at once, but confirms only once the write ended:
	// past freshFor, which ends B's first attempt, and a few heartbeats.
	require.Eventually(t, func() bool {
		rt, _ := b.srv.Routing().Lookup("payments")
		return rt.ReadOnly
	}, 5*time.Second, 10*time.Millisecond)
	lease, err := time.ParseDuration(sharedTestLease)
	require.NoError(t, err)
	select {
	case w := <-answered:
		t.Fatalf("the migration started (%d, after %s) while a write B admitted before the pause was in flight\n%s", w.Code, time.Since(posted), b.logs.String())
	case <-time.After(lease):
	}
	done()
	select {
	case w := <-answered:
		require.Equal(t, http.StatusAccepted, w.Code, "%s", w.Body)
	case <-time.After(10 * time.Second):
		t.Fatal("the migration did not start once the write ended")
	}
}

// A replica accepts writes only while its last good round began less than
// two thirds of a lease ago: the replica starting a migration stops
// waiting for one silent for a lease, which must refuse writes by then.
func TestSharedStateWritesNeedAFreshView(t *testing.T) {
	lease := 3 * time.Second
	st := &sharedState{lease: lease, base: time.Now().Add(-time.Hour)}
	require.NotNil(t, st.writeError(), "writes accepted before any round")
	require.Error(t, st.readyError())
	for _, tc := range []struct {
		age   time.Duration
		fresh bool
	}{
		{0, true},
		{lease*2/3 - 100*time.Millisecond, true},
		{lease*2/3 + 100*time.Millisecond, false},
		{lease - 100*time.Millisecond, false},
	} {
		st.lastOK.Store(st.now() - int64(tc.age))
		if tc.fresh {
			require.Nil(t, st.writeError(), "view %s old", tc.age)
			require.NoError(t, st.readyError(), "view %s old", tc.age)
		} else {
			require.NotNil(t, st.writeError(), "writes accepted on a view %s old (lease %s)", tc.age, lease)
			require.Error(t, st.readyError(), "ready on a view %s old (lease %s)", tc.age, lease)
		}
	}
}

// The view is as fresh as the start of the round that vouched for it, not
// its end: the other replicas judge this one by its heartbeat's time, so a
// slow round must not stretch the window in which it accepts writes.
func TestSharedStateFreshnessCountsFromTheRoundStart(t *testing.T) {
	e := newSharedEnv(t, 1)
	st := e.replicas[0].srv.shared
	st.cancel() // the test runs the rounds
	st.wg.Wait()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "LOCK TABLE "+pgstate.DefaultSchema+".replicas IN EXCLUSIVE MODE") // holds the heartbeat up
	require.NoError(t, err)

	began := st.now()
	errc := make(chan error, 1)
	go func() { errc <- st.round(ctx) }()
	const held = 500 * time.Millisecond
	time.Sleep(held)
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-errc)
	require.Less(t, time.Duration(st.lastOK.Load()-began), held/2, "the view is dated from the end of a slow round")
}

// A LISTEN owes watchers a resync when it is a reconnection (events sent
// while it was down are lost) or when the replica stopped waiting for its
// first one and served without it; the first, awaited one does not.
func TestSharedStateListenResync(t *testing.T) {
	for _, tc := range []struct {
		name  string
		late  bool
		first bool
	}{
		{"awaited first LISTEN", false, false},
		{"first LISTEN after run gave up waiting", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &sharedState{listening: make(chan struct{}), late: tc.late}
			require.Equal(t, tc.first, st.noteListening())
			require.True(t, isClosed(st.listening), "run stops waiting once listening")
			require.True(t, st.noteListening(), "a reconnection owes a resync")
		})
	}
}
