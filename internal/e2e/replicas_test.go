package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/pgtest"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/sdk/client"
)

// TestReplicasShareOneBackend: three gateways without a state section on
// one postgres backend. What a replica writes the others read at once, and
// concurrent writers of one secret through different replicas get exactly
// one winner per version: the backend's row lock decides, not a gateway.
func TestReplicasShareOneBackend(t *testing.T) {
	pg := startPostgres(t, 1)[0]
	rs := startReplicas(t, 3, replicaSpec{storageDSN: pg.NewDatabase(t), backends: []string{"pay"}})
	a, b, c := rs.srv[0], rs.srv[1], rs.srv[2]
	tok := rs.token
	canary := randomCanary(t)

	// A write on A is read on B and C; B's next version on A and C.
	r := a.Do(t, http.MethodPost, pay, tok, map[string]any{"name": "db", "data": map[string]string{"password": canary + "-1"}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	for _, s := range []*testenv.Server{b, c} {
		requireSecret(t, s, tok, "db", 1, map[string]string{"password": canary + "-1"})
	}
	r = b.Do(t, http.MethodPut, pay+"/db", tok, map[string]any{"data": map[string]string{"password": canary + "-2"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	for _, s := range []*testenv.Server{a, c} {
		requireSecret(t, s, tok, "db", 2, map[string]string{"password": canary + "-2"})
	}

	// Creating one name through all three at once: one 201, the rest 409.
	created := raceAcross(t, rs.srv, 9, func(s *testenv.Server, i int) (*testenv.Response, error) {
		return s.Try(http.MethodPost, pay, tok, map[string]any{"name": "born", "data": map[string]string{"k": fmt.Sprintf("%s-%d", canary, i)}})
	})
	sort.Ints(created)
	require.Equal(t, []int{201, 409, 409, 409, 409, 409, 409, 409, 409}, created)

	// If-Match races, one per version: exactly one winner each time, and
	// every replica then reads the winner's value as the next version.
	r = a.Do(t, http.MethodPost, pay, tok, map[string]any{"name": "cas", "data": map[string]string{"api_key": canary}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	for v := int64(1); v <= 4; v++ {
		won := ifMatchRaceAcross(t, rs.srv, pay+"/cas", tok, canary, v, 12)
		for _, s := range rs.srv {
			requireSecret(t, s, tok, "cas", v+1, map[string]string{"api_key": won})
		}
	}

	// Unconditional writers through all three: no version number given
	// twice, none lost, each version holding the write that was told it.
	const blind = 24
	versions := make([]int64, blind)
	statuses := raceAcross(t, rs.srv, blind, func(s *testenv.Server, i int) (*testenv.Response, error) {
		r, err := s.Try(http.MethodPut, pay+"/cas", tok, map[string]any{"data": map[string]string{"api_key": fmt.Sprintf("%s-blind-%d", canary, i)}})
		if err == nil && r.Status == http.StatusOK {
			var m struct {
				Version int64 `json:"version"`
			}
			err = json.Unmarshal(r.Body, &m)
			versions[i] = m.Version
		}
		return r, err
	})
	require.Equal(t, slices.Repeat([]int{http.StatusOK}, blind), statuses)
	got := slices.Sorted(slices.Values(versions))
	want := make([]int64, blind)
	for i := range want {
		want[i] = int64(6 + i)
	}
	require.Equal(t, want, got, "versions handed out by the three replicas")
	for i, v := range versions {
		g := rs.srv[(i+1)%3].Do(t, http.MethodGet, fmt.Sprintf("%s/cas?version=%d", pay, v), tok, nil)
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
		var sec secretBody
		g.JSON(t, &sec)
		require.Equal(t, fmt.Sprintf("%s-blind-%d", canary, i), sec.Data["api_key"], "version %d", v)
	}

	for _, s := range rs.srv {
		require.Equal(t, 0, s.Stop(t))
	}
	rs.requireNoCanary(t, canary)
}

// stateLease is the replicas' lease, the unit of every bound on taking a
// migration over and on noticing an outage. Shorter is faster, but a
// replica accepts writes only within half a lease of its last heartbeat
// round, and at 2-3 s rounds on a loaded two-core machine (load 15) came
// late enough for a replica to refuse writes with the database up.
const stateLease = 5 * time.Second

// TestReplicasSharedState: three replicas sharing their state in
// PostgreSQL (state.postgres), the project on a postgres backend. The
// state lives on a server of its own, so that stopping it leaves the
// backend up: a 503 then comes from the state, not from the backend.
func TestReplicasSharedState(t *testing.T) {
	pgs := startPostgres(t, 2)
	storage, stateDB := pgs[0], pgs[1]
	storageDSN, stateDSN := storage.NewDatabase(t), stateDB.NewDatabase(t)
	rs := startReplicas(t, 3, replicaSpec{storageDSN: storageDSN, backends: []string{"src", "dst"}, stateDSN: stateDSN, lease: stateLease})
	canary := randomCanary(t)

	// One phase after the other on the same replicas: each leaves them
	// running for the next (a restart included).
	pageTokenAndEvents(t, rs, canary)
	migrationAcrossReplicas(t, rs, storageDSN, canary)
	stateOutage(t, rs, stateDB, canary)

	for _, s := range rs.srv {
		if !s.Exited() {
			require.Equal(t, 0, s.Stop(t))
		}
	}
	rs.requireNoCanary(t, canary)
	requireDumpClean(t, stateDB, stateDSN, canary)
	requireDumpClean(t, storage, storageDSN, canary)
}

// pageTokenAndEvents: a page token issued by A is good on B and C, and a
// watcher on C hears of a write on A within two seconds (the backends do
// not poll, so only the state's notifications can bring it).
func pageTokenAndEvents(t *testing.T, rs *replicas, canary string) {
	a, b, c := rs.srv[0], rs.srv[1], rs.srv[2]
	tok := rs.token
	for i := range 5 {
		r := rs.srv[i%3].Do(t, http.MethodPost, pay, tok, map[string]any{"name": fmt.Sprintf("pt-%d", i), "data": map[string]string{"v": canary}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	}
	var names []string
	token := ""
	for i, s := range []*testenv.Server{a, b, c} {
		path := pay + "?prefix=pt-&page_size=2"
		if token != "" {
			path += "&page_token=" + url.QueryEscape(token)
		}
		r := s.Do(t, http.MethodGet, path, tok, nil)
		require.Equal(t, http.StatusOK, r.Status, "page %d on replica %d with A's token chain: %s", i+1, i, r.Body)
		var page struct {
			Secrets []struct {
				Name string `json:"name"`
			} `json:"secrets"`
			NextPageToken string `json:"next_page_token"`
		}
		r.JSON(t, &page)
		for _, m := range page.Secrets {
			names = append(names, m.Name)
		}
		token = page.NextPageToken
	}
	require.Equal(t, []string{"pt-0", "pt-1", "pt-2", "pt-3", "pt-4"}, names)
	require.Empty(t, token)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cl, err := client.New(c.URL, tok)
	require.NoError(t, err)
	w, err := cl.Watch(ctx, "payments", client.WatchOptions{Secrets: "watched-*"})
	require.NoError(t, err)
	for i := range 2 {
		name := fmt.Sprintf("watched-%d", i)
		sent := time.Now()
		r := a.Do(t, http.MethodPost, pay, tok, map[string]any{"name": name, "data": map[string]string{"v": canary}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		select {
		case ev, ok := <-w.Events():
			require.True(t, ok, "the watch on C ended: %v", w.Err())
			require.Equal(t, client.EventCreated, ev.Kind)
			require.Equal(t, name, ev.Name)
			require.Equal(t, int64(1), ev.Version)
			t.Logf("event for A's write %s on C after %s", name, time.Since(sent).Round(time.Millisecond))
		case <-time.After(2 * time.Second):
			require.Failf(t, "no event", "a watcher on C heard nothing of %s written on A within 2s", name)
		}
	}
}

type replicaReport struct {
	migrationReport
	Resumed int `json:"resumed"`
}

func getReport(t *testing.T, s *testenv.Server, token, id string) replicaReport {
	t.Helper()
	r := s.Do(t, http.MethodGet, "/v1/migrations/"+id, token, nil)
	require.Equal(t, http.StatusOK, r.Status, "GET migration %s on %s: %s", id, s.URL, r.Body)
	var rep replicaReport
	r.JSON(t, &rep)
	return rep
}

// requireRefused requires that a write through s is refused because the
// project migrates; unless the migration has switched meanwhile, which
// ends the read-only time.
func requireRefused(t *testing.T, s, other *testenv.Server, token, id, name string) (switched bool) {
	t.Helper()
	w := s.Do(t, http.MethodPut, pay+"/"+name, token, map[string]any{"data": map[string]string{"value": "late"}})
	if w.Status == http.StatusConflict && w.ErrorCode() == "migration_in_progress" {
		return false
	}
	rep := getReport(t, other, token, id)
	require.True(t, rep.Switched, "a write on %s was answered %d %s while migration %s was %+v", s.URL, w.Status, w.Body, id, rep)
	return true
}

// migrationAcrossReplicas: a migration started on A is shared by all (the
// same report everywhere, writes refused everywhere); A is killed mid-copy,
// another replica takes it over within about two leases and finishes; every
// replica then reads from the target, also after a restart of all three.
func migrationAcrossReplicas(t *testing.T, rs *replicas, storageDSN, canary string) {
	a, b, c := rs.srv[0], rs.srv[1], rs.srv[2]
	tok := rs.token
	const n = 400
	want := seedForResume(t, a, tok, n, canary)
	// with what the earlier phases wrote
	total := int(queryInt(t, storageDSN, `SELECT count(*) FROM src.secrets WHERE project = 'payments'`))
	require.GreaterOrEqual(t, total, n)

	r := a.Do(t, http.MethodPost, "/v1/migrations", tok, map[string]any{"source": "src", "target": "dst", "projects": []string{"payments"},
		"versions": "all", "on_conflict": "fail", "switch": true, "workers": 1})
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	var started struct{ ID string }
	r.JSON(t, &started)
	id := started.ID
	// From the 202 on, no replica accepts a write: no waiting here.
	for _, s := range rs.srv {
		require.False(t, requireRefused(t, s, b, tok, id, "r001"), "switched before the first check")
		p := s.Do(t, http.MethodPost, pay, tok, map[string]any{"name": "new-during", "data": map[string]string{"v": canary}})
		require.Equal(t, http.StatusConflict, p.Status, "%s", p.Body)
		require.Equal(t, "migration_in_progress", p.ErrorCode(), "%s", p.Body)
	}
	repA, repB, repC := getReport(t, a, tok, id), getReport(t, b, tok, id), getReport(t, c, tok, id)
	for _, rep := range []replicaReport{repB, repC} {
		require.Equal(t, id, rep.ID)
		require.Equal(t, []string{repA.Source, repA.Target}, []string{rep.Source, rep.Target})
		require.Equal(t, repA.Projects, rep.Projects)
		require.Equal(t, "running", rep.State)
	}

	var rep replicaReport
	require.Eventually(t, func() bool {
		rep = getReport(t, a, tok, id) // the owner's own view is the most current
		return rep.Copied >= 10 || rep.State != "running"
	}, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, "running", rep.State, "the migration ended before A could be killed: %+v", rep)
	done := rep.Copied + rep.Skipped
	a.Kill()
	killed := time.Now()
	t.Logf("killed A at %d of %d", done, total)

	// B or C takes over; until the copy ends both refuse writes.
	var resumedAfter time.Duration
	for poll := 0; rep.State == "running"; poll++ {
		rep = getReport(t, rs.srv[1+poll%2], tok, id)
		if resumedAfter == 0 && (rep.Resumed > 0 || rep.Copied+rep.Skipped > done) {
			resumedAfter = time.Since(killed)
		}
		if resumedAfter == 0 {
			require.Less(t, time.Since(killed), 2*stateLease+3*time.Second, "nobody took the migration over: %+v", rep)
		}
		require.Less(t, time.Since(killed), time.Minute, "the migration did not end: %+v", rep)
		if rep.State == "running" && !rep.Switched {
			// A name that does not exist: the switch may come between
			// the report and the PUT, and a write accepted then must not
			// change a secret readAll checks below.
			requireRefused(t, b, c, tok, id, "probe-absent")
			requireRefused(t, c, b, tok, id, "probe-absent")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("taken over %s after the kill (lease %s); finished %s after it", resumedAfter.Round(time.Millisecond), stateLease, time.Since(killed).Round(time.Millisecond))
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	require.GreaterOrEqual(t, rep.Resumed, 1)
	require.Equal(t, total, rep.Total)
	require.Equal(t, total, rep.Copied+rep.Skipped)
	require.Zero(t, rep.Failed)
	require.True(t, rep.Switched)
	require.Equal(t, rep, getReport(t, b, tok, id), "B's report")
	require.Equal(t, rep, getReport(t, c, tok, id), "C's report")

	// Every replica writes to dst now: a write through each lands there.
	for i, s := range []*testenv.Server{b, c} {
		name := fmt.Sprintf("after-switch-%d", i)
		w := s.Do(t, http.MethodPost, pay, tok, map[string]any{"name": name, "data": map[string]string{"v": canary}})
		require.Equal(t, http.StatusCreated, w.Status, "%s", w.Body)
		require.Equal(t, int64(1), queryInt(t, storageDSN, `SELECT count(*) FROM dst.secrets WHERE name = $1`, name), name)
		require.Equal(t, int64(0), queryInt(t, storageDSN, `SELECT count(*) FROM src.secrets WHERE name = $1`, name), name)
	}
	// And reads: with the source emptied behind the gateways' backs, a
	// replica still reading it would answer 404.
	execSQL(t, storageDSN, `TRUNCATE src.versions, src.secrets CASCADE`)
	readAll := func(live []*testenv.Server) {
		t.Helper()
		for i, data := range want {
			name := fmt.Sprintf("r%03d", i)
			sec := getSecret(t, live[i%len(live)], tok, name)
			require.Equal(t, data, sec.Data, name)
			require.Equal(t, fmt.Sprint(i), sec.Labels["i"], name)
			wantVersion := int64(1)
			if i%10 == 0 {
				wantVersion = 3 // seedForResume wrote three
			}
			require.Equal(t, wantVersion, sec.Version, "%s: each version copied once", name)
		}
	}
	readAll([]*testenv.Server{b, c})

	// After a restart of all three (A was dead), the switch still holds.
	rs.restartAll(t)
	readAll(rs.srv)
	for i, s := range rs.srv {
		require.Equal(t, rep, getReport(t, s, tok, id), "replica %d after the restart", i)
		name := fmt.Sprintf("after-restart-%d", i)
		w := s.Do(t, http.MethodPost, pay, tok, map[string]any{"name": name, "data": map[string]string{"v": canary}})
		require.Equal(t, http.StatusCreated, w.Status, "%s", w.Body)
		require.Equal(t, int64(1), queryInt(t, storageDSN, `SELECT count(*) FROM dst.secrets WHERE name = $1`, name), name)
	}
}

// stateOutage: the state database stops under three replicas writing
// steadily. Every replica turns unready and refuses writes within about a
// lease, recovers when the database is back, and every write acknowledged
// before, during and after is there.
func stateOutage(t *testing.T, rs *replicas, stateDB *pgtest.Server, canary string) {
	tok := rs.token
	acks := newAckLog()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range rs.srv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks.writeLoop(s, tok, fmt.Sprintf("ack-%d", i), canary, 40*time.Millisecond, stop)
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriters)

	require.Eventually(t, func() bool { return acks.ackedCount() >= 6 }, 20*time.Second, 20*time.Millisecond)
	before := acks.ackedCount()
	stopping := time.Now()
	stateDB.Halt() // returns once PostgreSQL has shut down
	halting := time.Since(stopping)
	unready := waitReadyz(t, rs.srv, http.StatusServiceUnavailable, 2*stateLease+3*time.Second)
	allUnready := time.Now()
	t.Logf("all replicas unready %s after the state database was down (lease %s; its shutdown took %s)",
		unready.Round(time.Millisecond), stateLease, halting.Round(time.Millisecond))
	for i, s := range rs.srv {
		w := s.Do(t, http.MethodPut, pay+"/r002", tok, map[string]any{"data": map[string]string{"value": canary + "-outage"}})
		require.Equal(t, http.StatusServiceUnavailable, w.Status, "a write on replica %d without its state: %s", i, w.Body)
	}
	time.Sleep(500 * time.Millisecond)
	during := acks.ackedCount()

	restarting := time.Now()
	stateDB.Restart(t)
	recovered := waitReadyz(t, rs.srv, http.StatusOK, 6*stateLease+10*time.Second)
	t.Logf("all replicas ready %s after the state database restarted", recovered.Round(time.Millisecond))
	for i, s := range rs.srv {
		w := s.Do(t, http.MethodPut, pay+"/r002", tok, map[string]any{"data": map[string]string{"value": fmt.Sprintf("%s-back-%d", canary, i)}})
		require.Equal(t, http.StatusOK, w.Status, "a write on replica %d once ready again: %s", i, w.Body)
	}
	require.Eventually(t, func() bool { return acks.ackedCount() >= during+6 }, 20*time.Second, 20*time.Millisecond)
	stopWriters()
	// r002 was version 1: the refused writes left nothing behind.
	requireSecret(t, rs.srv[0], tok, "r002", 4, map[string]string{"value": canary + "-back-2"})

	acks.mu.Lock()
	defer acks.mu.Unlock()
	t.Logf("writers: %d acknowledged before the stop, %d by the end of the outage, %d in all; answers by status %v", before, during, len(acks.acked), acks.counts)
	names := slices.Sorted(maps.Keys(acks.acked))
	for _, name := range names {
		sent := acks.sent[name]
		require.False(t, sent.After(allUnready) && sent.Before(restarting),
			"%s was acknowledged, sent %s after every replica was unready", name, sent.Sub(allUnready))
	}
	for i, name := range names {
		require.Equal(t, acks.acked[name], getSecret(t, rs.srv[i%3], tok, name).Data["value"], name)
	}
}
