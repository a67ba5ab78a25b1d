package gcptest

import (
	"context"
	"fmt"
	"net"
	"path"
	"sync"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretgate/secretgate/internal/cirequire"
)

// faults are errors injected into the next calls of a method, so that tests
// can see how a client handles UNAVAILABLE, PERMISSION_DENIED and the like.
type faults struct {
	mu   sync.Mutex
	next map[string][]codes.Code
}

// FailNext makes the next n calls of method (its short name, e.g.
// "AccessSecretVersion") fail with code before reaching the store.
func (s *Server) FailNext(method string, code codes.Code, n int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.next == nil {
		s.faults.next = map[string][]codes.Code{}
	}
	for range n {
		s.faults.next[method] = append(s.faults.next[method], code)
	}
}

// ClearFaults drops every injected error not yet served.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.next = nil
}

func (s *Server) takeFault(method string) (codes.Code, bool) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	q := s.faults.next[method]
	if len(q) == 0 {
		return codes.OK, false
	}
	s.faults.next[method] = q[1:]
	return q[0], true
}

func (s *Server) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	s.countCall(method)
	if err := s.admit(method, req); err != nil {
		return nil, err
	}
	if code, ok := s.takeFault(method); ok {
		return nil, status.Errorf(code, "injected by gcptest: %s", code)
	}
	return handler(ctx, req)
}

// Running is a server listening on a TCP address.
type Running struct {
	*Server
	Addr string // host:port, for option.WithEndpoint
	grpc *grpc.Server
	done chan error
}

// Stop stops the gRPC server at once and waits for it.
func (r *Running) Stop() {
	r.grpc.Stop()
	<-r.done
}

// Listen starts a new server on addr (e.g. "127.0.0.1:0").
func Listen(addr string) (*Running, error) {
	return NewServer().Listen(addr)
}

// Listen serves s on addr (e.g. "127.0.0.1:0").
func (s *Server) Listen(addr string) (*Running, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gcptest: listen on %s: %w", addr, err)
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(s.interceptor))
	secretmanagerpb.RegisterSecretManagerServiceServer(g, s)
	r := &Running{Server: s, Addr: lis.Addr().String(), grpc: g, done: make(chan error, 1)}
	go func() { r.done <- g.Serve(lis) }()
	return r, nil
}

// Start runs a new server on a free loopback port for the duration of the
// test. If the port cannot be had the test is skipped, and fails when the
// environment variable CI is "true".
func Start(t testing.TB) *Running {
	t.Helper()
	return startServer(t, NewServer())
}

func startServer(t testing.TB, s *Server) *Running {
	t.Helper()
	r, err := s.Listen("127.0.0.1:0")
	if err != nil {
		cirequire.Unavailable(t, fmt.Sprintf("gcptest: cannot start the Secret Manager test server: %v", err))
	}
	t.Cleanup(r.Stop)
	return r
}
