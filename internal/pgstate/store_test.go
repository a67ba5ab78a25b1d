package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, "")
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func TestStoreClaimsOwnershipAndLeases(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn) // two replicas
	rep := json.RawMessage(`{"id":"m1"}`)
	lease := 500 * time.Millisecond

	e1, err := a.StartMigration(ctx, "m1", "A", []string{"p1", "p2"}, true, rep, lease)
	require.NoError(t, err)
	require.Positive(t, e1)
	snap, err := b.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, e1, snap.Epoch)
	require.Equal(t, map[string]string{"p1": "m1", "p2": "m1"}, snap.Paused)

	// Another migration of an overlapping project is refused, by name.
	_, err = b.StartMigration(ctx, "m2", "B", []string{"p2", "p3"}, true, rep, lease)
	var busy *BusyError
	require.ErrorAs(t, err, &busy)
	require.Equal(t, BusyError{Project: "p2", Migration: "m1"}, *busy)

	// B has not acknowledged e1 and heartbeated recently: it lags.
	_, _, err = b.Heartbeat(ctx, "B", 0, lease)
	require.NoError(t, err)
	lag, err := a.Laggards(ctx, "A", e1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"B"}, lag)
	require.NoError(t, b.Ack(ctx, "B", e1))
	lag, err = a.Laggards(ctx, "A", e1, time.Minute)
	require.NoError(t, err)
	require.Empty(t, lag)
	// A heartbeat that read B's epoch before the ack does not undo it.
	_, _, err = b.Heartbeat(ctx, "B", 0, lease)
	require.NoError(t, err)
	lag, err = a.Laggards(ctx, "A", e1, time.Minute)
	require.NoError(t, err)
	require.Empty(t, lag, "an acknowledgement went back")
	// A replica silent for longer than the staleness bound refuses writes
	// by itself: it is waited for no more.
	lag, err = a.Laggards(ctx, "A", e1+1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"B"}, lag)
	time.Sleep(300 * time.Millisecond)
	lag, err = a.Laggards(ctx, "A", e1+1, 200*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, lag, "a silent replica is still waited for")

	// While A renews, nobody takes over; once its lease ran out, B does,
	// and A's saves are refused from then on.
	_, owned, err := a.Heartbeat(ctx, "A", e1, lease)
	require.NoError(t, err)
	require.Equal(t, []string{"m1"}, owned)
	_, _, ok, err := b.TakeOver(ctx, "B", lease)
	require.NoError(t, err)
	require.False(t, ok)
	time.Sleep(lease + 100*time.Millisecond)
	id, got, ok, err := b.TakeOver(ctx, "B", lease)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "m1", id)
	require.JSONEq(t, string(rep), string(got))
	_, err = a.SaveMigration(ctx, "m1", "A", Update{State: StateRunning, Report: rep}, 100)
	require.True(t, errors.Is(err, ErrNotOwner), "%v", err)
	_, owned, err = a.Heartbeat(ctx, "A", e1, lease)
	require.NoError(t, err)
	require.Empty(t, owned)

	// B switches and finishes in one save each: the epoch moves, the
	// pause ends, the routing is shared.
	e2, err := b.SaveMigration(ctx, "m1", "B", Update{State: StateRunning, Report: rep, Paused: []string{}, Routing: map[string]string{"p1": "x", "p2": "x"}}, 100)
	require.NoError(t, err)
	require.Greater(t, e2, e1)
	e3, err := b.SaveMigration(ctx, "m1", "B", Update{State: "succeeded", Report: rep}, 100)
	require.NoError(t, err)
	require.Zero(t, e3, "nothing paused changed: no new epoch")
	snap, err = a.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"p1": "x", "p2": "x"}, snap.Routing)
	require.Empty(t, snap.Paused)
	// Finished: the projects are free again.
	_, err = a.StartMigration(ctx, "m3", "A", []string{"p2"}, false, rep, lease)
	require.NoError(t, err)
}

func TestStorePageKeyIsShared(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Shared(t).NewDatabase(t)
	k1, err := open(t, dsn).PageKey(ctx)
	require.NoError(t, err)
	k2, err := open(t, dsn).PageKey(ctx)
	require.NoError(t, err)
	require.Len(t, k1, 32)
	require.Equal(t, k1, k2)
}

func TestStoreRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Shared(t).NewDatabase(t)
	s := open(t, dsn)
	_, err := s.pool.Exec(ctx, s.sql(`UPDATE {s}.schema_version SET version = 99`))
	require.NoError(t, err)
	_, err = Open(ctx, dsn, "")
	require.ErrorIs(t, err, ErrSchemaNewer)
	require.Contains(t, err.Error(), "version 99")
}

func TestStoreEventsReachListeners(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	got := make(chan string, 4)
	epochs := make(chan int64, 4)
	done := make(chan error, 1)
	go func() {
		done <- b.Listen(ctx, func() { close(ready) }, func(e int64) { epochs <- e }, func(p []byte) { got <- string(p) })
	}()
	<-ready
	require.NoError(t, a.Publish(ctx, []byte(`{"p":"x"}`)))
	require.Equal(t, `{"p":"x"}`, <-got)
	e, err := a.StartMigration(ctx, "m", "A", []string{"p"}, true, json.RawMessage(`{}`), time.Second)
	require.NoError(t, err)
	require.Equal(t, e, <-epochs)
	cancel()
	require.Error(t, <-done)
}

// Replicas claiming one project at the same moment: exactly one wins.
func TestStoreConcurrentClaimsHaveOneWinner(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Shared(t).NewDatabase(t)
	stores := []*Store{open(t, dsn), open(t, dsn), open(t, dsn)}
	for round := range 5 {
		project := fmt.Sprintf("p%d", round)
		var wg sync.WaitGroup
		var won atomic.Int32
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := stores[i%len(stores)]
				id := fmt.Sprintf("m%d-%d", round, i)
				if _, err := s.StartMigration(ctx, id, "R", []string{project}, true, json.RawMessage(`{}`), time.Minute); err == nil {
					won.Add(1)
				} else {
					var busy *BusyError
					require.ErrorAs(t, err, &busy)
				}
			}()
		}
		wg.Wait()
		require.Equal(t, int32(1), won.Load(), "round %d: several migrations claimed project %s", round, project)
	}
}

// Replicas starting together create the schema once: the advisory lock
// serializes them (without it, all but one fail on CREATE).
func TestStoreConcurrentOpensCreateTheSchemaOnce(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	for round := range 3 {
		schema := fmt.Sprintf("state_%d", round)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range cap(errs) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(context.Background(), dsn, schema)
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "schema %s", schema)
		}
	}
}

// A migration that ends without a switch (failed, or switch off) resumes
// its projects' writes: that is a new epoch, or the other replicas would
// never re-read the state and keep the projects paused.
func TestStoreEndingAPauseBumpsTheEpoch(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.Shared(t).NewDatabase(t))
	rep := json.RawMessage(`{}`)
	e1, err := s.StartMigration(ctx, "m", "A", []string{"p"}, true, rep, time.Minute)
	require.NoError(t, err)
	e2, err := s.SaveMigration(ctx, "m", "A", Update{State: "failed", Report: rep}, 100)
	require.NoError(t, err)
	require.Greater(t, e2, e1)
	snap, err := s.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, e2, snap.Epoch)
	require.Empty(t, snap.Paused)
}
