package main

// The counting plugin of the watchers scenario: the file backend, served as
// an external plugin by this very executable, counting every backend call
// by method. The gateway exports no count of backend calls, so the scenario
// counts them on the other side of the plugin boundary, where every call
// the gateway makes must pass.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretgate/secretgate/plugins/file"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
)

const (
	// countPluginEnv, set in the gateway's environment (which its plugins
	// inherit), makes this executable serve the counting plugin instead of
	// running a load test.
	countPluginEnv = "LOADTEST_SERVE_COUNTING_PLUGIN"
	// countAddrFileSetting names the file the plugin writes the address of
	// its counts endpoint to; the plugin removes it from the settings before
	// the file backend sees them (it refuses unknown settings).
	countAddrFileSetting = "loadtest_counts_addr_file"
)

// Backend methods, in the order they are reported.
var backendMethods = []string{"Configure", "Capabilities", "List", "Describe", "Read", "Write", "Delete", "Versions", "Ping"}

// countingBackend wraps a backend and counts its calls.
type countingBackend struct {
	next   sdk.Backend
	counts [9]atomic.Uint64 // by index in backendMethods
	once   sync.Once
}

func serveCountingPlugin() {
	plugin.Serve(&countingBackend{next: file.New()})
}

func (b *countingBackend) count(i int) { b.counts[i].Add(1) }

func (b *countingBackend) snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(backendMethods))
	for i, m := range backendMethods {
		out[m] = b.counts[i].Load()
	}
	return out
}

func (b *countingBackend) Configure(ctx context.Context, settings map[string]string) error {
	b.count(0)
	rest := make(map[string]string, len(settings))
	for k, v := range settings {
		if k != countAddrFileSetting {
			rest[k] = v
		}
	}
	if path := settings[countAddrFileSetting]; path != "" {
		var err error
		b.once.Do(func() { err = b.serveCounts(path) })
		if err != nil {
			return err
		}
	}
	return b.next.Configure(ctx, rest)
}

// serveCounts answers GET / with the counts as JSON on a free loopback port
// and writes that address to path (written whole, then renamed, so that a
// reader never sees half of it).
func (b *countingBackend) serveCounts(path string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("counting plugin: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b.snapshot())
	})}
	go func() { _ = srv.Serve(l) }()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(l.Addr().String()), 0o600); err != nil {
		return fmt.Errorf("counting plugin: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("counting plugin: %w", err)
	}
	return nil
}

func (b *countingBackend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	b.count(1)
	return b.next.Capabilities(ctx)
}

func (b *countingBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	b.count(2)
	return b.next.List(ctx, req)
}

func (b *countingBackend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	b.count(3)
	return b.next.Describe(ctx, ref)
}

func (b *countingBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	b.count(4)
	return b.next.Read(ctx, ref)
}

func (b *countingBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	b.count(5)
	return b.next.Write(ctx, req)
}

func (b *countingBackend) Delete(ctx context.Context, ref sdk.Ref) error {
	b.count(6)
	return b.next.Delete(ctx, ref)
}

func (b *countingBackend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	b.count(7)
	return b.next.Versions(ctx, ref)
}

func (b *countingBackend) Ping(ctx context.Context) error {
	b.count(8)
	return b.next.Ping(ctx)
}

// backendCounter reads the counting plugin's counts from the load test.
type backendCounter struct{ url string }

// waitCounter waits for the plugin to publish its address in path.
func waitCounter(path string, timeout time.Duration) (*backendCounter, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return &backendCounter{url: "http://" + string(b) + "/"}, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the counting plugin did not publish its address in %s within %s", path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *backendCounter) read() (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// A restarted plugin listens elsewhere and counts from zero: the
		// figures would be wrong, so say so rather than guess.
		return nil, fmt.Errorf("reading the counting plugin's counts (did it restart?): %w", err)
	}
	defer resp.Body.Close()
	var out map[string]uint64
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("counting plugin's counts: %w", err)
	}
	return out, nil
}

// callDelta is after - before, by method.
func callDelta(before, after map[string]uint64) map[string]int64 {
	d := make(map[string]int64, len(backendMethods))
	for _, m := range backendMethods {
		d[m] = int64(after[m]) - int64(before[m])
	}
	return d
}

// gatewayCalls reads the gateway's own count of calls to backend, by
// method, from secretgate_backend_calls_total on /metrics; ok is false when
// the gateway exports no such counter (older binaries).
func gatewayCalls(base, backend string) (calls map[string]uint64, ok bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	const metric = "secretgate_backend_calls_total"
	calls = map[string]uint64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE "+metric+" ") {
			ok = true
		}
		rest, found := strings.CutPrefix(line, metric+`{backend="`+backend+`",method="`)
		if !found {
			continue
		}
		method, value, found := strings.Cut(rest, `"} `)
		if !found {
			return nil, false, fmt.Errorf("metrics: unexpected line %q", line)
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("metrics: %q: %w", line, err)
		}
		// The gateway labels methods in lower case; backendMethods are
		// the Go names.
		for _, m := range backendMethods {
			if strings.EqualFold(m, method) {
				calls[m] = n
			}
		}
	}
	return calls, ok, sc.Err()
}
