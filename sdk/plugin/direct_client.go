package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// hopConn is the host's connection to a plugin, under the generated
// BackendClient: calls take the direct channel when it is open and has a
// connection to spare, the gRPC connection otherwise.
type hopConn struct {
	grpc   grpc.ClientConnInterface
	direct atomic.Pointer[directClient]
}

var _ grpc.ClientConnInterface = (*hopConn)(nil)

func (h *hopConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if d := h.direct.Load(); d != nil {
		if sent, err := d.invoke(ctx, method, args, reply); sent {
			return err
		}
	}
	return h.grpc.Invoke(ctx, method, args, reply, opts...)
}

func (h *hopConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return h.grpc.NewStream(ctx, desc, method, opts...)
}

// openDirect asks the plugin (process pid) for its direct channel in dir
// and starts using it. An error leaves every call on gRPC; errDirectUnsupported
// means the plugin does not have the channel, which is no fault.
func (h *hopConn) openDirect(ctx context.Context, dir string, pid int) error {
	resp, err := backendpb.NewBackendClient(h.grpc).OpenDirect(ctx, &backendpb.OpenDirectRequest{Dir: dir})
	if status.Code(err) == codes.Unimplemented {
		return errDirectUnsupported
	}
	if err != nil {
		return fmt.Errorf("opening the direct channel: %w", err)
	}
	d := &directClient{addr: resp.GetAddress(), token: resp.GetToken(), pid: pid, hop: h, all: map[*clientConn]struct{}{}}
	// One connection now, so that a channel that cannot work is known at
	// launch rather than found out by a call.
	c, err := d.dial(ctx)
	if err != nil {
		return fmt.Errorf("opening the direct channel: %w", err)
	}
	d.all[c] = struct{}{}
	d.idle = append(d.idle, c)
	h.direct.Store(d)
	return nil
}

// closeDirect closes the direct channel's connections, in use or not: calls
// in flight on them fail as unavailable, later calls take gRPC.
func (h *hopConn) closeDirect() {
	if d := h.direct.Swap(nil); d != nil {
		d.close()
	}
}

// directClient is the host's side of the direct channel: a pool of
// connections, each carrying one call at a time.
type directClient struct {
	addr  string
	token []byte
	pid   int // the plugin's; every connection must reach it
	hop   *hopConn

	nextConn atomic.Uint64

	mu     sync.Mutex
	idle   []*clientConn
	all    map[*clientConn]struct{} // idle and in use
	dials  int                      // dials in progress, counted against maxDirectConns
	closed bool
}

type clientConn struct {
	id   uint64
	c    *net.UnixConn
	r    *bufio.Reader
	buf  []byte
	call uint64 // the last call's number
}

// aLongTimeAgo, as a deadline, ends a blocked read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// invoke makes one call on the direct channel. sent is false when it did
// not send the call (no connection to spare, or the channel is gone): the
// caller then takes gRPC. Once a call is sent it is never sent again, so
// a Write is not made twice.
func (d *directClient) invoke(ctx context.Context, method string, args, reply any) (sent bool, err error) {
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return true, status.FromContextError(err).Err()
	}
	req, err := proto.Marshal(in)
	if err != nil {
		return true, status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	defer clear(req)
	if len(req) > maxMessageBytes {
		return true, status.Errorf(codes.ResourceExhausted,
			"grpc: trying to send message larger than max (%d vs. %d)", len(req), maxMessageBytes)
	}
	c := d.get(ctx)
	if c == nil {
		return false, nil
	}
	c.call++
	call := &backendpb.DirectCall{Call: c.call, Method: method, Request: req}
	if dl, ok := ctx.Deadline(); ok {
		call.TimeoutNanos = max(int64(time.Until(dl)), 1)
	}
	// A cancellation ends this goroutine's read at once and tells the
	// plugin over gRPC; no goroutine waits on ctx meanwhile.
	var stop func() bool
	if ctx.Done() != nil {
		id, seq := c.id, c.call
		stop = context.AfterFunc(ctx, func() {
			_ = c.c.SetDeadline(aLongTimeAgo)
			d.cancelRemote(id, seq, errors.Is(ctx.Err(), context.DeadlineExceeded))
		})
	}
	var rep backendpb.DirectReply
	err = c.roundTrip(call, &rep)
	defer clear(rep.Response)
	interrupted := stop != nil && !stop()
	switch {
	case err != nil && interrupted:
		d.discard(c)
		return true, status.FromContextError(ctx.Err()).Err()
	case err != nil:
		d.discard(c)
		return true, status.Errorf(codes.Unavailable, "plugin direct channel: %v", err)
	case interrupted:
		// The reply made it; the connection's deadline did not.
		d.discard(c)
	default:
		d.put(c)
	}
	if st := rep.GetStatus(); st != nil {
		if codes.Code(st.GetCode()) == codes.OK {
			return true, status.Error(codes.Internal, "plugin direct channel: an error reply without an error")
		}
		return true, status.ErrorProto(&spb.Status{Code: st.GetCode(), Message: st.GetMessage(), Details: st.GetDetails()})
	}
	if err := proto.Unmarshal(rep.GetResponse(), out); err != nil {
		return true, status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return true, nil
}

func (c *clientConn) roundTrip(call *backendpb.DirectCall, rep *backendpb.DirectReply) error {
	var err error
	if c.buf, err = writeFrame(c.c, c.buf, call); err != nil {
		return err
	}
	c.buf, err = readFrame(c.r, c.buf, rep)
	return err
}

// cancelRemote tells the plugin that call on connection id was cancelled.
// It runs on the AfterFunc's own goroutine, so it may wait a little.
func (d *directClient) cancelRemote(id, call uint64, deadline bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = backendpb.NewBackendClient(d.hop.grpc).CancelDirect(ctx,
		&backendpb.CancelDirectRequest{Conn: id, Call: call, DeadlineExceeded: deadline})
}

// get takes an idle connection or dials one; nil means take gRPC.
func (d *directClient) get(ctx context.Context) *clientConn {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	if n := len(d.idle); n > 0 {
		c := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		return c
	}
	if len(d.all)+d.dials >= maxDirectConns {
		d.mu.Unlock()
		return nil
	}
	d.dials++
	d.mu.Unlock()

	c, err := d.dial(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials--
	switch {
	case err != nil && ctx.Err() == nil:
		// The plugin refuses us or is gone: stop trying, gRPC carries on
		// (and reports the plugin gone if it is). Calls in flight here
		// finish first.
		d.retireLocked()
		return nil
	case err != nil:
		return nil
	case d.closed:
		_ = c.c.Close()
		return nil
	}
	d.all[c] = struct{}{}
	return c
}

func (d *directClient) put(c *clientConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		_ = c.c.Close()
		delete(d.all, c)
		return
	}
	d.idle = append(d.idle, c)
}

func (d *directClient) discard(c *clientConn) {
	_ = c.c.Close()
	d.mu.Lock()
	delete(d.all, c)
	d.mu.Unlock()
}

// close ends the channel and every call on it.
func (d *directClient) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retireLocked()
	for c := range d.all {
		_ = c.c.Close()
	}
}

// retireLocked takes no more calls; connections in use are closed when
// their call ends (put).
func (d *directClient) retireLocked() {
	if d.closed {
		return
	}
	d.closed = true
	for _, c := range d.idle {
		_ = c.c.Close()
		delete(d.all, c)
	}
	d.idle = nil
	// Later calls go to gRPC without looking here.
	d.hop.direct.CompareAndSwap(d, nil)
}

// dial connects, checks that the peer is the plugin, and presents the token.
func (d *directClient) dial(ctx context.Context) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, directHandshakeTimeout)
	defer cancel()
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "unix", d.addr)
	if err != nil {
		return nil, err
	}
	c := &clientConn{id: d.nextConn.Add(1), c: nc.(*net.UnixConn)}
	if err := d.hello(ctx, c); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

func (d *directClient) hello(ctx context.Context, c *clientConn) error {
	if err := checkPeer(c.c, d.pid); err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	if err := c.c.SetDeadline(dl); err != nil {
		return err
	}
	c.r = bufio.NewReaderSize(c.c, 8<<10)
	// A plugin that refuses the connection closes it, which fails the
	// write or the read.
	var err error
	c.buf, err = writeFrame(c.c, c.buf, &backendpb.DirectHello{Token: d.token, Conn: c.id})
	if err == nil {
		var ack backendpb.DirectReply
		c.buf, err = readFrame(c.r, c.buf, &ack)
	}
	if err != nil {
		return fmt.Errorf("the plugin did not admit the connection: %w", err)
	}
	return c.c.SetDeadline(time.Time{})
}
