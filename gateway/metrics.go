package gateway

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// metrics is a tiny Prometheus registry. Labels are route templates,
// methods, status codes and backend names: never a secret name or value.
type metrics struct {
	mu         sync.Mutex
	requests   map[reqKey]uint64
	latency    map[string]*histogram // by route template
	migrations map[migKey]uint64
	// watchPolls counts the watch poller's rounds by backend and outcome.
	watchPolls   map[pollKey]uint64
	backendCalls backendCalls
	reloads      map[string]uint64 // by outcome: ok, error
	// caches are the read caches' counters by backend (readcache.go); a
	// backend's survive its cache being rebuilt by a reload.
	caches sync.Map // backend name -> *cacheStats
}

// cacheStats returns the read cache counters of a backend.
func (m *metrics) cacheStats(backend string) *cacheStats {
	if c, ok := m.caches.Load(backend); ok {
		return c.(*cacheStats)
	}
	c, _ := m.caches.LoadOrStore(backend, &cacheStats{})
	return c.(*cacheStats)
}

// writeCacheMetrics renders the read caches' counters, by backend.
func (m *metrics) writeCacheMetrics(sb *strings.Builder) {
	stats := map[string]*cacheStats{}
	m.caches.Range(func(k, v any) bool {
		stats[k.(string)] = v.(*cacheStats)
		return true
	})
	if len(stats) == 0 {
		return
	}
	names := make([]string, 0, len(stats))
	for n := range stats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, f := range []struct {
		name, kind, help string
		value            func(*cacheStats) int64
	}{
		{"secretgate_cache_hits_total", "counter", "Client reads the read cache answered without calling the backend, by backend.",
			func(c *cacheStats) int64 { return int64(c.hits.Load()) }},
		{"secretgate_cache_misses_total", "counter", "Client reads the read cache could not answer, so the backend was asked, by backend.",
			func(c *cacheStats) int64 { return int64(c.misses.Load()) }},
		{"secretgate_cache_stale_served_total", "counter", "Values the read cache served stale because the backend was unavailable or timed out (X-Secretgate-Stale), by backend.",
			func(c *cacheStats) int64 { return int64(c.stale.Load()) }},
		{"secretgate_cache_evictions_total", "counter", "Read cache entries dropped to stay within max_bytes, by backend.",
			func(c *cacheStats) int64 { return int64(c.evictions.Load()) }},
		{"secretgate_cache_bytes", "gauge", "Memory the read cache accounts for (sealed values and metadata), by backend.",
			func(c *cacheStats) int64 { return c.bytes.Load() }},
	} {
		fmt.Fprintf(sb, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
		for _, n := range names {
			fmt.Fprintf(sb, "%s{backend=%q} %d\n", f.name, n, f.value(stats[n]))
		}
	}
}

type pollKey struct{ backend, outcome string }

// migKey counts the secrets migrations handled, by backend pair and outcome.
type migKey struct{ source, target, outcome string }

type reqKey struct {
	method string
	route  string
	code   int
}

type histogram struct {
	counts []uint64 // one per bucket, not cumulative
	count  uint64
	sum    float64
}

func newMetrics() *metrics {
	return &metrics{requests: map[reqKey]uint64{}, latency: map[string]*histogram{}, migrations: map[migKey]uint64{}, watchPolls: map[pollKey]uint64{}, reloads: map[string]uint64{"ok": 0, "error": 0}}
}

func (m *metrics) reloaded(outcome string) {
	m.mu.Lock()
	m.reloads[outcome]++
	m.mu.Unlock()
}

func (m *metrics) watchPolled(backend, outcome string) {
	m.mu.Lock()
	m.watchPolls[pollKey{backend, outcome}]++
	m.mu.Unlock()
}

func (m *metrics) migrated(source, target, outcome string) {
	m.mu.Lock()
	m.migrations[migKey{source, target, outcome}]++
	m.mu.Unlock()
}

// methodLabel maps a request method onto a fixed set, so that a client
// cannot mint a new time series per request with made-up methods.
func methodLabel(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return method
	}
	return "other"
}

// codeLabel keeps status codes within the range HTTP defines.
func codeLabel(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code
}

func (m *metrics) observe(method, route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	method, code = methodLabel(method), codeLabel(code)
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[reqKey{method, route, code}]++
	h := m.latency[route]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets))}
		m.latency[route] = h
	}
	for i, b := range latencyBuckets {
		if s <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += s
}

// write renders the text exposition format. up reports each backend's
// state, running the migrations in progress.
func (m *metrics) write(w io.Writer, up map[string]bool, running int) {
	m.mu.Lock()
	keys := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.route != b.route {
			return a.route < b.route
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.code < b.code
	})
	var sb strings.Builder
	sb.WriteString("# HELP secretgate_http_requests_total HTTP requests by route template, method and status code.\n")
	sb.WriteString("# TYPE secretgate_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&sb, "secretgate_http_requests_total{method=%q,route=%q,code=\"%d\"} %d\n", k.method, k.route, k.code, m.requests[k])
	}
	routes := make([]string, 0, len(m.latency))
	for r := range m.latency {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	sb.WriteString("# HELP secretgate_http_request_duration_seconds HTTP request latency by route template.\n")
	sb.WriteString("# TYPE secretgate_http_request_duration_seconds histogram\n")
	for _, r := range routes {
		h := m.latency[r]
		var cum uint64
		for i, b := range latencyBuckets {
			cum += h.counts[i]
			fmt.Fprintf(&sb, "secretgate_http_request_duration_seconds_bucket{route=%q,le=%q} %d\n", r, strconv.FormatFloat(b, 'g', -1, 64), cum)
		}
		fmt.Fprintf(&sb, "secretgate_http_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", r, h.count)
		fmt.Fprintf(&sb, "secretgate_http_request_duration_seconds_sum{route=%q} %s\n", r, strconv.FormatFloat(h.sum, 'g', -1, 64))
		fmt.Fprintf(&sb, "secretgate_http_request_duration_seconds_count{route=%q} %d\n", r, h.count)
	}
	migs := make([]migKey, 0, len(m.migrations))
	for k := range m.migrations {
		migs = append(migs, k)
	}
	sort.Slice(migs, func(i, j int) bool {
		a, b := migs[i], migs[j]
		if a.source != b.source {
			return a.source < b.source
		}
		if a.target != b.target {
			return a.target < b.target
		}
		return a.outcome < b.outcome
	})
	sb.WriteString("# HELP secretgate_migration_secrets_total Secrets handled by migrations (not dry runs), by backend pair and outcome (copied, skipped, verified, failed, deleted, kept).\n")
	sb.WriteString("# TYPE secretgate_migration_secrets_total counter\n")
	for _, k := range migs {
		fmt.Fprintf(&sb, "secretgate_migration_secrets_total{source=%q,target=%q,outcome=%q} %d\n", k.source, k.target, k.outcome, m.migrations[k])
	}
	polls := make([]pollKey, 0, len(m.watchPolls))
	for k := range m.watchPolls {
		polls = append(polls, k)
	}
	sort.Slice(polls, func(i, j int) bool {
		if polls[i].backend != polls[j].backend {
			return polls[i].backend < polls[j].backend
		}
		return polls[i].outcome < polls[j].outcome
	})
	sb.WriteString("# HELP secretgate_watch_polls_total Rounds of the watch poller (writes made behind the gateway's back), by backend and outcome (ok, failed).\n")
	sb.WriteString("# TYPE secretgate_watch_polls_total counter\n")
	for _, k := range polls {
		fmt.Fprintf(&sb, "secretgate_watch_polls_total{backend=%q,outcome=%q} %d\n", k.backend, k.outcome, m.watchPolls[k])
	}
	sb.WriteString("# HELP secretgate_config_reloads_total Configuration reloads (SIGHUP), by outcome (ok, error: the previous configuration kept serving).\n")
	sb.WriteString("# TYPE secretgate_config_reloads_total counter\n")
	for _, o := range []string{"error", "ok"} {
		fmt.Fprintf(&sb, "secretgate_config_reloads_total{outcome=%q} %d\n", o, m.reloads[o])
	}
	m.mu.Unlock()
	calls := m.backendCalls.snapshot()
	backends := make([]string, 0, len(calls))
	for b := range calls {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	sb.WriteString("# HELP secretgate_backend_calls_total Backend calls made for requests, migrations and watch polls (not health pings), by backend and method.\n")
	sb.WriteString("# TYPE secretgate_backend_calls_total counter\n")
	for _, b := range backends {
		for _, method := range backendMethods {
			if n := calls[b][method]; n > 0 {
				fmt.Fprintf(&sb, "secretgate_backend_calls_total{backend=%q,method=%q} %d\n", b, method, n)
			}
		}
	}
	m.writeCacheMetrics(&sb)
	sb.WriteString("# HELP secretgate_migrations_running Migrations in progress (their projects take no writes).\n")
	sb.WriteString("# TYPE secretgate_migrations_running gauge\n")
	fmt.Fprintf(&sb, "secretgate_migrations_running %d\n", running)
	names := make([]string, 0, len(up))
	for n := range up {
		names = append(names, n)
	}
	sort.Strings(names)
	sb.WriteString("# HELP secretgate_backend_up Whether a backend's plugin is running and answered its last health ping.\n")
	sb.WriteString("# TYPE secretgate_backend_up gauge\n")
	for _, n := range names {
		v := 0
		if up[n] {
			v = 1
		}
		fmt.Fprintf(&sb, "secretgate_backend_up{backend=%q} %d\n", n, v)
	}
	_, _ = io.WriteString(w, sb.String())
}
