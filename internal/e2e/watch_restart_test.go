package e2e

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/sdk/client"
)

// A watcher survives a gateway restart: the Go client reconnects with
// Last-Event-ID, the new process (whose indexes start again) answers
// resync, and the events after it arrive; nothing is silently skipped.
func TestWatchAcrossGatewayRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	path, tokens := testenv.WriteConfig(t, testenv.Options{Dir: dir})
	start := func() *testenv.Server {
		return testenv.StartConfig(t, path, nil, "--listen", addr)
	}
	gw := start()
	admin := tokens["admin"]
	c, err := client.New("http://"+addr, admin)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := c.Watch(ctx, "default", client.WatchOptions{})
	require.NoError(t, err)
	next := func() client.Event {
		t.Helper()
		select {
		case ev, ok := <-w.Events():
			require.True(t, ok, "the watch ended: %v", w.Err())
			return ev
		case <-time.After(60 * time.Second):
			t.Fatal("no event within 60s")
		}
		return client.Event{}
	}
	r := gw.Do(t, "POST", "/v1/projects/default/secrets", admin, map[string]any{"name": "a", "data": map[string]string{"k": "v"}})
	require.Equal(t, http.StatusCreated, r.Status)
	require.Equal(t, client.Event{Kind: client.EventCreated, Project: "default", Name: "a", Version: 1, Index: 1}, next())

	gw.Stop(t)
	gw = start()
	ev := next()
	require.Equal(t, client.EventResync, ev.Kind, "the new process cannot continue from index 1: %+v", ev)
	r = gw.Do(t, "POST", "/v1/projects/default/secrets", admin, map[string]any{"name": "b", "data": map[string]string{"k": "v"}})
	require.Equal(t, http.StatusCreated, r.Status)
	ev = next()
	require.Equal(t, client.EventCreated, ev.Kind)
	require.Equal(t, "b", ev.Name)
}
