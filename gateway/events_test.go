package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// callCountingBackend counts every call the gateway makes to a backend.
type callCountingBackend struct {
	sdk.Backend
	calls *atomic.Int64
}

func (b callCountingBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	b.calls.Add(1)
	return b.Backend.List(ctx, req)
}
func (b callCountingBackend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	b.calls.Add(1)
	return b.Backend.Describe(ctx, ref)
}
func (b callCountingBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	b.calls.Add(1)
	return b.Backend.Read(ctx, ref)
}
func (b callCountingBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	b.calls.Add(1)
	return b.Backend.Write(ctx, req)
}
func (b callCountingBackend) Delete(ctx context.Context, ref sdk.Ref) error {
	b.calls.Add(1)
	return b.Backend.Delete(ctx, ref)
}
func (b callCountingBackend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	b.calls.Add(1)
	return b.Backend.Versions(ctx, ref)
}
func (b callCountingBackend) Ping(ctx context.Context) error {
	b.calls.Add(1)
	return b.Backend.Ping(ctx)
}

type callCountingBackends struct {
	*memBackends
	calls atomic.Int64
}

func (b *callCountingBackends) Backend(name string) (sdk.Backend, error) {
	be, err := b.memBackends.Backend(name)
	if err != nil {
		return nil, err
	}
	return callCountingBackend{Backend: be, calls: &b.calls}, nil
}

// hidingAuthz is fakeAuthz whose CanSee also hides some names, as a
// binding narrowed by globs does; secrets.list at project level is granted
// as the policy grants it (to any list binding).
type hidingAuthz struct {
	fakeAuthz
	hidden map[string]bool
}

func (h hidingAuthz) CanSee(subject, project, name string) bool {
	return !h.hidden[name] && h.fakeAuthz.CanSee(subject, project, name)
}

// eventsEnv is a gateway serving HTTP on 127.0.0.1 over in-memory backends.
type eventsEnv struct {
	srv      *Server
	url      string
	backends *callCountingBackends
	client   *http.Client
}

const eventsSecret = "CANARY-event-value-91c4"

func newEventsEnv(t *testing.T, tune ...func(*Server)) *eventsEnv {
	t.Helper()
	cfg := &Config{Projects: []ProjectConfig{{Name: "payments", Backend: "mem"}, {Name: "other", Backend: "mem"}}}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete}
	authz := hidingAuthz{
		fakeAuthz: fakeAuthz{
			tokens: map[string]string{"t-admin": "admin", "t-reader": "reader", "t-blind": "blind"},
			grants: map[string]fakeGrant{
				"admin/payments":  {actions: all},
				"admin/other":     {actions: all},
				"reader/payments": {actions: []string{ActionList, ActionRead}},
				"blind/payments":  {actions: []string{ActionRead}},
			},
		},
		hidden: map[string]bool{"hidden-db": true},
	}
	backends := &callCountingBackends{memBackends: &memBackends{m: map[string]*memBackend{"mem": newMemBackend()}}}
	srv, err := New(context.Background(), cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorizer: authz, Auditor: &memAuditor{}, Backends: backends,
	})
	require.NoError(t, err)
	for _, f := range tune {
		f(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx) // a test may have shut it down already
		require.NoError(t, <-served)
		tr.CloseIdleConnections()
	})
	return &eventsEnv{srv: srv, url: "http://" + ln.Addr().String(), backends: backends, client: &http.Client{Transport: tr}}
}

// do sends one request and returns its status and body.
func (e *eventsEnv) do(t *testing.T, method, path, token string, body any, hdrs ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		require.NoError(t, err)
		rd = strings.NewReader(string(j))
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	// Bounded, so that a refusal that turned into a stream fails the test.
	client := &http.Client{Transport: e.client.Transport, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// write makes one change through the API and checks it succeeded.
func (e *eventsEnv) write(t *testing.T, method, path string, body any, want int) {
	t.Helper()
	code, b := e.do(t, method, "/v1/projects/"+path, "t-admin", body)
	require.Equal(t, want, code, "%s", b)
}

// sseEvent is one parsed block of a stream: an event, or a comment.
type sseEvent struct {
	ID, Event, Data, Comment string
}

// stream is an open event stream read by a goroutine.
type stream struct {
	resp   *http.Response
	events chan sseEvent
	mu     sync.Mutex
	raw    strings.Builder // every byte received, to look for values
}

func (e *eventsEnv) watch(t *testing.T, query, token string, hdrs ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/v1/projects/payments/events"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	s := &stream{resp: resp, events: make(chan sseEvent, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.raw.WriteString(line + "\n")
			s.mu.Unlock()
			switch {
			case line == "":
				s.events <- ev
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.Comment = strings.TrimSpace(strings.TrimPrefix(line, ":"))
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			default:
				ev.Comment = "unexpected line " + line
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = resp.Body.Close()
		<-done
	})
	return s
}

// next returns the next event that is not a keep-alive comment.
func (s *stream) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			require.True(t, ok, "the stream ended")
			if ev.Comment == "keep-alive" {
				continue
			}
			require.Empty(t, ev.Comment)
			return ev
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

// none checks that nothing but keep-alives arrives for a while.
func (s *stream) none(t *testing.T, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if ok && ev.Comment == "keep-alive" {
				continue
			}
			t.Fatalf("unexpected %+v", ev)
		case <-timeout:
			return
		}
	}
}

func (s *stream) rawText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// expect checks an event: its id, kind and exact data line.
func expect(t *testing.T, ev sseEvent, id uint64, kind, name string, version int64) {
	t.Helper()
	require.Equal(t, strconv.FormatUint(id, 10), ev.ID, "%+v", ev)
	require.Equal(t, kind, ev.Event, "%+v", ev)
	want := fmt.Sprintf(`{"project":"payments","name":%q,"version":%d,"index":%d}`, name, version, id)
	if kind == EventResync {
		want = fmt.Sprintf(`{"project":"payments","index":%d}`, id)
	}
	require.Equal(t, want, ev.Data)
}

func secretBody(name string) map[string]any {
	return map[string]any{"name": name, "data": map[string]string{"password": eventsSecret}}
}

// Every kind of write through the gateway emits one event, in order, with
// consecutive ids, and no event carries a value.
func TestEventsOrderAndIDs(t *testing.T) {
	e := newEventsEnv(t)
	s := e.watch(t, "", "t-admin")
	e.write(t, "POST", "payments/secrets", secretBody("db"), 201)
	e.write(t, "PUT", "payments/secrets/db", map[string]any{"data": map[string]string{"password": eventsSecret + "2"}}, 200)
	e.write(t, "PATCH", "payments/secrets/db", map[string]any{"set": map[string]string{"user": eventsSecret + "3"}}, 200)
	e.write(t, "POST", "payments/secrets/db/copy", map[string]any{"as": "db-copy"}, 201)
	e.write(t, "POST", "payments/secrets/db/copy", map[string]any{"as": "db-copy", "overwrite": true}, 200)
	e.write(t, "POST", "payments/secrets/db/copy", map[string]any{"to_project": "other"}, 201) // another project's log
	e.write(t, "DELETE", "payments/secrets/db", nil, 204)
	e.write(t, "POST", "payments/secrets/db-copy/copy", map[string]any{"as": "db-copy"}, 400) // failed writes emit nothing
	e.write(t, "PUT", "payments/secrets/db", map[string]any{"data": map[string]string{"k": "v"}}, 404)
	e.write(t, "POST", "other/secrets", secretBody("elsewhere"), 201)
	e.write(t, "POST", "payments/secrets", secretBody("last"), 201)

	expect(t, s.next(t), 1, EventSecretCreated, "db", 1)
	expect(t, s.next(t), 2, EventSecretUpdated, "db", 2)
	expect(t, s.next(t), 3, EventSecretUpdated, "db", 3)
	expect(t, s.next(t), 4, EventSecretCreated, "db-copy", 1)
	expect(t, s.next(t), 5, EventSecretUpdated, "db-copy", 2)
	expect(t, s.next(t), 6, EventSecretDeleted, "db", 0)
	expect(t, s.next(t), 7, EventSecretCreated, "last", 1)
	s.none(t, 100*time.Millisecond)
	require.NotContains(t, s.rawText(), "CANARY")
}

// Events reach only watchers that may see the name and whose glob matches.
func TestEventsFiltering(t *testing.T) {
	tests := []struct {
		name, query, token string
		want               []string
	}{
		{"everything visible", "", "t-admin", []string{"db", "stripe-key", "stripe-hook"}},
		{"glob", "?secrets=stripe-*", "t-admin", []string{"stripe-key", "stripe-hook"}},
		{"glob one name", "?secrets=db", "t-reader", []string{"db"}},
		{"glob hidden", "?secrets=hidden-*", "t-admin", nil},
	}
	e := newEventsEnv(t)
	streams := make([]*stream, len(tests))
	for i, tc := range tests {
		streams[i] = e.watch(t, tc.query, tc.token)
	}
	for _, n := range []string{"db", "hidden-db", "stripe-key", "stripe-hook"} {
		e.write(t, "POST", "payments/secrets", secretBody(n), 201)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for range tc.want {
				var d struct{ Name string }
				require.NoError(t, json.Unmarshal([]byte(streams[i].next(t).Data), &d))
				got = append(got, d.Name)
			}
			require.Equal(t, tc.want, got)
			streams[i].none(t, 100*time.Millisecond)
			require.NotContains(t, streams[i].rawText(), "hidden-db")
		})
	}
}

// A watcher that reconnects with the id of the last event it received gets
// every later event once, whether it names the id in the header or query.
func TestEventsResume(t *testing.T) {
	for _, via := range []string{"header", "query"} {
		t.Run(via, func(t *testing.T) {
			e := newEventsEnv(t)
			s := e.watch(t, "", "t-admin")
			e.write(t, "POST", "payments/secrets", secretBody("a"), 201)
			e.write(t, "POST", "payments/secrets", secretBody("b"), 201)
			expect(t, s.next(t), 1, EventSecretCreated, "a", 1)
			last := s.next(t)
			expect(t, last, 2, EventSecretCreated, "b", 1)
			_ = s.resp.Body.Close() // the watcher goes away; writes go on
			for _, n := range []string{"c", "d", "e"} {
				e.write(t, "POST", "payments/secrets", secretBody(n), 201)
			}
			var r *stream
			if via == "header" {
				r = e.watch(t, "", "t-admin", "Last-Event-ID", last.ID)
			} else {
				r = e.watch(t, "?last_event_id="+last.ID, "t-admin")
			}
			expect(t, r.next(t), 3, EventSecretCreated, "c", 1)
			expect(t, r.next(t), 4, EventSecretCreated, "d", 1)
			expect(t, r.next(t), 5, EventSecretCreated, "e", 1)
			e.write(t, "POST", "payments/secrets", secretBody("f"), 201)
			expect(t, r.next(t), 6, EventSecretCreated, "f", 1)
			r.none(t, 50*time.Millisecond)
		})
	}
}

// A resume point the gateway cannot continue from answers resync with the
// latest index, then the stream goes on live.
func TestEventsResync(t *testing.T) {
	t.Run("older than the log", func(t *testing.T) {
		e := newEventsEnv(t)
		for i := range eventLogSize + 5 {
			e.srv.publish("payments", EventSecretCreated, sdk.Meta{Name: fmt.Sprintf("s%d", i), Version: 1})
		}
		s := e.watch(t, "", "t-admin", "Last-Event-ID", "4")
		expect(t, s.next(t), eventLogSize+5, EventResync, "", 0)
		e.write(t, "POST", "payments/secrets", secretBody("live"), 201)
		expect(t, s.next(t), eventLogSize+6, EventSecretCreated, "live", 1)
	})
	t.Run("oldest kept", func(t *testing.T) {
		e := newEventsEnv(t)
		for i := range eventLogSize + 5 {
			e.srv.publish("payments", EventSecretCreated, sdk.Meta{Name: fmt.Sprintf("s%d", i), Version: 1})
		}
		s := e.watch(t, "", "t-admin", "Last-Event-ID", "5")
		expect(t, s.next(t), 6, EventSecretCreated, "s5", 1)
	})
	t.Run("after a restart", func(t *testing.T) {
		before := newEventsEnv(t)
		for _, n := range []string{"a", "b", "c"} {
			before.write(t, "POST", "payments/secrets", secretBody(n), 201)
		}
		// A new gateway (a restart) numbers its events from 1 again.
		after := newEventsEnv(t)
		after.write(t, "POST", "payments/secrets", secretBody("x"), 201)
		s := after.watch(t, "", "t-admin", "Last-Event-ID", "3")
		expect(t, s.next(t), 1, EventResync, "", 0)
		after.write(t, "POST", "payments/secrets", secretBody("y"), 201)
		expect(t, s.next(t), 2, EventSecretCreated, "y", 1)
	})
}

// A watcher that stops reading never holds up a writer: the writes go on,
// and when it reads again it is told to resync instead of getting a gap.
func TestEventsSlowSubscriber(t *testing.T) {
	t.Run("unit", func(t *testing.T) {
		h := newEventHub()
		pl := h.project("p")
		sub := pl.subscribe(0, false, "")
		done := make(chan struct{})
		go func() {
			for i := range 3 * eventLogSize {
				h.publish("p", EventSecretUpdated, sdk.Meta{Name: "db", Version: int64(i + 1)})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a subscriber that never reads blocked the writer")
		}
		evs, at, owes := pl.pending(sub, nil)
		require.True(t, owes)
		require.Empty(t, evs)
		require.EqualValues(t, 3*eventLogSize, at)
		h.publish("p", EventSecretUpdated, sdk.Meta{Name: "db", Version: 9})
		evs, _, owes = pl.pending(sub, nil)
		require.False(t, owes)
		require.Equal(t, []event{{index: 3*eventLogSize + 1, kind: EventSecretUpdated, name: "db", version: 9,
			wire: []byte("id: 3073\nevent: secret.updated\ndata: {\"project\":\"p\",\"name\":\"db\",\"version\":9,\"index\":3073}\n\n")}}, evs)
	})
	t.Run("http", func(t *testing.T) {
		e := newEventsEnv(t)
		// A client that opens a stream and never reads its body: once the
		// socket buffers are full its handler is stuck in Write.
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		_, err = fmt.Fprintf(conn, "GET /v1/projects/payments/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t-admin\r\n\r\n")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			pl := e.srv.events().project("payments")
			pl.mu.Lock()
			defer pl.mu.Unlock()
			return len(pl.subs) == 1
		}, 5*time.Second, 5*time.Millisecond)
		long := strings.Repeat("n", 200)
		done := make(chan struct{})
		go func() {
			// About 5 MB of events for the stalled watcher.
			for i := range 20000 {
				e.srv.publish("payments", EventSecretUpdated, sdk.Meta{Name: long, Version: int64(i + 1)})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a stalled watcher blocked the writers")
		}
		fast := e.watch(t, "", "t-admin")
		e.write(t, "POST", "payments/secrets", secretBody("db"), 201)
		expect(t, fast.next(t), 20001, EventSecretCreated, "db", 1)
	})
}

// Quiet streams get a comment line at the keep-alive interval.
func TestEventsKeepAlive(t *testing.T) {
	e := newEventsEnv(t, func(s *Server) { s.events().keepAlive.Store(int64(20 * time.Millisecond)) })
	s := e.watch(t, "", "t-admin")
	select {
	case ev := <-s.events:
		require.Equal(t, sseEvent{Comment: "keep-alive"}, ev)
	case <-time.After(5 * time.Second):
		t.Fatal("no keep-alive")
	}
	require.Contains(t, s.rawText(), ": keep-alive\n\n")
}

// A stream outlives the server's read timeout, and ends at Shutdown
// (which would otherwise wait for watchers that never hang up).
func TestEventsLongStreamAndShutdown(t *testing.T) {
	e := newEventsEnv(t, func(s *Server) { s.readTimeout = 100 * time.Millisecond })
	s := e.watch(t, "", "t-admin")
	time.Sleep(300 * time.Millisecond)
	e.write(t, "POST", "payments/secrets", secretBody("late"), 201)
	expect(t, s.next(t), 1, EventSecretCreated, "late", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, e.srv.Shutdown(ctx))
	require.Less(t, time.Since(start), 2*time.Second, "Shutdown waited for the open stream")
	_, ok := <-s.events
	require.False(t, ok, "the stream is still open after Shutdown")
}

// Refusals come before the stream, as on every project route.
func TestEventsRefusals(t *testing.T) {
	e := newEventsEnv(t)
	tests := []struct {
		name, path, token string
		hdrs              []string
		status            int
		field             string
	}{
		{"no binding", "/v1/projects/other/events", "t-reader", nil, 404, ""},
		{"unknown project", "/v1/projects/nowhere/events", "t-admin", nil, 404, ""},
		{"no list", "/v1/projects/payments/events", "t-blind", nil, 403, ""},
		{"bad token", "/v1/projects/payments/events", "nope", nil, 401, ""},
		{"bad glob", "/v1/projects/payments/events?secrets=[", "t-admin", nil, 400, "secrets"},
		{"bad header id", "/v1/projects/payments/events", "t-admin", []string{"Last-Event-ID", "x1"}, 400, "Last-Event-ID"},
		{"negative query id", "/v1/projects/payments/events?last_event_id=-1", "t-admin", nil, 400, "last_event_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "GET", tc.path, tc.token, nil, tc.hdrs...)
			require.Equal(t, tc.status, code, "%s", body)
			var eb api.ErrorBody
			require.NoError(t, json.Unmarshal(body, &eb), "%s", body)
			if tc.field != "" {
				require.Contains(t, eb.Error.Message, "invalid "+tc.field+":")
			}
		})
	}
}

// One write reaches 1,000 watchers, and watchers cost the backend nothing.
func TestEventsManySubscribers(t *testing.T) {
	e := newEventsEnv(t)
	const watchers = 1000
	before := e.backends.calls.Load()
	streams := make([]*stream, watchers)
	for i := range streams {
		streams[i] = e.watch(t, "", "t-admin")
	}
	require.Zero(t, e.backends.calls.Load()-before, "opening streams called a backend")
	start := time.Now()
	e.write(t, "POST", "payments/secrets", secretBody("db"), 201)
	for _, s := range streams {
		expect(t, s.next(t), 1, EventSecretCreated, "db", 1)
	}
	t.Logf("one write reached %d watchers in %s", watchers, time.Since(start))
	require.EqualValues(t, 1, e.backends.calls.Load()-before, "backend calls: the write only")
}

// A migration switch tells every watcher of the project to re-list.
func TestEventsMigrationSwitchResyncs(t *testing.T) {
	e := newMigrateEnv(t)
	pl := e.srv.events().project("payments")
	sub := pl.subscribe(0, false, "")
	_, err := e.src.memBackend.Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: "db", Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)
	r := e.h.do(t, "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "switch": true})
	require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
	var started struct{ ID string }
	require.NoError(t, json.Unmarshal(r.body, &started))
	require.True(t, e.wait(t, started.ID).Switched)
	evs, _, owes := pl.pending(sub, nil)
	require.False(t, owes)
	require.Equal(t, []event{{index: 1, kind: EventResync, wire: []byte("id: 1\nevent: resync\ndata: {\"project\":\"payments\",\"index\":1}\n\n")}}, evs)
}

// stream reads the event stream of the OpenAPI environment until a short
// context ends, so that its answer can be checked against the spec.
func (e *openAPIEnv) stream(t *testing.T, path, token string, hdrs ...string) oaResp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	return oaResp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}
