package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// Staged writes on the direct channel (sdk.StagedWriter). The host sends a
// Write with DirectCall.staged, then, once its audit intent record is on
// disk, a DirectProceed; the reply follows that. The plugin hands the
// backend a ready that reads the DirectProceed, so that the backend can do
// everything but commit while the host syncs. Only the call's own
// connection carries its DirectProceed, and serveConn does not read that
// connection while the call runs, so ready may read it from whichever
// goroutine the backend commits on.

// errWithdrawn is ready's error when the host withdraws a staged write.
var errWithdrawn = errors.New("the gateway withdrew the write: its audit intent record could not be written")

// stagedCall is one staged call's DirectProceed, read once: by the
// backend's ready, or, when the backend returned without calling it, by
// serveConn before it replies.
type stagedCall struct {
	c        *net.UnixConn
	r        *bufio.Reader
	deadline time.Time // the call's; zero: none

	once   sync.Once
	err    error // nil: go ahead
	broken bool  // the connection lost its framing: it carries no more calls
}

func (st *stagedCall) ready() error {
	st.once.Do(st.read)
	return st.err
}

// read waits for the DirectProceed, no longer than the call's deadline. A
// host that gives up on the call closes the connection, which ends the
// read at once.
func (st *stagedCall) read() {
	if !st.deadline.IsZero() {
		_ = st.c.SetReadDeadline(st.deadline)
		defer func() { _ = st.c.SetReadDeadline(time.Time{}) }()
	}
	var p backendpb.DirectProceed
	if _, err := readFrame(st.r, nil, &p); err != nil {
		st.err, st.broken = fmt.Errorf("no go-ahead from the gateway for a staged write: %w", err), true
		return
	}
	if p.GetAbort() {
		st.err = errWithdrawn
	}
}

// stagedReadyKey is the context key under which a staged call's context
// (callCtx.Value) holds its ready.
type stagedReadyKey struct{}

// readyOf returns the ready of a staged call's context, nil for any other.
func readyOf(ctx context.Context) func() error {
	ready, _ := ctx.Value(stagedReadyKey{}).(func() error)
	return ready
}
