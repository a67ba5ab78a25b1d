package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
	"github.com/secretgate/secretgate/sdk/client"
)

// Two gateways on one cloud backend (AWS on moto behind the fault proxy,
// GCP on its stand-in; both with the services' lag): writes made through
// gateway B reach the watchers of gateway A through A's watch poller, once
// each, in order, whatever the listings' lag.
func TestWatchSeesAnotherGatewaysWrites(t *testing.T) {
	clouds := []struct {
		name    string
		backend func(t *testing.T) (testenv.Backend, []string)
	}{
		{"aws", func(t *testing.T) (testenv.Backend, []string) {
			moto := faultproxy.StartMoto(t, faultproxy.CI)
			var env []string
			for k, v := range mototest.DummyCredentials {
				env = append(env, k+"="+v)
			}
			return testenv.Backend{Name: "cloud", Plugin: "aws", Settings: map[string]string{
				"region": mototest.Region, "endpoint": moto.Endpoint, "prefix": "watch/",
			}}, env
		}},
		{"gcp", func(t *testing.T) (testenv.Backend, []string) {
			sm := gcptest.StartWith(t, gcptest.Options{Lag: gcpLag})
			// A delete made elsewhere is confirmed once the plugin's
			// metadata cache expires (docs/backends/gcp.md): 1s here.
			return testenv.Backend{Name: "cloud", Plugin: "gcp", Settings: map[string]string{
				"gcp_project": "watch-project", "endpoint": sm.Addr, "insecure": "true", "prefix": "w", "metadata_ttl": "1s",
			}}, nil
		}},
	}
	for _, cloud := range clouds {
		t.Run(cloud.name, func(t *testing.T) {
			be, env := cloud.backend(t)
			start := func(interval string) *testenv.Server {
				b := be
				b.WatchPollInterval = interval
				return testenv.Start(t, testenv.Options{
					Backends: []testenv.Backend{b},
					Projects: []testenv.Project{{Name: "payments", Backend: "cloud"}},
					Subjects: []testenv.Subject{{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}}},
					Env:      env,
				})
			}
			a, b := start("200ms"), start("0")
			canary := "canary-" + awsRandHex(t)

			c, err := client.New(a.URL, a.Token("admin"))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			w, err := c.Watch(ctx, "payments", client.WatchOptions{})
			require.NoError(t, err)
			next := func() client.Event {
				t.Helper()
				select {
				case ev, ok := <-w.Events():
					require.True(t, ok, "the watch ended: %v", w.Err())
					return ev
				case <-time.After(20 * time.Second):
					t.Fatal("no event within 20s")
				}
				return client.Event{}
			}
			waitPolled(t, a, "cloud") // the baseline round

			const base = "/v1/projects/payments/secrets"
			r := b.Do(t, "POST", base, b.Token("admin"), map[string]any{"name": "db", "data": map[string]string{"password": canary}})
			require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
			ev := next()
			require.Equal(t, client.EventCreated, ev.Kind, "%+v", ev)
			require.Equal(t, "db", ev.Name)
			require.EqualValues(t, 1, ev.Version)

			r = b.Do(t, "PUT", base+"/db", b.Token("admin"), map[string]any{"data": map[string]string{"password": canary + "-2"}})
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			ev = next()
			require.Equal(t, client.EventUpdated, ev.Kind, "%+v", ev)
			require.EqualValues(t, 2, ev.Version)

			r = b.Do(t, "DELETE", base+"/db", b.Token("admin"), nil)
			require.Equal(t, http.StatusNoContent, r.Status, "%s", r.Body)
			ev = next()
			require.Equal(t, client.EventDeleted, ev.Kind, "%+v", ev)
			require.Equal(t, "db", ev.Name)

			// Nothing more: a lagging listing that still shows db, or an
			// older version, announced nothing.
			select {
			case ev := <-w.Events():
				t.Fatalf("unexpected %+v", ev)
			case <-time.After(2 * gcpLag):
			}
			cancel()
			a.Stop(t)
			for what, text := range map[string]string{"audit log": a.Audit(), "stdout": a.Stdout(), "stderr": a.Stderr()} {
				require.False(t, strings.Contains(text, canary), "gateway A's %s holds the value", what)
			}
		})
	}
}

// waitPolled waits until srv's watch poller has finished a round on backend
// (its baseline, for a first watcher): a write made before then could be
// part of the baseline and announce nothing.
func waitPolled(t *testing.T, srv *testenv.Server, backend string) {
	t.Helper()
	line := fmt.Sprintf("secretgate_watch_polls_total{backend=%q,outcome=\"ok\"} ", backend)
	deadline := time.Now().Add(20 * time.Second)
	for {
		for l := range strings.Lines(metrics(t, srv)) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(l), line); ok && n != "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway's poller of %s finished no round within 20s", backend)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
