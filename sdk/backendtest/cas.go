package backendtest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func casTests() []subtest {
	return []subtest{
		{"CASStale", testCASStale},
		{"CASDelete", testCASDelete},
		{"CASRace", testCASRace},
	}
}

// testCASStale: a write whose ExpectedVersion is not the latest is refused
// and changes nothing; the current one succeeds.
func testCASStale(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "cas", map[string]string{"gen": "1"}, nil)
	s.replace(t, ctx, p, "cas", map[string]string{"gen": "2"})
	for _, expected := range []int64{1, 3, 99} {
		_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "cas", Data: map[string]string{"gen": "stale"},
			Mode: sdk.WriteReplace, ExpectedVersion: expected})
		requireIs(t, err, sdk.ErrVersionMismatch, fmt.Sprintf("Write with ExpectedVersion %d when the latest is 2", expected))
	}
	sec := s.read(t, ctx, p, "cas", 0)
	require.Equal(t, int64(2), sec.Version, "refused CAS writes must not add a version")
	requireData(t, map[string]string{"gen": "2"}, sec.Data, "refused CAS writes must not change the data")

	m, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "cas", Data: map[string]string{"gen": "3"},
		Mode: sdk.WriteReplace, ExpectedVersion: 2})
	require.NoError(t, err, "Write with ExpectedVersion equal to the latest")
	require.Equal(t, int64(3), m.Version, "a successful CAS write answers with the next version")
}

// testCASDelete: a conditional Delete with a stale version is refused and
// deletes nothing; with the current version it deletes.
func testCASDelete(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "cas-delete", map[string]string{"gen": "1"}, nil)
	s.replace(t, ctx, p, "cas-delete", map[string]string{"gen": "2"})
	for _, v := range []int64{1, 3} {
		err := s.b.Delete(ctx, sdk.Ref{Project: p, Name: "cas-delete", Version: v})
		requireIs(t, err, sdk.ErrVersionMismatch, fmt.Sprintf("Delete with version %d when the latest is 2", v))
	}
	require.Equal(t, int64(2), s.describe(t, ctx, p, "cas-delete").Version, "a refused conditional Delete must delete nothing")
	require.NoError(t, s.b.Delete(ctx, sdk.Ref{Project: p, Name: "cas-delete", Version: 2}), "Delete with the latest version")
	_, err := s.b.Describe(ctx, sdk.Ref{Project: p, Name: "cas-delete"})
	requireIs(t, err, sdk.ErrNotFound, "Describe after a conditional Delete")
}

// casWriters is how many goroutines race on one secret in testCASRace.
const casWriters = 20

// testCASRace: casWriters goroutines each loop describe, write with
// ExpectedVersion = current, retry on mismatch, until their own write wins.
// Every version 2..1+casWriters must have exactly one winner, and each
// winner's data must be what that version holds: no lost update, no
// duplicate version.
func testCASRace(t *testing.T, s *suite) {
	if !s.caps.CAS {
		t.Skip("Capabilities.CAS is false: the backend does not promise atomic check-and-set, race not checked")
	}
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "contended", map[string]string{"writer": "creator"}, nil)

	type win struct {
		writer  int
		version int64
		data    map[string]string
	}
	// Each writer needs at most casWriters rounds in a fair race; the bound
	// only stops a broken backend from looping forever.
	const maxAttempts = 50 * casWriters
	var (
		mu   sync.Mutex
		wins []win
		errs []error
		wg   sync.WaitGroup
	)
	for w := 0; w < casWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < maxAttempts; attempt++ {
				cur, err := s.b.Describe(ctx, sdk.Ref{Project: p, Name: "contended"})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("writer %d: Describe: %w", w, err))
					mu.Unlock()
					return
				}
				data := map[string]string{"writer": strconv.Itoa(w), "attempt": strconv.Itoa(attempt)}
				m, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "contended", Data: data,
					Mode: sdk.WriteReplace, ExpectedVersion: cur.Version})
				if errors.Is(err, sdk.ErrVersionMismatch) {
					continue
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("writer %d: Write: want success or ErrVersionMismatch: %w", w, err))
				} else if m.Version != cur.Version+1 {
					errs = append(errs, fmt.Errorf("writer %d: Write with ExpectedVersion %d answered version %d, want %d (the check-and-set did not hold)",
						w, cur.Version, m.Version, cur.Version+1))
				} else {
					wins = append(wins, win{writer: w, version: m.Version, data: data})
				}
				mu.Unlock()
				return
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("writer %d: no win in %d attempts", w, maxAttempts))
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Empty(t, errs, "CAS race: every writer must eventually win, failing only with ErrVersionMismatch")
	require.Len(t, wins, casWriters, "CAS race: one win per writer")

	byVersion := map[int64]win{}
	for _, w := range wins {
		prev, dup := byVersion[w.version]
		require.False(t, dup, "CAS race: version %d won by both writer %d and writer %d (duplicate version)", w.version, prev.writer, w.writer)
		require.True(t, w.version >= 2 && w.version <= 1+casWriters, "CAS race: writer %d won version %d, outside 2..%d", w.writer, w.version, 1+casWriters)
		byVersion[w.version] = w
	}
	final := s.describe(t, ctx, p, "contended")
	require.Equal(t, int64(1+casWriters), final.Version, "CAS race: final version must be 1 + %d writes", casWriters)

	// Each winner's data must be in its version (lost updates show here).
	for v := max(2, s.oldestReadable(final.Version)); v <= final.Version; v++ {
		sec := s.read(t, ctx, p, "contended", v)
		requireData(t, byVersion[v].data, sec.Data, fmt.Sprintf("CAS race: version %d must hold the data of writer %d, its winner", v, byVersion[v].writer))
	}
}
