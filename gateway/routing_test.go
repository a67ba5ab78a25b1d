package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A pause must wait for the writes admitted before it (a migration lists
// the source only afterwards), and admit none after it.
func TestRoutingPauseWaitsForAdmittedWrites(t *testing.T) {
	r := NewRouting(map[string]string{"p": "a", "q": "a"})
	done, ok := r.BeginWrite("p")
	require.True(t, ok)
	other, ok := r.BeginWrite("q")
	require.True(t, ok)
	defer other()

	require.NoError(t, r.SetReadOnly("p", true))
	_, ok = r.BeginWrite("p")
	require.False(t, ok, "a write admitted to a paused project")

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Error(t, r.WaitWrites(short, []string{"p"}), "the pause did not wait for the admitted write")

	released := make(chan struct{})
	go func() {
		time.Sleep(30 * time.Millisecond)
		close(released)
		done()
		done() // a second call must not count twice
	}()
	require.NoError(t, r.WaitWrites(context.Background(), []string{"p"}))
	select {
	case <-released:
	default:
		t.Fatal("WaitWrites returned before the write ended")
	}
	// The other project's write in flight is not waited for.
	require.NoError(t, r.WaitWrites(context.Background(), []string{"p"}))

	require.NoError(t, r.SetReadOnly("p", false))
	again, ok := r.BeginWrite("p")
	require.True(t, ok)
	again()
}
