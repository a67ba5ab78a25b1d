package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// fastWatch shrinks the watch's timings for one test.
func fastWatch(t *testing.T, minB, maxB, idle time.Duration) {
	t.Helper()
	oldMin, oldMax, oldIdle := watchMinBackoff, watchMaxBackoff, watchIdleTimeout
	watchMinBackoff, watchMaxBackoff, watchIdleTimeout = minB, maxB, idle
	t.Cleanup(func() { watchMinBackoff, watchMaxBackoff, watchIdleTimeout = oldMin, oldMax, oldIdle })
}

// sseServer answers each connection to the events endpoint with the next
// handler of script (the last one repeats), and records the requests.
type sseServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []*http.Request
	script []func(w http.ResponseWriter, r *http.Request)
}

func newSSEServer(t *testing.T, script ...func(w http.ResponseWriter, r *http.Request)) *sseServer {
	t.Helper()
	s := &sseServer{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, r.Clone(context.Background()))
		s.mu.Unlock()
		if r.URL.Path != "/v1/projects/payments/events" {
			http.NotFound(w, r)
			return
		}
		s.script[min(n, len(s.script)-1)](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sseServer) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// sends answers 200 with body, then ends the stream unless hold is set,
// in which case it waits for the client to go away.
func sends(body string, hold bool) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, body)
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	}
}

func fails(status int, code string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"no"}}`, code)
	}
}

func event(id int64, kind, name string, version int64) string {
	return fmt.Sprintf("id: %d\nevent: %s\ndata: {\"project\":\"payments\",\"name\":%q,\"version\":%d,\"index\":%d}\n\n", id, kind, name, version, id)
}

func startWatch(t *testing.T, s *sseServer, opts WatchOptions, copts ...Option) (*Watcher, context.CancelFunc) {
	t.Helper()
	c, err := New(s.URL, "sg_test_token", copts...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := c.Watch(ctx, "payments", opts)
	require.NoError(t, err)
	return w, cancel
}

func next(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		require.True(t, ok, "events closed early: %v", w.Err())
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return Event{}
	}
}

func closed(t *testing.T, w *Watcher) error {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			t.Fatalf("unexpected event %+v", ev)
		case <-deadline:
			t.Fatal("events not closed within 5s")
		}
	}
}

func TestWatchParse(t *testing.T) {
	upd := Event{Kind: EventUpdated, Project: "payments", Name: "db", Version: 3, Index: 7}
	tests := []struct {
		name   string
		body   string
		want   []Event
		lastID string
	}{
		{"lf", event(7, EventUpdated, "db", 3), []Event{upd}, "7"},
		{"crlf", strings.ReplaceAll(event(7, EventUpdated, "db", 3), "\n", "\r\n"), []Event{upd}, "7"},
		{"lone cr", strings.ReplaceAll(event(7, EventUpdated, "db", 3), "\n", "\r"), []Event{upd}, "7"},
		{
			"multi-line data, comments, unknown fields, no space after colon",
			": keep-alive\r\nid:7\nretry: 10\nfoo: bar\nevent:secret.updated\ndata: {\"project\":\"payments\",\ndata: \"name\":\"db\",\"version\":3,\ndata:\"index\":7}\n: another comment\n\n",
			[]Event{upd}, "7",
		},
		{"resync", "id: 9\nevent: resync\ndata: {\"project\":\"payments\",\"index\":9}\n\n", []Event{{Kind: EventResync, Project: "payments", Index: 9}}, "9"},
		{"no data is not dispatched but its id counts", "id: 4\nevent: secret.created\n\n" + event(7, EventUpdated, "db", 3)[len("id: 7\n"):], []Event{upd}, "4"},
		{"event type does not leak into the next", "event: secret.deleted\n\ndata: {\"project\":\"payments\",\"index\":1}\n\n", []Event{{Kind: "message", Project: "payments", Index: 1}}, ""},
		{"id with NUL ignored", "id: 3\n" + "id: 5\x00\n" + "data: {\"project\":\"payments\",\"index\":3}\n\n", []Event{{Kind: "message", Project: "payments", Index: 3}}, "3"},
		{"unterminated event dropped", event(1, EventCreated, "a", 1) + "id: 2\nevent: secret.created\ndata: {\"project\":\"payments\"}", []Event{{Kind: EventCreated, Project: "payments", Name: "a", Version: 1, Index: 1}}, "1"},
		{"two events", event(1, EventCreated, "a", 1) + event(2, EventDeleted, "a", 1), []Event{
			{Kind: EventCreated, Project: "payments", Name: "a", Version: 1, Index: 1},
			{Kind: EventDeleted, Project: "payments", Name: "a", Version: 1, Index: 2},
		}, "2"},
	}
	readers := map[string]func(string) io.Reader{
		"whole":       func(s string) io.Reader { return strings.NewReader(s) },
		"byte a time": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
	}
	for _, tc := range tests {
		for rname, rd := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				s := &stream{path: "/v1/projects/payments/events", idle: time.Minute}
				out := make(chan Event, 10)
				delivered, err := s.read(context.Background(), io.NopCloser(rd(tc.body)), func() {}, out)
				require.NoError(t, err)
				close(out)
				var got []Event
				for ev := range out {
					got = append(got, ev)
				}
				require.Equal(t, tc.want, got)
				require.Equal(t, len(tc.want) > 0, delivered)
				require.Equal(t, tc.lastID, s.lastID)
			})
		}
	}
}

func TestWatchParseMalformed(t *testing.T) {
	tests := []struct{ name, body string }{
		{"data not json", "event: secret.updated\ndata: hunter2\n\n"},
		{"line too long", "data: " + strings.Repeat("x", maxEventBytes) + "\n\n"},
		{"data too large", strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", maxEventBytes/1000+1) + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &stream{path: "/p", idle: time.Minute}
			_, err := s.read(context.Background(), io.NopCloser(strings.NewReader(tc.body)), func() {}, make(chan Event, 1))
			require.ErrorIs(t, err, errWatchProtocol)
			require.NotContains(t, err.Error(), "hunter2", "the stream's data is not quoted in errors")
		})
	}
}

func TestWatchReconnectsWithLastEventID(t *testing.T) {
	fastWatch(t, 10*time.Millisecond, 50*time.Millisecond, time.Minute)
	s := newSSEServer(t,
		sends(": hello\n\n"+event(1, EventCreated, "db", 1)+event(2, EventUpdated, "db", 2), false),
		sends(event(3, EventDeleted, "db", 2)+"id: 10\nevent: resync\ndata: {\"project\":\"payments\",\"index\":10}\n\n", true),
	)
	w, _ := startWatch(t, s, WatchOptions{Secrets: "d*"})
	require.Equal(t, []int64{1, 2, 3, 10}, []int64{next(t, w).Index, next(t, w).Index, next(t, w).Index, next(t, w).Index})
	reqs := s.requests()
	require.Len(t, reqs, 2)
	require.Empty(t, reqs[0].Header.Get("Last-Event-ID"))
	require.Equal(t, "2", reqs[1].Header.Get("Last-Event-ID"), "the reconnection resumes after the last event seen")
	for _, r := range reqs {
		require.Equal(t, "d*", r.URL.Query().Get("secrets"))
		require.Equal(t, "text/event-stream", r.Header.Get("Accept"))
		require.Equal(t, "Bearer sg_test_token", r.Header.Get("Authorization"))
	}
}

// An event cut off by a dropped connection (its id arrived, its blank line
// never did) is asked for again: the reconnect sends the id of the last
// complete event, as the SSE standard says.
func TestWatchCutOffEventIsAskedAgain(t *testing.T) {
	fastWatch(t, 10*time.Millisecond, 50*time.Millisecond, time.Minute)
	s := newSSEServer(t,
		sends(event(1, EventCreated, "db", 1)+"id: 2\nevent: secret.updated\n", false),
		sends(event(2, EventUpdated, "db", 2), true),
	)
	w, _ := startWatch(t, s, WatchOptions{})
	require.EqualValues(t, 1, next(t, w).Index)
	require.EqualValues(t, 2, next(t, w).Index)
	reqs := s.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "1", reqs[1].Header.Get("Last-Event-ID"))
}

func TestWatchResumesFromOption(t *testing.T) {
	s := newSSEServer(t, sends(event(43, EventUpdated, "db", 5), true))
	w, _ := startWatch(t, s, WatchOptions{LastEventID: 42})
	require.Equal(t, Event{Kind: EventUpdated, Project: "payments", Name: "db", Version: 5, Index: 43}, next(t, w))
	require.Equal(t, "42", s.requests()[0].Header.Get("Last-Event-ID"))
}

func TestWatchRefusedAtStart(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{http.StatusUnauthorized, CodeUnauthenticated, ErrUnauthenticated},
		{http.StatusForbidden, CodePermissionDenied, ErrPermissionDenied},
		{http.StatusNotFound, CodeNotFound, sdk.ErrNotFound},
		{http.StatusBadRequest, CodeInvalidArgument, sdk.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			s := newSSEServer(t, fails(tc.status, tc.code))
			c, err := New(s.URL, "sg_test_token")
			require.NoError(t, err)
			w, err := c.Watch(context.Background(), "payments", WatchOptions{})
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, w)
		})
	}
}

func TestWatchRefusedOnReconnectEnds(t *testing.T) {
	fastWatch(t, 10*time.Millisecond, 50*time.Millisecond, time.Minute)
	s := newSSEServer(t,
		sends(event(1, EventCreated, "db", 1), false),
		fails(http.StatusServiceUnavailable, CodeBackendUnavailable),
		fails(http.StatusForbidden, CodePermissionDenied),
	)
	w, _ := startWatch(t, s, WatchOptions{})
	require.Equal(t, int64(1), next(t, w).Index)
	require.ErrorIs(t, closed(t, w), ErrPermissionDenied, "a 503 is retried, a 403 ends the watch")
	require.Len(t, s.requests(), 3)
}

func TestWatchNotAnEventStream(t *testing.T) {
	s := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>proxy login</html>")
	})
	c, err := New(s.URL, "sg_test_token")
	require.NoError(t, err)
	_, err = c.Watch(context.Background(), "payments", WatchOptions{})
	require.ErrorIs(t, err, errWatchProtocol)
}

func TestWatchCancelClosesChannel(t *testing.T) {
	gone := make(chan struct{})
	s := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		sends(event(1, EventCreated, "db", 1), true)(w, r)
		close(gone)
	})
	w, cancel := startWatch(t, s, WatchOptions{})
	require.Equal(t, int64(1), next(t, w).Index)
	cancel()
	require.ErrorIs(t, closed(t, w), context.Canceled)
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open after cancel")
	}
}

func TestWatchCancelWhileUndelivered(t *testing.T) {
	// Nobody reads Events: cancel must still end the watch and its
	// connection, not leave it blocked on the channel.
	gone := make(chan struct{})
	s := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		sends(event(1, EventCreated, "db", 1)+event(2, EventCreated, "x", 1), true)(w, r)
		close(gone)
	})
	w, cancel := startWatch(t, s, WatchOptions{})
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open after cancel")
	}
	// Without a reader, a watcher that stopped at cancel has closed Events
	// by now, with nothing left to deliver.
	time.Sleep(50 * time.Millisecond)
	select {
	case _, ok := <-w.Events():
		require.False(t, ok, "an event was still pending after cancel")
	case <-time.After(5 * time.Second):
		t.Fatal("events not closed within 5s of cancel")
	}
	require.ErrorIs(t, w.Err(), context.Canceled)
}

func TestWatchIgnoresClientTimeout(t *testing.T) {
	s := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, event(1, EventCreated, "db", 1))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	w, _ := startWatch(t, s, WatchOptions{}, WithTimeout(100*time.Millisecond))
	require.Equal(t, int64(1), next(t, w).Index)
	require.Len(t, s.requests(), 1, "the stream outlived the client's request timeout")
}

func TestWatchReconnectsAfterSilence(t *testing.T) {
	fastWatch(t, 10*time.Millisecond, 50*time.Millisecond, 200*time.Millisecond)
	s := newSSEServer(t,
		sends(event(1, EventCreated, "db", 1), true), // then silent: a dead connection
		sends(event(2, EventUpdated, "db", 2), true),
	)
	w, _ := startWatch(t, s, WatchOptions{})
	require.Equal(t, int64(1), next(t, w).Index)
	require.Equal(t, int64(2), next(t, w).Index)
	require.Equal(t, "1", s.requests()[1].Header.Get("Last-Event-ID"))
}

func TestWatchBackoffBounded(t *testing.T) {
	for d := time.Millisecond; d <= time.Minute; d *= 3 {
		for range 50 {
			got := backoffDelay(d)
			require.GreaterOrEqual(t, got, d/2)
			require.LessOrEqual(t, got, d)
		}
	}
	d := 500 * time.Millisecond
	for range 20 {
		d = nextBackoff(d, 30*time.Second)
	}
	require.Equal(t, 30*time.Second, d)

	// Against a gateway that keeps failing, reconnections continue at the
	// cap instead of growing without bound: 15 ms minimum, 60 ms cap, so
	// ~0.9 s allows at least 15 attempts; unbounded doubling would make 6.
	fastWatch(t, 15*time.Millisecond, 60*time.Millisecond, time.Minute)
	s := newSSEServer(t, sends(event(1, EventCreated, "db", 1), false), fails(http.StatusBadGateway, CodeBackendUnavailable))
	w, cancel := startWatch(t, s, WatchOptions{})
	require.Equal(t, int64(1), next(t, w).Index)
	time.Sleep(900 * time.Millisecond)
	cancel()
	require.ErrorIs(t, closed(t, w), context.Canceled)
	require.GreaterOrEqual(t, len(s.requests()), 12)
}

func TestWatchValidates(t *testing.T) {
	c, err := New("127.0.0.1:1", "sg_test_token")
	require.NoError(t, err)
	_, err = c.Watch(context.Background(), "Bad Project", WatchOptions{})
	require.ErrorIs(t, err, sdk.ErrInvalid)
	_, err = c.Watch(context.Background(), "payments", WatchOptions{LastEventID: -1})
	require.ErrorIs(t, err, sdk.ErrInvalid)
	_, err = c.Watch(context.Background(), "payments", WatchOptions{})
	require.ErrorIs(t, err, ErrUnreachable)
	require.True(t, errors.Is(err, sdk.ErrUnavailable))
}
