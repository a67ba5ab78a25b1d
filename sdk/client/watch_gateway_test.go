package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

func nextEvent(t *testing.T, w *client.Watcher) client.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		require.True(t, ok, "events closed: %v", w.Err())
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return client.Event{}
	}
}

// drained is closed once w's events are read to the end.
func drained(w *client.Watcher) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range w.Events() {
		}
		close(done)
	}()
	return done
}

// TestWatchGateway watches the real gateway in process.
func TestWatchGateway(t *testing.T) {
	f := gatewaytest.Start(t)
	c := newClient(t, f, gatewaytest.AdminToken)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	w, err := c.Watch(ctx, "payments", client.WatchOptions{Secrets: "db*"})
	require.NoError(t, err)
	_, err = c.Create(ctx, "payments", "other", map[string]string{"k": "v"}, nil) // filtered out by the glob
	require.NoError(t, err)
	_, err = c.Create(ctx, "payments", "db", map[string]string{"password": "canary-watch"}, nil)
	require.NoError(t, err)
	_, err = c.Update(ctx, "payments", "db", map[string]string{"password": "canary-watch-2"}, nil, 1)
	require.NoError(t, err)
	require.NoError(t, c.Delete(ctx, "payments", "db", 0))

	created := nextEvent(t, w)
	require.Equal(t, client.Event{Kind: client.EventCreated, Project: "payments", Name: "db", Version: 1, Index: created.Index}, created)
	updated := nextEvent(t, w)
	require.Equal(t, client.Event{Kind: client.EventUpdated, Project: "payments", Name: "db", Version: 2, Index: created.Index + 1}, updated)
	deleted := nextEvent(t, w)
	require.Equal(t, client.EventDeleted, deleted.Kind)
	require.Equal(t, "db", deleted.Name)
	require.Equal(t, updated.Index+1, deleted.Index)

	// Resuming from an index the gateway never issued asks for a resync.
	w2, err := c.Watch(ctx, "payments", client.WatchOptions{LastEventID: 1_000_000})
	require.NoError(t, err)
	require.Equal(t, client.EventResync, nextEvent(t, w2).Kind)

	cancel()
	for _, w := range []*client.Watcher{w, w2} {
		select {
		case <-drained(w):
		case <-time.After(5 * time.Second):
			t.Fatal("events not closed within 5s of cancel")
		}
		require.ErrorIs(t, w.Err(), context.Canceled)
	}

	_, err = c.Watch(context.Background(), "elsewhere", client.WatchOptions{})
	require.ErrorIs(t, err, sdk.ErrNotFound)
	_, err = c.Watch(context.Background(), "payments", client.WatchOptions{Secrets: "["})
	require.ErrorIs(t, err, sdk.ErrInvalid)
}
