package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// Event is a change of a secret (created, updated, deleted) or a resync
// notice; see api.Event. It never carries a value.
type Event = api.Event

// Event kinds, from api.
const (
	EventCreated = api.EventCreated
	EventUpdated = api.EventUpdated
	EventDeleted = api.EventDeleted
	EventResync  = api.EventResync
)

// WatchOptions narrows and positions a watch. Zero values mean "every
// secret the token may list" and "from now on".
type WatchOptions struct {
	// Secrets is a glob on secret names (the gateway's ?secrets=).
	Secrets string
	// LastEventID resumes after the event of that index (an Event.Index
	// seen earlier), as a reconnect does.
	LastEventID int64
}

// Watcher is a running watch. Read Events until it is closed, then Err
// tells why it ended.
type Watcher struct {
	events chan Event
	mu     sync.Mutex
	err    error
}

// Events delivers the events in order. It is closed when the watch ends:
// when the context given to Watch is done, or when the gateway refuses the
// watch for good.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err is why the watch ended, valid once Events is closed: the context's
// error when it was cancelled, else the gateway's refusal (an *APIError, say
// ErrUnauthenticated or sdk.ErrNotFound) or a malformed stream.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Backoff between reconnections, and how long a stream may stay silent:
// the gateway sends a comment every 15 s, so a longer silence means a
// connection that died without a FIN (a NAT or a proxy forgot it).
// Variables so that tests run in milliseconds.
var (
	watchMinBackoff  = 500 * time.Millisecond
	watchMaxBackoff  = 30 * time.Second
	watchIdleTimeout = 45 * time.Second
)

// maxEventBytes bounds one event's data: events are a few dozen bytes, so a
// larger one is a broken stream, not a reason to buffer without end.
const maxEventBytes = 1 << 20

// errWatchProtocol marks a stream that does not speak the events protocol.
var errWatchProtocol = errors.New("malformed event stream")

// Watch follows the changes of project's secrets (GET
// /v1/projects/{project}/events, which needs secrets.list) and delivers
// them on the returned Watcher's Events, only those of secrets the token's
// bindings cover.
//
// The first connection is made before Watch returns, so a refusal (bad
// token, no permission, unknown project, invalid glob) or an unreachable
// gateway is its error. After that the watch lasts until ctx is done: a
// dropped stream, a 5xx or 429 are retried with jittered exponential backoff
// (up to 30 s) sending Last-Event-ID, so that no event is lost; when the
// gateway no longer has the missed events it sends an EventResync, after
// which the caller should read again what it cares about. A 4xx answer to a
// reconnection ends the watch, with Err saying why. Unknown event kinds are
// delivered as they are; callers should ignore the kinds they do not know.
//
// Watching uses the client's transport without its timeout, which would
// cut the stream; WithTimeout does not apply to it.
func (c *Client) Watch(ctx context.Context, project string, opts WatchOptions) (*Watcher, error) {
	if err := sdk.ValidateProject(project); err != nil {
		return nil, err
	}
	if opts.LastEventID < 0 {
		return nil, sdk.Invalid("last_event_id", "must not be negative")
	}
	hc := *c.hc
	hc.Timeout = 0
	s := &stream{
		c: c, hc: &hc, path: "/v1/projects/" + project + "/events",
		minBackoff: watchMinBackoff, maxBackoff: watchMaxBackoff, idle: watchIdleTimeout,
	}
	if opts.Secrets != "" {
		s.query = url.Values{"secrets": {opts.Secrets}}
	}
	if opts.LastEventID > 0 {
		s.lastID = strconv.FormatInt(opts.LastEventID, 10)
	}
	body, cancel, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	w := &Watcher{events: make(chan Event)}
	go w.run(ctx, s, body, cancel)
	return w, nil
}

// stream is the state a watch keeps across connections.
type stream struct {
	c      *Client
	hc     *http.Client
	path   string
	query  url.Values
	lastID string // the SSE "last event ID buffer", sent as Last-Event-ID

	minBackoff, maxBackoff, idle time.Duration
}

func (w *Watcher) run(ctx context.Context, s *stream, body io.ReadCloser, cancel context.CancelFunc) {
	defer close(w.events)
	backoff := s.minBackoff
	for {
		delivered, err := s.read(ctx, body, cancel, w.events)
		if delivered {
			backoff = s.minBackoff
		}
		if err != nil {
			w.finish(err)
			return
		}
		for {
			if ctx.Err() != nil {
				w.finish(ctx.Err())
				return
			}
			wait := backoffDelay(backoff)
			backoff = nextBackoff(backoff, s.maxBackoff)
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter > wait {
				wait = min(ae.RetryAfter, s.maxBackoff)
			}
			if err := sdk.Sleep(ctx, wait); err != nil {
				w.finish(err)
				return
			}
			body, cancel, err = s.connect(ctx)
			if err == nil {
				break
			}
			if !retryable(err) {
				w.finish(err)
				return
			}
		}
	}
}

func (w *Watcher) finish(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// backoffDelay is d with equal jitter: in [d/2, d], so that clients
// dropped together do not come back together, yet none comes back at once.
func backoffDelay(d time.Duration) time.Duration { return d/2 + sdk.Jitter(d-d/2) }

func nextBackoff(d, limit time.Duration) time.Duration { return min(2*d, limit) }

// retryable tells the failures of a (re)connection that may pass: no
// answer at all, an overloaded or failing gateway. The other answers (400,
// 401, 403, 404) will not change by asking again.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return errors.Is(err, ErrUnreachable)
}

// connect opens one stream. The returned cancel ends it (and must be
// called once it is no longer read).
func (s *stream) connect(ctx context.Context) (io.ReadCloser, context.CancelFunc, error) {
	u := *s.c.base
	u.Path += s.path
	u.RawQuery = s.query.Encode()
	cctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("client: watch %s: %w", s.path, err)
	}
	rid, _ := ctx.Value(requestIDKey{}).(string)
	if rid == "" {
		rid = newRequestID()
	}
	tok, err := s.c.tokenNow()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("X-Request-Id", rid)
	if s.c.ua != "" {
		req.Header.Set("User-Agent", s.c.ua)
	}
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("client: watch %s: %w", s.path, &transportError{err})
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("client: watch %s: read response: %w", s.path, &transportError{err})
		}
		if echoed := resp.Header.Get("X-Request-Id"); echoed != "" {
			rid = echoed
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil, nil, fmt.Errorf("client: watch %s: status %d: %w", s.path, resp.StatusCode, errWatchProtocol)
		}
		return nil, nil, decodeError(resp, data, rid)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		cancel()
		return nil, nil, fmt.Errorf("client: watch %s: content type %q: %w", s.path, mt, errWatchProtocol)
	}
	return resp.Body, cancel, nil
}

// read parses one stream (the Server-Sent Events format of the WHATWG HTML
// standard) and sends its events on out until the stream ends. It reports
// whether it delivered anything, and returns nil when the stream merely
// ended or broke (a reconnection may follow), an error when the watch must
// end. It closes body.
func (s *stream) read(ctx context.Context, body io.ReadCloser, cancel context.CancelFunc, out chan<- Event) (delivered bool, err error) {
	defer cancel()
	defer body.Close()
	idle := time.AfterFunc(s.idle, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	sc.Split(scanSSELines)
	var (
		kind string
		data bytes.Buffer
		// id is the standard's "last event ID buffer": it becomes the id
		// sent on reconnect only when a blank line ends its event, so an
		// event cut off by a dropped connection is asked for again.
		id    string
		hasID bool
	)
	for sc.Scan() {
		idle.Reset(s.idle)
		line := sc.Bytes()
		if len(line) == 0 {
			if hasID {
				s.lastID, hasID = id, false
			}
			if data.Len() == 0 {
				kind = ""
				continue
			}
			ev, err := decodeEvent(kind, bytes.TrimSuffix(data.Bytes(), []byte("\n")))
			kind = ""
			data.Reset()
			if err != nil {
				return delivered, fmt.Errorf("client: watch %s: %w", s.path, err)
			}
			select {
			case out <- ev:
				delivered = true
			case <-ctx.Done():
				return delivered, ctx.Err()
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			kind = string(value)
		case "data":
			if data.Len()+len(value) >= maxEventBytes {
				return delivered, fmt.Errorf("client: watch %s: event larger than %d bytes: %w", s.path, maxEventBytes, errWatchProtocol)
			}
			data.Write(value)
			data.WriteByte('\n')
		case "id":
			// The standard ignores an id holding NUL; a complete event's id
			// is kept even when it has no data, as the standard says.
			if bytes.IndexByte(value, 0) < 0 {
				id, hasID = string(value), true
			}
		}
		// "retry" and unknown fields are ignored: the backoff is ours.
	}
	if ctx.Err() != nil {
		return delivered, ctx.Err()
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		// Asking again would bring the same line back.
		return delivered, fmt.Errorf("client: watch %s: line longer than %d bytes: %w", s.path, maxEventBytes, errWatchProtocol)
	}
	// EOF, a reset or the idle timer: all mean "reconnect";
	// an event cut off before its blank line is dropped, as the standard
	// says, and comes again after Last-Event-ID.
	return delivered, nil
}

func decodeEvent(kind string, data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		// The data is not quoted back: it is the server's, not ours to print.
		return Event{}, fmt.Errorf("event %q: data is not an event object: %w", kind, errWatchProtocol)
	}
	if kind == "" {
		kind = "message"
	}
	ev.Kind = kind
	return ev, nil
}

// scanSSELines splits at CRLF, LF or a lone CR, the three line ends the
// event stream format allows.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		// A CR at the end of what was read: wait to see whether LF follows.
		return 0, nil, nil
	}
	if atEOF {
		// A last line without its end cannot complete an event.
		return len(data), nil, nil
	}
	return 0, nil, nil
}
