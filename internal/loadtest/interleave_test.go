package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestAttackInterleaved runs two real HTTP servers, one three times slower,
// in alternating slices: every slice of each is measured, in the order A B,
// B A, ..., and the slower one's throughput is well below the other's.
func TestAttackInterleaved(t *testing.T) {
	var mu sync.Mutex
	var seen []string // the server of each request, in arrival order
	serve := func(name string, delay time.Duration) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1] != name {
				seen = append(seen, name)
			}
			mu.Unlock()
			time.Sleep(delay)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	fast, slow := serve("a", time.Millisecond), serve("b", 3*time.Millisecond)
	scs := []scenario{
		{"a", []vegeta.Target{{Method: "GET", URL: fast.URL}}},
		{"b", []vegeta.Target{{Method: "GET", URL: slow.URL}}},
	}
	rs := attackInterleaved(scs, 6*200*time.Millisecond, 2)
	require.Len(t, rs, 2)
	for i, r := range rs {
		require.Equal(t, scs[i].name, r.name)
		require.Len(t, r.roundRPS, interleaveRounds)
		require.Equal(t, 1.0, r.success)
		require.Positive(t, r.rps)
		// Throughput over its own six 200ms slices, not the 2.4s that
		// they span with the other scenario's.
		require.InDelta(t, 1.2, float64(r.requests)/r.rps, 0.3, "%s: seconds its requests took at its throughput", r.name)
	}
	require.Greater(t, rs[0].rps, 1.5*rs[1].rps)
	require.Equal(t, []string{"a", "b", "a", "b", "a", "b", "a"}, seen, "slices alternate A B, B A, ...")
	spread := roundSpread(rs[1], rs[0])
	require.True(t, strings.HasPrefix(spread, " (0."), spread)
	require.Empty(t, roundSpread(rs[1], result{name: "not interleaved"}))
}
