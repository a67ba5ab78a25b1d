package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// Two plugin processes on one database stand for two gateway replicas:
// their writers race on one secret with check-and-set. Every version must
// have exactly one winner, hold that winner's data, and the final version
// must count every win: no lost update, no duplicate version.
func TestCASRaceAcrossTwoProcesses(t *testing.T) {
	f := newFixture(t)
	replicas := []sdk.Backend{plugintest.Start(t, f.settings()), plugintest.Start(t, f.settings())}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	write(t, replicas[0], "race", "contended", map[string]string{"writer": "creator"})

	const perReplica = 12
	type win struct {
		writer  string
		version int64
		data    map[string]string
	}
	var (
		mu   sync.Mutex
		wins []win
		errs []error
		wg   sync.WaitGroup
	)
	for r, b := range replicas {
		for w := range perReplica {
			writer := fmt.Sprintf("r%d-w%d", r, w)
			wg.Go(func() {
				for attempt := 0; attempt < 100*perReplica; attempt++ {
					cur, err := b.Describe(ctx, sdk.Ref{Project: "race", Name: "contended"})
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: Describe: %w", writer, err))
						mu.Unlock()
						return
					}
					data := map[string]string{"writer": writer, "attempt": strconv.Itoa(attempt)}
					m, err := b.Write(ctx, sdk.WriteRequest{Project: "race", Name: "contended", Data: data,
						Mode: sdk.WriteReplace, ExpectedVersion: cur.Version})
					if errors.Is(err, sdk.ErrVersionMismatch) {
						continue
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						errs = append(errs, fmt.Errorf("%s: Write: %w", writer, err))
					case m.Version != cur.Version+1:
						errs = append(errs, fmt.Errorf("%s: expected version %d, answered %d", writer, cur.Version, m.Version))
					default:
						wins = append(wins, win{writer: writer, version: m.Version, data: data})
					}
					return
				}
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: never won", writer))
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	require.Empty(t, errs)
	const writers = 2 * perReplica
	require.Len(t, wins, writers)
	byVersion := map[int64]win{}
	for _, w := range wins {
		prev, dup := byVersion[w.version]
		require.False(t, dup, "version %d won by %s and %s", w.version, prev.writer, w.writer)
		byVersion[w.version] = w
	}
	m, err := replicas[1].Describe(ctx, sdk.Ref{Project: "race", Name: "contended"})
	require.NoError(t, err)
	require.Equal(t, int64(1+writers), m.Version)
	versions, err := replicas[0].Versions(ctx, sdk.Ref{Project: "race", Name: "contended"})
	require.NoError(t, err)
	for _, vm := range versions[1:] { // version 1 is the creator's
		require.Equal(t, byVersion[vm.Version].data, read(t, replicas[vm.Version%2], "race", "contended", vm.Version),
			"version %d must hold its winner's data", vm.Version)
	}
}

// A secret that does not exist has no row to lock: creations race on the
// INSERT instead. From two processes at once, exactly one create wins and
// the others are told it exists; concurrent upserts of a new name become
// versions 1..n, each once.
func TestCreateRaceAcrossTwoProcesses(t *testing.T) {
	f := newFixture(t)
	replicas := []sdk.Backend{plugintest.Start(t, f.settings()), plugintest.Start(t, f.settings())}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const perReplica = 8

	for round := range 3 {
		name := fmt.Sprintf("created-%d", round)
		var wg sync.WaitGroup
		results := make(chan error, 2*perReplica)
		for _, b := range replicas {
			for range perReplica {
				wg.Go(func() {
					_, err := b.Write(ctx, sdk.WriteRequest{Project: "race", Name: name, Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
					results <- err
				})
			}
		}
		wg.Wait()
		close(results)
		won := 0
		for err := range results {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, sdk.ErrAlreadyExists)
		}
		require.Equal(t, 1, won, "exactly one create of %s wins", name)
	}

	// A fresh project too, so that its data key is created in the race.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions = map[int64]int{}
	)
	for _, b := range replicas {
		for range perReplica {
			wg.Go(func() {
				m, err := b.Write(ctx, sdk.WriteRequest{Project: "fresh", Name: "upserted", Data: map[string]string{"k": "v"}, Mode: sdk.WriteUpsert})
				if !assertNoError(t, err) {
					return
				}
				mu.Lock()
				versions[m.Version]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	require.Len(t, versions, 2*perReplica, "each upsert its own version: %v", versions)
	for v := int64(1); v <= 2*perReplica; v++ {
		require.Equal(t, 1, versions[v], "version %d", v)
	}
	for _, b := range replicas {
		require.Equal(t, "v", read(t, b, "fresh", "upserted", 0)["k"], "both processes read the project's one data key")
	}
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}
