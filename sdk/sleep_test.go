package sdk

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSleep(t *testing.T) {
	require.NoError(t, Sleep(context.Background(), time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	require.Less(t, time.Since(start), time.Minute, "a cancelled context ends the wait")
}

func TestJitter(t *testing.T) {
	require.Zero(t, Jitter(0))
	require.Zero(t, Jitter(-time.Second))
	seen := map[time.Duration]bool{}
	for range 200 {
		j := Jitter(10 * time.Millisecond)
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.LessOrEqual(t, j, 10*time.Millisecond)
		seen[j] = true
	}
	require.Greater(t, len(seen), 100, "jitter is spread, not constant")
}
