package gateway

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// HTTP/2 streams cannot be hijacked: they are served by the handler, with
// the same events.
func TestEventsOverHTTP2(t *testing.T) {
	e := newEventsEnv(t)
	ts := httptest.NewUnstartedServer(e.srv.Handler())
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v1/projects/payments/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer t-admin")
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, 2, resp.ProtoMajor)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	require.Eventually(t, func() bool {
		pl := e.srv.events().project("payments")
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return len(pl.subs) == 1
	}, 5*time.Second, 10*time.Millisecond)
	e.srv.publish("payments", EventSecretCreated, sdk.Meta{Name: "db", Version: 1})
	var got []string
	for len(got) < 3 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %q", got)
		}
	}
	require.Equal(t, []string{"id: 1", "event: secret.created", `data: {"project":"payments","name":"db","version":1,"index":1}`}, got)
	cancel()
	require.Eventually(t, func() bool {
		pl := e.srv.events().project("payments")
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return len(pl.subs) == 0
	}, 5*time.Second, 10*time.Millisecond, "a closed HTTP/2 stream unsubscribes")
}

// A hijacked HTTP/1.1 stream answers a proper response head, with the
// headers every answer carries, and unsubscribes as soon as the client
// hangs up.
func TestEventsHijackedHead(t *testing.T) {
	e := newEventsEnv(t)
	s := e.watch(t, "", "t-admin")
	require.NotEmpty(t, s.resp.Header.Get("X-Request-Id"))
	require.Equal(t, "no", s.resp.Header.Get("X-Accel-Buffering"))
	require.True(t, s.resp.Close, "the body ends with the connection")
	pl := e.srv.events().project("payments")
	count := func() int {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return len(pl.subs)
	}
	require.Equal(t, 1, count())
	s.close()
	require.Eventually(t, func() bool { return count() == 0 }, 5*time.Second, 10*time.Millisecond)
	require.False(t, strings.Contains(s.rawText(), eventsSecret))
}
