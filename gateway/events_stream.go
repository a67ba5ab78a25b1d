package gateway

// Serving one event stream (events.go has the log it reads).
//
// Over HTTP/1.x the connection leaves net/http once the stream is
// authorized: the handler hijacks it, writes the response headers itself
// and hands it to two small goroutines, one writing events and one reading
// only to notice the client hanging up. The handler's own goroutine, with
// the stack that served the request, net/http's buffers and its
// background reader, then ends. That is what an idle watcher would
// otherwise keep: about half of its memory. The response is delimited by
// the connection's end (Connection: close), which every SSE client reads.
// HTTP/2 streams cannot be handed over and are served in the handler.

import (
	"bytes"
	"net"
	"net/http"
	"path"
	"time"

	"github.com/gin-gonic/gin"
)

// eventStream is one watcher's stream. It holds no reference to the
// request's gin context, which gin reuses once the handler returns.
type eventStream struct {
	s       *Server
	h       *eventHub
	pl      *projectLog
	sub     *subscriber
	subject string
	project string
	glob    string
}

// hijack takes the connection over and serves the stream from it. It
// reports false, with nothing written, when the connection cannot be
// taken; true means the stream is served (or already over).
func (st *eventStream) hijack(c *gin.Context) bool {
	// gin's writer always offers Hijack, and marks itself written when
	// asked: ask only when net/http's writer beneath can do it.
	var inner http.ResponseWriter = c.Writer
	if u, ok := inner.(interface{ Unwrap() http.ResponseWriter }); ok {
		inner = u.Unwrap()
	}
	if _, ok := inner.(http.Hijacker); !ok {
		return false
	}
	conn, rw, err := c.Writer.Hijack()
	if err != nil {
		return false
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = c.Writer.Header().Write(&head)
	head.WriteString("Connection: close\r\n\r\n")
	rw.Reader.Reset(nil) // what a client sends after its request is never read
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := conn.Write(head.Bytes()); err != nil {
		_ = conn.Close()
		st.pl.unsubscribe(st.sub)
		return true
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	go func() {
		defer st.pl.unsubscribe(st.sub)
		defer conn.Close()
		w := &deadlineWriter{conn: conn}
		st.loop(w.write, gone)
	}()
	return true
}

// deadlineWriter writes to a hijacked connection. Each write may take
// writeTimeout: a watcher that stops reading is cut then, not kept. The
// deadline is moved only once it is a quarter spent, which spares a timer
// update per event on every watcher (each write still gets 45 to 60 s).
type deadlineWriter struct {
	conn     net.Conn
	deadline time.Time
}

func (w *deadlineWriter) write(b []byte) bool {
	if now := time.Now(); w.deadline.Sub(now) < writeTimeout*3/4 {
		w.deadline = now.Add(writeTimeout)
		if w.conn.SetWriteDeadline(w.deadline) != nil {
			return false
		}
	}
	_, err := w.conn.Write(b)
	return err == nil
}

// serveInHandler serves the stream through net/http (HTTP/2).
func (st *eventStream) serveInHandler(c *gin.Context) {
	// A stream outlives the server's write timeout, meant for ordinary
	// answers: each write moves the deadline. (The read deadline is no
	// concern: net/http clears it once a body-less request is read.)
	rc := http.NewResponseController(c.Writer)
	c.Status(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if len(b) > 0 {
			if _, err := c.Writer.Write(b); err != nil {
				return false
			}
		}
		c.Writer.Flush()
		return true
	}
	if !write(nil) {
		return
	}
	st.loop(write, c.Request.Context().Done())
}

// loop delivers events until the client is gone, a write fails, the hub
// closes, or a reload takes the project away from the subject.
func (st *eventStream) loop(write func([]byte) bool, gone <-chan struct{}) {
	keepAlive := time.NewTicker(time.Duration(st.h.keepAlive.Load()))
	defer keepAlive.Stop()
	var buf []byte
	var evs []event
	for {
		select {
		case <-gone:
			return
		case <-st.h.closed:
			return
		case <-keepAlive.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		case <-st.sub.wake:
			var at uint64
			var owes bool
			evs, at, owes = st.pl.pending(st.sub, evs)
			buf = buf[:0]
			if owes {
				buf = appendEvent(buf, at, EventResync, eventData{Project: st.project, Index: at})
			}
			// The current policy, not the one the stream opened with: a
			// reload that takes the project away ends the stream.
			authz := st.s.live.Load().authz
			if !authz.HasAnyBinding(st.subject, st.project) || !authz.Allowed(st.subject, st.project, ActionList, "") {
				return
			}
			for _, ev := range evs {
				if ev.kind != EventResync {
					if st.glob != "" {
						if ok, _ := path.Match(st.glob, ev.name); !ok {
							continue
						}
					}
					if !authz.CanSee(st.subject, st.project, ev.name) {
						continue
					}
				}
				buf = append(buf, ev.wire...)
			}
			if len(buf) > 0 && !write(buf) {
				return
			}
		}
	}
}
