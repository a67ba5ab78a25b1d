package plugin

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// directDisabled makes OpenDirect answer UNIMPLEMENTED, as a plugin built
// before the direct channel does; tests set it to cover that path.
var directDisabled bool

// errDirectUnsupported: OpenDirect answers UNIMPLEMENTED.
var errDirectUnsupported = errors.New("direct channel not supported")

// maxSocketPath is the room in sockaddr_un for a path (108 bytes on Linux,
// with its NUL).
const maxSocketPath = 107

// directServer is the plugin's side of the direct channel (see direct.go).
type directServer struct {
	srv       any // the handlers' receiver: the grpcServer
	handlers  map[string]grpc.MethodHandler
	intercept grpc.UnaryServerInterceptor
	logger    hclog.Logger

	mu     sync.Mutex
	ln     *net.UnixListener
	token  []byte
	conns  map[uint64]*serverConn
	closed bool
}

func newDirectServer(srv any, intercept grpc.UnaryServerInterceptor, logger hclog.Logger) *directServer {
	handlers := map[string]grpc.MethodHandler{}
	desc := backendpb.Backend_ServiceDesc
	for _, m := range desc.Methods {
		// The channel's own methods stay on gRPC: they are how it is set up.
		if m.MethodName != "OpenDirect" && m.MethodName != "CancelDirect" {
			handlers["/"+desc.ServiceName+"/"+m.MethodName] = m.Handler
		}
	}
	return &directServer{srv: srv, handlers: handlers, intercept: intercept, logger: logger,
		conns: map[uint64]*serverConn{}}
}

// open starts listening in dir, once; it returns the socket's path and the
// token every connection must present.
func (s *directServer) open(dir string) (string, []byte, error) {
	if !directSupported || directDisabled {
		return "", nil, errDirectUnsupported
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return "", nil, errors.New("the plugin is stopping")
	case s.ln != nil:
		return "", nil, errors.New("the direct channel is already open")
	}
	if err := checkPrivateDir(dir); err != nil {
		return "", nil, fmt.Errorf("direct channel directory: %w", err)
	}
	path := filepath.Join(dir, "direct.sock")
	if len(path) > maxSocketPath {
		return "", nil, fmt.Errorf("socket path %s is over %d bytes", path, maxSocketPath)
	}
	token := make([]byte, directTokenBytes)
	if _, err := rand.Read(token); err != nil {
		return "", nil, fmt.Errorf("direct channel token: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return "", nil, fmt.Errorf("direct channel: %w", err)
	}
	// Nobody else can reach the file meanwhile: the directory is 0700.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return "", nil, fmt.Errorf("direct channel: %w", err)
	}
	s.ln, s.token = ln, token
	go s.accept(ln)
	return path, token, nil
}

// close stops the channel when the plugin stops: calls in flight see their
// context cancelled, as gRPC's Stop does to its calls.
func (s *directServer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.ln != nil {
		_ = s.ln.Close() // also removes the socket file
	}
	for _, sc := range s.conns {
		sc.cancelRunning(context.Canceled)
		_ = sc.c.Close()
	}
}

func (s *directServer) accept(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: let calls take gRPC meanwhile.
			s.logger.Warn("direct channel: accept failed", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go s.serveConn(c)
	}
}

// serveConn admits the connection (peer, token), then answers its calls
// one after the other on this goroutine: no hand-off between goroutines.
func (s *directServer) serveConn(c *net.UnixConn) {
	defer c.Close()
	if err := checkPeer(c, os.Getppid()); err != nil {
		s.logger.Warn("direct channel: refused a connection", "reason", err.Error())
		return
	}
	if err := c.SetDeadline(time.Now().Add(directHandshakeTimeout)); err != nil {
		return
	}
	r := bufio.NewReaderSize(c, 8<<10)
	var hello backendpb.DirectHello
	rbuf, err := readFrame(r, nil, &hello)
	if err != nil {
		s.logger.Warn("direct channel: refused a connection", "reason", "no hello: "+err.Error())
		return
	}
	// s.token is written once, before the listener exists.
	if subtle.ConstantTimeCompare(hello.GetToken(), s.token) != 1 {
		s.logger.Warn("direct channel: refused a connection", "reason", "wrong token")
		return
	}
	sc, ok := s.register(hello.GetConn(), c)
	if !ok {
		s.logger.Warn("direct channel: refused a connection", "reason", "connection id in use")
		return
	}
	defer s.unregister(hello.GetConn())
	if err := c.SetDeadline(time.Time{}); err != nil {
		return
	}
	wbuf, err := writeFrame(c, nil, &backendpb.DirectReply{})
	if err != nil {
		return
	}
	var call backendpb.DirectCall
	for {
		call.Reset()
		if rbuf, err = readFrame(r, rbuf, &call); err != nil {
			return // the host closed the connection, or the plugin is stopping
		}
		reply := s.handle(sc, &call)
		clear(call.Request)
		wbuf, err = writeFrame(c, wbuf, reply)
		clear(reply.Response)
		if err != nil {
			return
		}
	}
}

func (s *directServer) register(id uint64, c *net.UnixConn) (*serverConn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.conns[id] != nil {
		return nil, false
	}
	sc := &serverConn{c: c}
	s.conns[id] = sc
	return sc, true
}

func (s *directServer) unregister(id uint64) {
	s.mu.Lock()
	sc := s.conns[id]
	delete(s.conns, id)
	s.mu.Unlock()
	if sc != nil {
		sc.stopTimer()
	}
}

// cancelCall is CancelDirect: it ends call on connection id with err, or
// that call when it starts if it has not yet.
func (s *directServer) cancelCall(id, call uint64, err error) {
	s.mu.Lock()
	sc := s.conns[id]
	s.mu.Unlock()
	if sc != nil {
		sc.cancelCall(call, err)
	}
}

// handle runs one call through the method's gRPC handler and the server's
// interceptors, exactly as the gRPC server would, and turns the outcome
// into a reply.
func (s *directServer) handle(sc *serverConn, call *backendpb.DirectCall) *backendpb.DirectReply {
	h, ok := s.handlers[call.GetMethod()]
	if !ok {
		return statusReply(status.Newf(codes.Unimplemented, "unknown method %s on the direct channel", call.GetMethod()))
	}
	var deadline time.Time
	if t := call.GetTimeoutNanos(); t > 0 {
		deadline = time.Now().Add(time.Duration(t))
	}
	ctx := sc.begin(call.GetCall(), deadline)
	// Like a gRPC handler's context, it ends when the handler returns, for
	// anything the backend left running on it.
	defer ctx.cancel(context.Canceled)
	defer sc.end()
	dec := func(m any) error {
		if err := proto.Unmarshal(call.GetRequest(), m.(proto.Message)); err != nil {
			return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
		}
		return nil
	}
	resp, err := h(s.srv, ctx, dec, s.intercept)
	if err != nil {
		return statusReply(status.Convert(err))
	}
	b, err := proto.Marshal(resp.(proto.Message))
	if err != nil {
		return statusReply(status.Newf(codes.Internal, "grpc: error while marshaling: %v", err))
	}
	if len(b) > maxMessageBytes {
		return statusReply(status.Newf(codes.ResourceExhausted,
			"grpc: received message larger than max (%d vs. %d)", len(b), maxMessageBytes))
	}
	return &backendpb.DirectReply{Response: b}
}

func statusReply(st *status.Status) *backendpb.DirectReply {
	p := st.Proto()
	return &backendpb.DirectReply{Status: &backendpb.DirectStatus{
		Code: p.GetCode(), Message: p.GetMessage(), Details: p.GetDetails(),
	}}
}

// serverConn is one admitted connection. The host sends it one call at a
// time, numbered upwards; a CancelDirect may arrive before its call does.
type serverConn struct {
	c *net.UnixConn

	mu          sync.Mutex
	running     uint64   // the call in progress; 0 between calls
	ctx         *callCtx // its context
	last        uint64   // the last call started
	canceled    uint64   // a call cancelled before it started...
	canceledErr error    // ...and why
	// timer is the backstop for deadlines, should the host's CancelDirect
	// not arrive: armed by the first call with a deadline and left alone
	// by the next ones (touching a timer on every call would cost what
	// callCtx saves), it checks the running call when it fires and re-arms
	// for its deadline.
	timer      *time.Timer
	timerArmed bool
}

func (sc *serverConn) begin(call uint64, deadline time.Time) *callCtx {
	ctx := &callCtx{deadline: deadline}
	sc.mu.Lock()
	sc.running, sc.ctx, sc.last = call, ctx, call
	early := sc.canceledErr
	if sc.canceled != call {
		early = nil
	}
	if !deadline.IsZero() && !sc.timerArmed {
		sc.armLocked(time.Until(deadline))
	}
	sc.mu.Unlock()
	switch {
	case early != nil:
		ctx.cancel(early)
	case !deadline.IsZero() && !time.Now().Before(deadline):
		ctx.cancel(context.DeadlineExceeded)
	}
	return ctx
}

func (sc *serverConn) end() {
	sc.mu.Lock()
	sc.running, sc.ctx = 0, nil
	sc.mu.Unlock()
}

func (sc *serverConn) cancelCall(call uint64, err error) {
	sc.mu.Lock()
	ctx := sc.ctx
	switch {
	case call == sc.running && ctx != nil:
	case call > sc.last:
		sc.canceled, sc.canceledErr = call, err
		ctx = nil
	default:
		ctx = nil // a call that has ended
	}
	sc.mu.Unlock()
	if ctx != nil {
		ctx.cancel(err)
	}
}

func (sc *serverConn) cancelRunning(err error) {
	sc.mu.Lock()
	ctx := sc.ctx
	sc.mu.Unlock()
	if ctx != nil {
		ctx.cancel(err)
	}
}

func (sc *serverConn) armLocked(d time.Duration) {
	sc.timerArmed = true
	if sc.timer == nil {
		sc.timer = time.AfterFunc(d, sc.expire)
	} else {
		sc.timer.Reset(d)
	}
}

// expire is the backstop timer: it ends the running call if its deadline
// has passed, and waits for it otherwise.
func (sc *serverConn) expire() {
	sc.mu.Lock()
	ctx := sc.ctx
	sc.timerArmed = false
	if ctx != nil && !ctx.deadline.IsZero() {
		if left := time.Until(ctx.deadline); left > 0 {
			sc.armLocked(left)
			ctx = nil
		}
	} else {
		ctx = nil
	}
	sc.mu.Unlock()
	if ctx != nil {
		ctx.cancel(context.DeadlineExceeded)
	}
}

func (sc *serverConn) stopTimer() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.timer != nil {
		sc.timer.Stop()
	}
}
