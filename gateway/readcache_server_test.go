package gateway

// The read cache seen through the HTTP API: headers, watch pollers, reloads
// (readcache_server.go).

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// cacheBackends serves one cacheFake as backend "mem", and can report its
// plugin down.
type cacheBackends struct {
	fake *cacheFake
	down atomic.Bool
}

func (b *cacheBackends) Backend(name string) (sdk.Backend, error) {
	if name != "mem" {
		return nil, sdk.ErrNotFound
	}
	if b.down.Load() {
		return nil, fmt.Errorf("backend %q: %w", name, sdk.ErrUnavailable)
	}
	return b.fake, nil
}
func (b *cacheBackends) Suspect(string)          {}
func (b *cacheBackends) Status() map[string]bool { return map[string]bool{"mem": !b.down.Load()} }
func (b *cacheBackends) PingAll(context.Context) map[string]error {
	return nil
}

func newCacheHarness(t *testing.T, cache CacheConfig) (*harness, *cacheBackends) {
	t.Helper()
	backends := &cacheBackends{fake: newCacheFake()}
	logs := &bytes.Buffer{}
	audit := &memAuditor{}
	cfg := &Config{
		Backends: []BackendConfig{{Name: "mem", Cache: &cache}},
		Projects: []ProjectConfig{{Name: "payments", Backend: "mem"}},
	}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete}
	srv, err := New(context.Background(), cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Authorizer: fakeAuthz{tokens: map[string]string{"t-admin": "admin"}, grants: map[string]fakeGrant{"admin/payments": {actions: all}}},
		Auditor:    audit, Backends: backends, BackendTimeout: 2 * time.Second,
	})
	require.NoError(t, err)
	return &harness{srv: srv, mem: backends.fake.memBackend, audit: audit, logs: logs}, backends
}

// TestReadCacheOverHTTP: a backend outage through the API. Cached secrets
// answer 200 with X-Secretgate-Stale (GET, metadata, resolve), others and
// writes 503; afterwards values are fresh again. Whether the plugin is down
// (the host says so) or its calls fail makes no difference.
func TestReadCacheOverHTTP(t *testing.T) {
	const dbValue = "CACHE-db-value-91c2" // not the harness's canary: resolve answers it
	for _, how := range []string{"plugin down", "calls fail"} {
		t.Run(how, func(t *testing.T) {
			h, backends := newCacheHarness(t, CacheConfig{TTL: "0"})
			h.create(t, "db", map[string]string{"password": dbValue})
			_, err := backends.fake.memBackend.Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: "cold", Data: map[string]string{"a": "b"}, Mode: sdk.WriteCreate})
			require.NoError(t, err)
			get := h.do(t, "GET", base+"/db", "t-admin", nil)
			require.Equal(t, http.StatusOK, get.code, "%s", get.body)
			require.Empty(t, get.hdr.Get(HeaderStale))

			setDown := func(down bool) {
				if how == "plugin down" {
					backends.down.Store(down)
					return
				}
				var err error
				if down {
					err = fmt.Errorf("connection refused: %w", sdk.ErrUnavailable)
				}
				backends.fake.setFail(err)
			}
			setDown(true)
			for _, path := range []string{base + "/db", base + "/db/metadata", base + "/db?version=1"} {
				r := h.do(t, "GET", path, "t-admin", nil)
				require.Equal(t, http.StatusOK, r.code, "%s: %s", path, r.body)
				if strings.Contains(path, "version=") {
					require.Empty(t, r.hdr.Get(HeaderStale), "a version by number is never stale")
				} else {
					require.Equal(t, "0", r.hdr.Get(HeaderStale), path)
				}
				if !strings.Contains(path, "metadata") {
					require.Contains(t, string(r.body), dbValue)
				}
			}
			r := h.do(t, "POST", "/v1/resolve", "t-admin", map[string]any{"refs": []string{"sg://payments/db/password"}})
			require.Equal(t, http.StatusOK, r.code, "%s", r.body)
			require.Equal(t, "0", r.hdr.Get(HeaderStale))
			r = h.do(t, "GET", base+"/cold", "t-admin", nil)
			require.Equal(t, http.StatusServiceUnavailable, r.code, "never cached: %s", r.body)
			r = h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"password": "new"}})
			require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
			r = h.do(t, "POST", "/v1/resolve", "t-admin", map[string]any{"refs": []string{"sg://payments/db/password", "sg://payments/cold/a"}})
			require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)

			metrics := h.do(t, "GET", "/metrics", "", nil)
			require.Contains(t, string(metrics.body), `secretgate_cache_stale_served_total{backend="mem"} 4`)
			require.Contains(t, string(metrics.body), `secretgate_cache_hits_total{backend="mem"} 1`)
			require.Contains(t, string(metrics.body), "secretgate_cache_bytes{backend=\"mem\"} ")

			setDown(false)
			require.Eventually(t, func() bool {
				r := h.do(t, "GET", base+"/cold", "t-admin", nil)
				return r.code == http.StatusOK && r.hdr.Get(HeaderStale) == ""
			}, 5*time.Second, 10*time.Millisecond)
			require.Eventually(t, func() bool {
				r := h.do(t, "GET", base+"/db", "t-admin", nil)
				return r.code == http.StatusOK && r.hdr.Get(HeaderStale) == ""
			}, 5*time.Second, 10*time.Millisecond)
			require.NotContains(t, h.logs.String(), dbValue)
			for _, rec := range h.audit.records() {
				require.NotContains(t, fmt.Sprintf("%+v", rec), dbValue)
			}
		})
	}
}

// TestReadCacheWatchPollerInvalidates: a write behind the gateway's back
// that the watch poller finds drops the stale pointer long before the TTL;
// the gateway's own writes, published as the same events, drop nothing.
func TestReadCacheWatchPollerInvalidates(t *testing.T) {
	h, backends := newCacheHarness(t, CacheConfig{TTL: "1h"})
	s := h.srv
	h.create(t, "db", map[string]string{"v": "1"})
	stats := s.metrics.cacheStats("mem")
	version := func() string {
		t.Helper()
		r := h.do(t, "GET", base+"/db", "t-admin", nil)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		return r.hdr.Get("ETag")
	}
	rt, ok := s.routing.Lookup("payments")
	require.True(t, ok)
	pl := s.events().project("payments")
	require.NoError(t, s.pollOnce(context.Background(), rt, pl)) // the baseline

	require.Equal(t, `"1"`, version())
	r := h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"v": "2"}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	misses := stats.misses.Load()
	require.Equal(t, `"2"`, version())
	require.Equal(t, misses, stats.misses.Load(), "the gateway's own write is cached; its event dropped nothing")

	_, err := backends.fake.memBackend.Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: "db", Data: map[string]string{"v": "3"}, Mode: sdk.WriteReplace})
	require.NoError(t, err)
	require.Equal(t, `"2"`, version(), "within the TTL, before the poller finds it")
	require.NoError(t, s.pollOnce(context.Background(), rt, pl))
	require.Equal(t, `"3"`, version())

	require.NoError(t, backends.fake.memBackend.Delete(context.Background(), sdk.Ref{Project: "payments", Name: "db"}))
	require.NoError(t, s.pollOnce(context.Background(), rt, pl))
	r = h.do(t, "GET", base+"/db", "t-admin", nil)
	require.Equal(t, http.StatusNotFound, r.code, "%s", r.body)
}

// TestReadCacheReload: a reload that changes a backend's cache block starts
// an empty cache; one that leaves it alone keeps the entries.
func TestReadCacheReload(t *testing.T) {
	h, backends := newCacheHarness(t, CacheConfig{TTL: "1h"})
	h.create(t, "db", map[string]string{"v": "1"})
	reads := func() int64 {
		r := h.do(t, "GET", base+"/db", "t-admin", nil)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		return backends.fake.reads.Load()
	}
	require.Zero(t, reads())
	reload := func(cache CacheConfig) {
		t.Helper()
		cfg := *h.srv.config()
		cfg.Backends = []BackendConfig{{Name: "mem", Cache: &cache}}
		_, err := h.srv.Reload(context.Background(), &cfg)
		require.NoError(t, err)
	}
	reload(CacheConfig{TTL: "1h"})
	require.Zero(t, reads(), "same cache settings: entries kept")
	reload(CacheConfig{TTL: "2h"})
	require.Equal(t, int64(1), reads(), "new settings: a new cache")
	require.Equal(t, int64(1), reads())
	stats := h.srv.metrics.cacheStats("mem")
	h.srv.readCaches().mu.Lock()
	live := h.srv.readCaches().table.Load().caches["mem"]
	h.srv.readCaches().mu.Unlock()
	live.mu.Lock()
	require.Equal(t, live.bytes, stats.bytes.Load(), "the retired cache's bytes left the gauge")
	live.mu.Unlock()
}
