package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

// A write that reached the gateway may have been applied even when no answer
// came back (the gateway stored it, then its plugin or the connection died).
// These tests check that the client never sends such a write a second time
// on its own, over HTTP/1.1 and HTTP/2, with or without If-Match: a replay
// either duplicates a non-idempotent write or, with If-Match, turns a write
// that was applied into a 412 that says it was not.

// writeCall is one write of the client's API.
type writeCall struct {
	name string
	call func(ctx context.Context, c *client.Client) error
}

func writeCalls() []writeCall {
	data := map[string]string{"k": "v"}
	return []writeCall{
		{"create", func(ctx context.Context, c *client.Client) error {
			_, err := c.Create(ctx, "p", "s", data, nil)
			return err
		}},
		{"update", func(ctx context.Context, c *client.Client) error {
			_, err := c.Update(ctx, "p", "s", data, nil, 0)
			return err
		}},
		{"update with If-Match", func(ctx context.Context, c *client.Client) error {
			_, err := c.Update(ctx, "p", "s", data, nil, 3)
			return err
		}},
		{"patch", func(ctx context.Context, c *client.Client) error {
			_, err := c.Patch(ctx, "p", "s", data, nil, 0)
			return err
		}},
		{"patch with If-Match", func(ctx context.Context, c *client.Client) error {
			_, err := c.Patch(ctx, "p", "s", data, nil, 3)
			return err
		}},
		{"set labels", func(ctx context.Context, c *client.Client) error {
			_, err := c.SetLabels(ctx, "p", "s", map[string]string{"env": "dev"}, 0)
			return err
		}},
		{"delete", func(ctx context.Context, c *client.Client) error {
			return c.Delete(ctx, "p", "s", 0)
		}},
		{"delete with If-Match", func(ctx context.Context, c *client.Client) error {
			return c.Delete(ctx, "p", "s", 3)
		}},
		{"copy", func(ctx context.Context, c *client.Client) error {
			_, err := c.CopySecret(ctx, "p", "s", client.CopyOptions{ToProject: "q"})
			return err
		}},
		{"start migration", func(ctx context.Context, c *client.Client) error {
			_, err := c.StartMigration(ctx, client.MigrationRequest{Source: "a", Target: "b", Projects: []string{"p"}})
			return err
		}},
	}
}

// methodLog records the methods of the requests a stub received.
type methodLog struct {
	mu      sync.Mutex
	methods []string
}

func (l *methodLog) add(m string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.methods = append(l.methods, m)
}

func (l *methodLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.methods...)
}

const metadataJSON = `{"project":"p","name":"s","keys":["k"],"version":3,"labels":{}}`

// startDroppingHTTP1 serves HTTP/1.1 on 127.0.0.1: it answers a GET and
// keeps the connection, and reads every other request in full, then closes
// the connection without a word, as a gateway that stored the write and
// died would; or, with unavailable, answers it 503 as a gateway does whose
// plugin died after storing it.
func startDroppingHTTP1(t *testing.T, unavailable bool) (addr string, log *methodLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	log = &methodLog{}
	serve(t, ln, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			log.add(req.Method)
			answer := okAnswer
			if req.Method != http.MethodGet {
				if !unavailable {
					return
				}
				answer = unavailableAnswer
			}
			if _, err := io.WriteString(conn, answer); err != nil {
				return
			}
		}
	})
	return "http://" + ln.Addr().String(), log
}

const unavailableJSON = `{"error":{"code":"backend_unavailable","message":"backend \"file\" is unavailable, retry later"}}`

var unavailableAnswer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: " +
	strconv.Itoa(len(unavailableJSON)) + "\r\n\r\n" + unavailableJSON

var okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
	strconv.Itoa(len(metadataJSON)) + "\r\n\r\n" + metadataJSON

// serve runs handle on each connection ln accepts, until the test ends; then
// it closes the listener and every connection, and waits for the handlers.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
}

func TestWriteIsNotResentHTTP1(t *testing.T) {
	cases := []struct {
		name                string
		reused, unavailable bool
	}{
		{"dropped on a fresh connection", false, false},
		{"dropped on a reused connection", true, false},
		{"answered 503", true, true},
	}
	for _, tc := range cases {
		for _, w := range writeCalls() {
			t.Run(tc.name+"/"+w.name, func(t *testing.T) {
				addr, log := startDroppingHTTP1(t, tc.unavailable)
				c, err := client.New(addr, "tok", client.WithTimeout(5*time.Second))
				require.NoError(t, err)
				ctx := context.Background()
				sent := 0
				if tc.reused {
					// A first exchange leaves a keep-alive connection that the
					// write then goes out on.
					_, err := c.Describe(ctx, "p", "s")
					require.NoError(t, err)
					sent++
				}
				err = w.call(ctx, c)
				require.ErrorIs(t, err, sdk.ErrUnavailable)
				var apiErr *client.APIError
				require.Equal(t, tc.unavailable, errors.As(err, &apiErr), "%v", err)
				require.Equal(t, !tc.unavailable, errors.Is(err, client.ErrUnreachable), "%v", err)
				got := log.get()
				require.Len(t, got, sent+1, "requests received: %v", got)
				require.NotEqual(t, http.MethodGet, got[sent])
			})
		}
	}
}

// A read is idempotent: net/http may send it again on a new connection when
// a reused one closes without an answer, and that must keep working.
func TestReadIsResentAfterConnectionDropHTTP1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	log := &methodLog{}
	var connMu sync.Mutex
	conns := 0
	serve(t, ln, func(conn net.Conn) {
		connMu.Lock()
		first := conns == 0
		conns++
		connMu.Unlock()
		br := bufio.NewReader(conn)
		// The first connection answers once, then reads the second GET and
		// closes; later connections answer everything.
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			log.add(req.Method)
			if first && i == 1 {
				return
			}
			if _, err := io.WriteString(conn, okAnswer); err != nil {
				return
			}
		}
	})
	c, err := client.New(ln.Addr().String(), "tok", client.WithTimeout(5*time.Second))
	require.NoError(t, err)
	for range 2 {
		_, err = c.Describe(context.Background(), "p", "s")
		require.NoError(t, err)
	}
	require.Equal(t, []string{"GET", "GET", "GET"}, log.get())
}

// HTTP/2 frame types, flags and error codes (RFC 9113) the stub below uses.
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2Ping         = 0x6
	h2FlagEnd      = 0x1 // END_STREAM on DATA and HEADERS, ACK on SETTINGS and PING
	h2ProtocolErr  = 0x1
	h2ClientPrefix = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// startResettingHTTP2 serves HTTP/2 over TLS on 127.0.0.1: it reads each
// request in full, then resets its stream with PROTOCOL_ERROR. That error
// code says nothing about whether the request was processed (unlike
// REFUSED_STREAM or a GOAWAY above the stream), yet net/http's HTTP/2
// transport sends the request again after it if it can rewind the body.
// The stub counts the requests whose headers arrived.
func startResettingHTTP2(t *testing.T) (addr string, caPEM []byte, count func() int) {
	t.Helper()
	// Borrow httptest's certificate for 127.0.0.1.
	certSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	certSrv.StartTLS()
	cert := certSrv.TLS.Certificates[0]
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certSrv.Certificate().Raw})
	certSrv.Close()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	})
	require.NoError(t, err)
	var mu sync.Mutex
	requests := 0
	serve(t, ln, func(conn net.Conn) {
		serveResettingHTTP2(conn, func() {
			mu.Lock()
			requests++
			mu.Unlock()
		})
	})
	return "https://" + ln.Addr().String(), caPEM, func() int {
		mu.Lock()
		defer mu.Unlock()
		return requests
	}
}

func serveResettingHTTP2(conn net.Conn, onRequest func()) {
	preface := make([]byte, len(h2ClientPrefix))
	if _, err := io.ReadFull(conn, preface); err != nil || string(preface) != h2ClientPrefix {
		return
	}
	writeFrame := func(typ, flags byte, stream uint32, payload []byte) error {
		hdr := make([]byte, 9, 9+len(payload))
		hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
		hdr[3], hdr[4] = typ, flags
		binary.BigEndian.PutUint32(hdr[5:], stream)
		_, err := conn.Write(append(hdr, payload...))
		return err
	}
	if writeFrame(h2Settings, 0, 0, nil) != nil {
		return
	}
	hdr := make([]byte, 9)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			return
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags := hdr[3], hdr[4]
		stream := binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff
		payload := make([]byte, length)
		if _, err := io.ReadFull(conn, payload); err != nil {
			return
		}
		var err error
		switch typ {
		case h2Settings:
			if flags&h2FlagEnd == 0 {
				err = writeFrame(h2Settings, h2FlagEnd, 0, nil)
			}
		case h2Ping:
			if flags&h2FlagEnd == 0 {
				err = writeFrame(h2Ping, h2FlagEnd, 0, payload)
			}
		case h2Headers:
			onRequest()
		}
		if err == nil && (typ == h2Headers || typ == h2Data) && flags&h2FlagEnd != 0 {
			// The whole request is in: answer with a reset instead of a response.
			err = writeFrame(h2RSTStream, 0, stream, binary.BigEndian.AppendUint32(nil, h2ProtocolErr))
		}
		if err != nil {
			return
		}
	}
}

func TestWriteIsNotResentAfterStreamResetHTTP2(t *testing.T) {
	for _, w := range writeCalls() {
		t.Run(w.name, func(t *testing.T) {
			addr, caPEM, count := startResettingHTTP2(t)
			c, err := client.New(addr, "tok", client.WithCACert(caPEM), client.WithTimeout(2*time.Second))
			require.NoError(t, err)
			err = w.call(context.Background(), c)
			require.Error(t, err)
			var apiErr *client.APIError
			require.False(t, errors.As(err, &apiErr), "no answer came: %v", err)
			require.ErrorIs(t, err, client.ErrUnreachable)
			require.Equal(t, 1, count(), "the write was sent once")
		})
	}
}

// Writes that net/http cannot replay still look like ordinary requests to a
// server, over HTTP/1.1 and HTTP/2: a JSON body with its Content-Length, and
// a DELETE without a body.
func TestWritesOnTheWire(t *testing.T) {
	type seen struct {
		proto, method  string
		contentLength  int64
		body           string
		transferChunks bool
	}
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			var mu sync.Mutex
			var got []seen
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				got = append(got, seen{r.Proto, r.Method, r.ContentLength, string(b), len(r.TransferEncoding) > 0})
				mu.Unlock()
				if r.Method == http.MethodDelete {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, metadataJSON)
			}))
			var opts []client.Option
			if h2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				opts = append(opts, client.WithCACert(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			c, err := client.New(srv.URL, "tok", opts...)
			require.NoError(t, err)
			ctx := context.Background()
			_, err = c.Update(ctx, "p", "s", map[string]string{"k": "v"}, nil, 3)
			require.NoError(t, err)
			require.NoError(t, c.Delete(ctx, "p", "s", 3))

			proto := "HTTP/1.1"
			if h2 {
				proto = "HTTP/2.0"
			}
			body := `{"data":{"k":"v"}}`
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, got, 2)
			require.Equal(t, seen{proto, "PUT", int64(len(body)), body, false}, got[0])
			require.Equal(t, proto, got[1].proto)
			require.Equal(t, "DELETE", got[1].method)
			require.Empty(t, got[1].body)
			require.False(t, got[1].transferChunks, "no chunked body on a DELETE")
		})
	}
}
