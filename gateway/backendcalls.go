package gateway

// Every backend call the gateway makes for a request, a migration or a
// watch poll goes through countedBackend, so that /metrics can show what
// each backend is asked, and how much of it the watch poller costs
// (secretgate_backend_calls_total; docs/configuration.md, "Metrics").
// Health pings are the host's own and are not counted. Reads the read
// cache answers never reach countedBackend: they are not backend calls.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/secretgate/secretgate/sdk"
)

// Backend methods, as the method label of secretgate_backend_calls_total.
var backendMethods = [...]string{"configure", "capabilities", "list", "describe", "read", "write", "delete", "versions", "ping"}

const (
	callConfigure = iota
	callCapabilities
	callList
	callDescribe
	callRead
	callWrite
	callDelete
	callVersions
	callPing
)

// backendCalls counts calls per backend name and method.
type backendCalls struct {
	m sync.Map // backend name -> *[len(backendMethods)]atomic.Uint64
}

func (bc *backendCalls) counters(name string) *[len(backendMethods)]atomic.Uint64 {
	if c, ok := bc.m.Load(name); ok {
		return c.(*[len(backendMethods)]atomic.Uint64)
	}
	c, _ := bc.m.LoadOrStore(name, new([len(backendMethods)]atomic.Uint64))
	return c.(*[len(backendMethods)]atomic.Uint64)
}

// snapshot returns the non-zero counts by backend and method.
func (bc *backendCalls) snapshot() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	bc.m.Range(func(k, v any) bool {
		c := v.(*[len(backendMethods)]atomic.Uint64)
		for i := range c {
			if n := c[i].Load(); n > 0 {
				if out[k.(string)] == nil {
					out[k.(string)] = map[string]uint64{}
				}
				out[k.(string)][backendMethods[i]] = n
			}
		}
		return true
	})
	return out
}

// backend returns the named backend's client, counting its calls, behind
// its read cache when it has one (readcache.go).
func (s *Server) backend(name string) (sdk.Backend, error) {
	rc := s.readCaches().lookup(name)
	b, err := s.backends.Backend(name)
	if err != nil {
		if rc == nil || !errors.Is(err, sdk.ErrUnavailable) {
			return nil, err
		}
		// The plugin is down: the cache may still serve reads stale, and
		// every call it cannot answer fails as unavailable (uncounted: it
		// never reaches a plugin).
		return cachedBackend{Backend: downBackend{err: err}, c: rc}, nil
	}
	var out sdk.Backend = countedBackend{b: b, n: s.metrics.backendCalls.counters(name)}
	if rc != nil {
		out = cachedBackend{Backend: out, c: rc}
	}
	return out, nil
}

// countedBackend counts each call before making it.
type countedBackend struct {
	b sdk.Backend
	n *[len(backendMethods)]atomic.Uint64
}

func (c countedBackend) Configure(ctx context.Context, settings map[string]string) error {
	c.n[callConfigure].Add(1)
	return c.b.Configure(ctx, settings)
}

func (c countedBackend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	c.n[callCapabilities].Add(1)
	return c.b.Capabilities(ctx)
}

func (c countedBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	c.n[callList].Add(1)
	return c.b.List(ctx, req)
}

func (c countedBackend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	c.n[callDescribe].Add(1)
	return c.b.Describe(ctx, ref)
}

func (c countedBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	c.n[callRead].Add(1)
	return c.b.Read(ctx, ref)
}

func (c countedBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	c.n[callWrite].Add(1)
	return c.b.Write(ctx, req)
}

func (c countedBackend) Delete(ctx context.Context, ref sdk.Ref) error {
	c.n[callDelete].Add(1)
	return c.b.Delete(ctx, ref)
}

func (c countedBackend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	c.n[callVersions].Add(1)
	return c.b.Versions(ctx, ref)
}

func (c countedBackend) Ping(ctx context.Context) error {
	c.n[callPing].Add(1)
	return c.b.Ping(ctx)
}
