package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/sdk/client"
)

// TestReadCacheAWS: the read cache in the real binary on the aws plugin and
// moto. Gateway A caches (TTL 1s); gateway B, without a cache, writes to
// the same moto behind A's back.
func TestReadCacheAWS(t *testing.T) {
	// AWS's lag and limits as in the other AWS tests (faultproxy.CI), and
	// a switch in front of it for gateway A only.
	moto := faultproxy.StartMoto(t, faultproxy.CI)
	if moto == nil {
		return
	}
	warmMoto(t, moto.Endpoint)
	proxy := startSwitchProxy(t, moto.Endpoint)
	var env []string
	for k, v := range mototest.DummyCredentials {
		env = append(env, k+"="+v)
	}
	gateways := func(t *testing.T, prefix, cache, poll string) (a, b *testenv.Server, ta, tb string) {
		t.Helper()
		start := func(endpoint string, cache map[string]string) (*testenv.Server, string) {
			srv, tokens := startWithCache(t, testenv.Options{
				Backends: []testenv.Backend{{Name: "cloud", Plugin: "aws", WatchPollInterval: poll, Settings: map[string]string{
					// Two attempts: a stopped service fails a call in
					// well under a second instead of five backoffs.
					"region": mototest.Region, "endpoint": endpoint, "prefix": prefix, "max_attempts": "2",
				}}},
				Projects: []testenv.Project{{Name: "payments", Backend: "cloud"}},
				Env:      env,
			}, cache)
			return srv, tokens["admin"]
		}
		a, ta = start(proxy.URL, map[string]string{"cloud": cache})
		b, tb = start(moto.Endpoint, nil)
		return a, b, ta, tb
	}
	const base = "/v1/projects/payments/secrets"

	t.Run("outage", func(t *testing.T) {
		a, b, ta, tb := gateways(t, "outage/", "{ttl: 1s, stale_if_error: 1h}", "0")
		canary := "canary-" + awsRandHex(t)
		r := a.Do(t, "POST", base, ta, map[string]any{"name": "db", "data": map[string]string{"password": canary, "user": "app"}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		r = b.Do(t, "POST", base, tb, map[string]any{"name": "cold", "data": map[string]string{"k": "v"}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		r = a.Do(t, "GET", base+"/db", ta, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.Empty(t, r.Header.Get("X-Secretgate-Stale"))

		proxy.off.Store(true)
		time.Sleep(1500 * time.Millisecond) // past the TTL
		for _, path := range []string{base + "/db", base + "/db/metadata"} {
			r = a.Do(t, "GET", path, ta, nil)
			require.Equal(t, http.StatusOK, r.Status, "%s: %s", path, r.Body)
			age, err := strconv.Atoi(r.Header.Get("X-Secretgate-Stale"))
			require.NoError(t, err, "%s: X-Secretgate-Stale %q", path, r.Header.Get("X-Secretgate-Stale"))
			require.GreaterOrEqual(t, age, 1, path)
		}
		r = a.Do(t, "GET", base+"/db", ta, nil)
		require.Equal(t, canary, awsDecodeData(t, r)["password"], "the stale value is the value")
		r = a.Do(t, "POST", "/v1/resolve", ta, map[string]any{"refs": []string{"sg://payments/db/user"}})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.NotEmpty(t, r.Header.Get("X-Secretgate-Stale"))
		r = a.Do(t, "GET", base+"/cold", ta, nil)
		require.Equal(t, http.StatusServiceUnavailable, r.Status, "never cached: %s", r.Body)
		require.Empty(t, r.Header.Get("X-Secretgate-Stale"))
		r = a.Do(t, "PUT", base+"/db", ta, map[string]any{"data": map[string]string{"password": "rotated"}})
		require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
		r = a.Do(t, "POST", base, ta, map[string]any{"name": "new", "data": map[string]string{"k": "v"}})
		require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
		metrics := a.Do(t, "GET", "/metrics", "", nil)
		require.Contains(t, string(metrics.Body), `secretgate_cache_stale_served_total{backend="cloud"}`)
		require.NotContains(t, string(metrics.Body), `secretgate_cache_stale_served_total{backend="cloud"} 0`)

		// Back: fresh values (no header), writes again.
		proxy.off.Store(false)
		require.Eventually(t, func() bool {
			r := a.Do(t, "GET", base+"/db", ta, nil)
			return r.Status == http.StatusOK && r.Header.Get("X-Secretgate-Stale") == ""
		}, 30*time.Second, 100*time.Millisecond)
		require.Eventually(t, func() bool {
			r := a.Do(t, "PUT", base+"/db", ta, map[string]any{"data": map[string]string{"password": canary + "-2", "user": "app"}})
			return r.Status == http.StatusOK
		}, 30*time.Second, 200*time.Millisecond)
		r = a.Do(t, "GET", base+"/db", ta, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.Equal(t, canary+"-2", awsDecodeData(t, r)["password"], "read your write")
		require.Empty(t, r.Header.Get("X-Secretgate-Stale"))
		r = a.Do(t, "GET", base+"/cold", ta, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)

		a.Stop(t)
		for what, text := range map[string]string{"stdout": a.Stdout(), "stderr": a.Stderr(), "audit log": a.Audit()} {
			require.False(t, strings.Contains(text, canary), "the canary value appeared in the server's %s", what)
		}
		require.NotEmpty(t, a.Audit())
	})

	t.Run("a write behind the gateway's back shows within the TTL", func(t *testing.T) {
		const ttl = 2 * time.Second
		a, b, ta, tb := gateways(t, "ttl/", "{ttl: 2s}", "0")
		r := a.Do(t, "POST", base, ta, map[string]any{"name": "db", "data": map[string]string{"v": "1"}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		require.Equal(t, `"1"`, a.Do(t, "GET", base+"/db", ta, nil).Header.Get("ETag"))
		r = b.Do(t, "PUT", base+"/db", tb, map[string]any{"data": map[string]string{"v": "2"}})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		written := time.Now()
		for {
			r = a.Do(t, "GET", base+"/db", ta, nil)
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			if r.Header.Get("ETag") == `"2"` {
				break
			}
			// The TTL counts from A's own write, which came before B's;
			// the slack is for the refresh (one moto call).
			require.Less(t, time.Since(written), ttl+time.Second, "B's write did not show within the TTL")
			time.Sleep(20 * time.Millisecond)
		}
		require.Equal(t, "2", awsDecodeData(t, r)["v"])
	})

	t.Run("the watch poller's events drop stale entries", func(t *testing.T) {
		a, b, ta, tb := gateways(t, "poll/", "{ttl: 1h}", "200ms")
		// Created by B: the aws plugin overlays its own process's writes
		// on AWS's listings for minutes (plugins/aws/recent.go), so a
		// secret A created would stay listed by A after B deleted it.
		r := b.Do(t, "POST", base, tb, map[string]any{"name": "db", "data": map[string]string{"v": "1"}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		c, err := client.New(a.URL, ta)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		w, err := c.Watch(ctx, "payments", client.WatchOptions{})
		require.NoError(t, err)
		next := func() client.Event {
			t.Helper()
			for {
				select {
				case ev := <-w.Events():
					if ev.Kind != client.EventResync { // the poller's baseline
						return ev
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the poller announced nothing")
				}
			}
		}
		waitPolled(t, a, "cloud") // the poller's baseline
		require.Equal(t, `"1"`, a.Do(t, "GET", base+"/db", ta, nil).Header.Get("ETag"))
		r = b.Do(t, "PUT", base+"/db", tb, map[string]any{"data": map[string]string{"v": "2"}})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		ev := next()
		require.Equal(t, client.EventUpdated, ev.Kind, "%+v", ev)
		r = a.Do(t, "GET", base+"/db", ta, nil)
		require.Equal(t, `"2"`, r.Header.Get("ETag"), "the event dropped the cached version, an hour before the TTL")
		require.Equal(t, "2", awsDecodeData(t, r)["v"])
		r = b.Do(t, "DELETE", base+"/db", tb, nil)
		require.Equal(t, http.StatusNoContent, r.Status, "%s", r.Body)
		ev = next()
		require.Equal(t, client.EventDeleted, ev.Kind, "%+v", ev)
		r = a.Do(t, "GET", base+"/db", ta, nil)
		require.Equal(t, http.StatusNotFound, r.Status, "%s", r.Body)
	})
}
