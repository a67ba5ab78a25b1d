package plugin

import (
	"context"
	"sync"
	"time"
)

// callCtx is the context of a call on the plugin's side of the direct
// channel. It reports the host's deadline without a timer of its own per
// call: arming a timer on the goroutine that the network has just woken
// makes the runtime wake another thread to watch the timers
// (runtime.wakeNetPoller), which measured two more context switches per
// call, half again the cost of a call. Instead the call ends when the host
// says so (CancelDirect, sent when the host's own deadline passes or its
// caller gives up), when the connection's backstop timer finds the deadline
// passed (serverConn.expire), or when the plugin stops.
//
// It implements AfterFunc, so that the contexts a backend derives from it
// (context.WithCancel, WithTimeout, AfterFunc) follow it without a
// goroutine each, as they follow the standard library's contexts.
type callCtx struct {
	deadline time.Time // zero: none

	mu    sync.Mutex
	done  chan struct{} // made on first use
	err   error
	after []*func() // AfterFunc callbacks not yet run or stopped
}

var _ context.Context = (*callCtx)(nil)

// closedChan is Done of a context that ended before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

// Value: the call carries no values, like a gRPC call's context without
// metadata.
func (c *callCtx) Value(any) any { return nil }

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run once c is done; stop cancels that.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	p := &f
	c.after = append(c.after, p)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, q := range c.after {
			if q == p {
				c.after = append(c.after[:i], c.after[i+1:]...)
				return true
			}
		}
		return false
	}
}

// cancel ends the call with err (context.Canceled or DeadlineExceeded);
// later calls do nothing.
func (c *callCtx) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	after := c.after
	c.after = nil
	c.mu.Unlock()
	// These are cancel functions of derived contexts (context's
	// propagateCancel), which do not block; context.AfterFunc's own callback
	// starts its goroutine itself.
	for _, f := range after {
		(*f)()
	}
}
