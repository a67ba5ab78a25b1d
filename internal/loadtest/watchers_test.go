package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// The watcher records an event only for the measured secret, once per
// write, and a stream that ends before the run is over counts as lost.
func TestFanoutRead(t *testing.T) {
	tests := []struct {
		name     string
		finished bool
		stream   string
		seen     []bool // per write
		lost     int32
	}{
		{
			name: "events, comments and other secrets",
			stream: ": keep-alive\n\n" +
				"id: 3\nevent: secret.updated\ndata: {\"project\":\"watch\",\"name\":\"fanout\",\"version\":2,\"index\":3}\n\n" +
				"id: 4\nevent: secret.updated\ndata: {\"project\":\"watch\",\"name\":\"calib\",\"version\":3,\"index\":4}\n\n" +
				"id: 5\nevent: secret.updated\ndata: {\"project\":\"watch\",\"name\":\"fanout\",\"version\":4,\"index\":5}\n\n" +
				"id: 6\nevent: secret.updated\ndata: {\"project\":\"watch\",\"name\":\"fanout\",\"version\":9,\"index\":6}\n\n",
			finished: true,
			seen:     []bool{true, false, true},
		},
		{
			name:   "stream cut before the end of the run",
			stream: "id: 3\nevent: secret.updated\ndata: {\"project\":\"watch\",\"name\":\"fanout\",\"version\":2,\"index\":3}\n\n",
			seen:   []bool{true, false, false},
			lost:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFanout(1, 3, "fanout", 1)
			f.finished.Store(tt.finished)
			f.read(0, strings.NewReader(tt.stream))
			for k, want := range tt.seen {
				require.Equal(t, want, f.arrivals[0][k] != 0, "write %d", k)
				got := int32(0)
				if want {
					got = 1
				}
				require.Equal(t, got, f.got[k].Load(), "write %d", k)
			}
			require.Equal(t, tt.lost, f.lost.Load())
			require.Equal(t, tt.lost > 0, f.firstErr.Load() != nil)
		})
	}
}

func TestCausedCalls(t *testing.T) {
	tests := []struct {
		name                string
		calib, idle, during map[string]int64
		want                int64
	}{
		{"writes only", map[string]int64{"Write": 20, "Ping": 3}, map[string]int64{"Ping": 7}, map[string]int64{"Write": 20, "Ping": 14}, 0},
		{"a read per watcher", map[string]int64{"Write": 20}, map[string]int64{"Read": 100}, map[string]int64{"Write": 20}, 100},
		{"a describe per event", map[string]int64{"Write": 2}, nil, map[string]int64{"Write": 2, "Describe": 2000}, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, total := causedCalls(tt.calib, tt.idle, tt.during)
			require.Equal(t, tt.want, total)
		})
	}
}

func TestGatewayCalls(t *testing.T) {
	tests := []struct {
		name    string
		metrics string
		ok      bool
		want    map[string]uint64
	}{
		{
			name: "exported",
			metrics: "# TYPE secretgate_backend_calls_total counter\n" +
				"secretgate_backend_calls_total{backend=\"counted\",method=\"write\"} 20\n" +
				"secretgate_backend_calls_total{backend=\"counted\",method=\"read\"} 3\n" +
				"secretgate_backend_calls_total{backend=\"other\",method=\"read\"} 99\n",
			ok:   true,
			want: map[string]uint64{"Write": 20, "Read": 3},
		},
		{name: "not exported", metrics: "# TYPE secretgate_http_requests_total counter\n", want: map[string]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(tt.metrics))
			}))
			t.Cleanup(srv.Close)
			got, ok, err := gatewayCalls(srv.URL, "counted")
			require.NoError(t, err)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

// recordingBackend is a backend that remembers its settings.
type recordingBackend struct {
	sdk.Backend
	settings map[string]string
}

func (b *recordingBackend) Configure(_ context.Context, s map[string]string) error {
	b.settings = s
	return nil
}

func (b *recordingBackend) Ping(context.Context) error { return nil }

// The counting plugin hides its own setting from the backend it wraps (the
// file backend refuses unknown settings) and serves its counts.
func TestCountingBackend(t *testing.T) {
	next := &recordingBackend{}
	b := &countingBackend{next: next}
	addrFile := filepath.Join(t.TempDir(), "counts.addr")
	require.NoError(t, b.Configure(context.Background(), map[string]string{"path": "x.db", countAddrFileSetting: addrFile}))
	require.Equal(t, map[string]string{"path": "x.db"}, next.settings)
	for range 3 {
		require.NoError(t, b.Ping(context.Background()))
	}
	c, err := waitCounter(addrFile, 5*time.Second)
	require.NoError(t, err)
	got, err := c.read()
	require.NoError(t, err)
	require.Equal(t, uint64(1), got["Configure"])
	require.Equal(t, uint64(3), got["Ping"])
	require.Equal(t, uint64(0), got["Read"])
}

func TestProcfs(t *testing.T) {
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	n, err := openFilesLimit(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, lim.Cur, n)
	rss, err := rssKiB(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, rss)
	th, err := threads(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, th)
	_, err = cpuTime(os.Getpid())
	require.NoError(t, err)
}
