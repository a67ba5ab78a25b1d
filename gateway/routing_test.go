package gateway

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
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
	// q's write, still in flight, is not waited for.
	require.NoError(t, r.WaitWrites(context.Background(), []string{"p"}))
	select {
	case <-released:
	default:
		t.Fatal("WaitWrites returned before the write ended")
	}

	require.NoError(t, r.SetReadOnly("p", false))
	again, ok := r.BeginWrite("p")
	require.True(t, ok)
	again()
}

// A write admitted after a migration switched its project goes to the new
// backend, even if the request read the route before the switch (it waited
// while the project was paused).
func TestWritableReadsTheRouteOnAdmission(t *testing.T) {
	e := newMigrateEnv(t)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	r := &request{s: e.srv, c: c, route: Route{Project: "payments", Backend: "a"}}
	require.NoError(t, e.srv.Routing().SetBackend("payments", "b"))
	require.True(t, r.writable())
	endWritesOf(c)
	require.Equal(t, "b", r.route.Backend, "the write would go to the backend the project left")
}
