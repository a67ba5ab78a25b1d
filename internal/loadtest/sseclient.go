package main

// The watchers' side of the watchers scenario: N event streams on raw TCP
// connections, one goroutine each (net/http's client would add two more per
// connection), each recording when it has parsed the event of each write.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// connectBatch watchers connect at once; the next batch starts when all
	// of them have their response headers, so the gateway's accept queue
	// (net.core.somaxconn, 4096 here) never overflows.
	connectBatch = 250
	// connectTimeout bounds one watcher's dial and response headers.
	connectTimeout = 30 * time.Second
)

// fanout is the record of one run: when each watcher parsed each write's
// event, as nanoseconds since t0 on the monotonic clock (0 = not yet).
type fanout struct {
	t0     time.Time
	secret string
	// base is the secret's version before the first measured write: write
	// k makes version base+k+1.
	base     int64
	writes   int
	n        int
	arrivals [][]int64      // [watcher][write]; each row written only by its watcher
	got      []atomic.Int32 // per write: watchers that have parsed its event
	all      []chan struct{}
	// finished is set before the load test closes the connections: a read
	// error after it is the expected end, before it a stream lost.
	finished atomic.Bool
	lost     atomic.Int32
	firstErr atomic.Pointer[error]

	conns []net.Conn
	wg    sync.WaitGroup
}

func newFanout(n, writes int, secret string, base int64) *fanout {
	f := &fanout{t0: time.Now(), secret: secret, base: base, writes: writes, n: n,
		arrivals: make([][]int64, n), got: make([]atomic.Int32, writes), all: make([]chan struct{}, writes),
		conns: make([]net.Conn, n)}
	for i := range f.arrivals {
		f.arrivals[i] = make([]int64, writes)
	}
	for k := range f.all {
		f.all[k] = make(chan struct{})
	}
	return f
}

func (f *fanout) now() int64 { return int64(time.Since(f.t0)) }

// connect opens the N streams to addr (host:port) in batches, and returns
// once every one has its 200 response headers: the gateway subscribes a
// watcher before it sends them, so each is then registered for events.
func (f *fanout) connect(addr, project, token string) error {
	req := []byte("GET /v1/projects/" + project + "/events HTTP/1.1\r\nHost: " + addr +
		"\r\nAuthorization: Bearer " + token + "\r\nAccept: text/event-stream\r\n\r\n")
	for start := 0; start < f.n; start += connectBatch {
		end := min(start+connectBatch, f.n)
		var batch sync.WaitGroup
		errs := make([]error, end-start)
		for i := start; i < end; i++ {
			batch.Add(1)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				body, err := f.open(i, addr, req)
				errs[i-start] = err
				batch.Done()
				if err == nil {
					f.read(i, body)
				}
			}()
		}
		batch.Wait()
		if err := firstOf(errs); err != nil {
			return fmt.Errorf("connecting watchers %d-%d of %d: %w", start+1, end, f.n, err)
		}
	}
	return nil
}

func firstOf(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// open dials, sends the request and reads the response headers.
func (f *fanout) open(i int, addr string, req []byte) (io.Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, connectTimeout)
	if err != nil {
		return nil, err
	}
	f.conns[i] = conn
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		return nil, fmt.Errorf("response headers: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return nil, fmt.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	_ = conn.SetDeadline(time.Time{})
	// resp.Body undoes the chunked transfer encoding.
	return resp.Body, nil
}

// read parses the stream until the connection ends, recording the arrival
// of every event of the measured secret.
func (f *fanout) read(i int, body io.Reader) {
	lr := bufio.NewReaderSize(body, 512)
	var d struct {
		Name    string `json:"name"`
		Version int64  `json:"version"`
	}
	for {
		line, err := lr.ReadSlice('\n')
		if err != nil {
			if !f.finished.Load() {
				f.lost.Add(1)
				err = fmt.Errorf("watcher %d: stream ended: %w", i+1, err)
				f.firstErr.CompareAndSwap(nil, &err)
			}
			return
		}
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue // id:, event:, a keep-alive comment, the blank line
		}
		d.Name, d.Version = "", 0
		if err := json.Unmarshal(data, &d); err != nil {
			err = fmt.Errorf("watcher %d: event data %q: %w", i+1, data, err)
			f.firstErr.CompareAndSwap(nil, &err)
			continue
		}
		at := f.now()
		k := int(d.Version - f.base - 1)
		if d.Name != f.secret || k < 0 || k >= f.writes || f.arrivals[i][k] != 0 {
			continue
		}
		f.arrivals[i][k] = at
		if int(f.got[k].Add(1)) == f.n {
			close(f.all[k])
		}
	}
}

// close ends every stream and waits for the watchers' goroutines, after
// which arrivals may be read.
func (f *fanout) close() {
	f.finished.Store(true)
	for _, c := range f.conns {
		if c != nil {
			_ = c.Close()
		}
	}
	f.wg.Wait()
}

// latencies are the watcher×write samples: arrival minus the write's
// acknowledgement (ack[k], same clock), and how many arrivals are missing.
func (f *fanout) latencies(ack []int64) (lat []time.Duration, missing int) {
	lat = make([]time.Duration, 0, f.n*f.writes)
	for _, row := range f.arrivals {
		for k, at := range row {
			if at == 0 {
				missing++
				continue
			}
			lat = append(lat, time.Duration(at-ack[k]))
		}
	}
	return lat, missing
}
