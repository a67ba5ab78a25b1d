package plugin

import (
	"context"
	"fmt"

	"github.com/secretgate/secretgate/sdk"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// DisableDirect makes this process, when it serves a plugin, answer
// OpenDirect as a plugin built before the direct channel does.
func DisableDirect() { directDisabled = true }

// UsesDirect reports whether b's calls take the direct channel.
func UsesDirect(b sdk.Backend) bool {
	gc, ok := b.(*grpcClient)
	return ok && gc.hop.direct.Load() != nil
}

// DirectAddr returns the direct channel's socket and token of b.
func DirectAddr(b sdk.Backend) (string, []byte) {
	d := b.(*grpcClient).hop.direct.Load()
	if d == nil {
		return "", nil
	}
	return d.addr, d.token
}

// DirectPing connects to the direct channel at addr as the gateway would,
// presents token and makes a Ping call on it: nil means the plugin answered.
func DirectPing(ctx context.Context, addr string, token []byte, pluginPid int) error {
	d := &directClient{addr: addr, token: token, pid: pluginPid, hop: &hopConn{}}
	d.nextConn.Store(1 << 62) // clear of the gateway's own connections' ids
	c, err := d.dial(ctx)
	if err != nil {
		return err
	}
	defer c.c.Close()
	var rep backendpb.DirectReply
	if err := c.roundTrip(&backendpb.DirectCall{Call: 1, Method: backendpb.Backend_Ping_FullMethodName}, &rep); err != nil {
		return err
	}
	if rep.GetStatus() != nil {
		return fmt.Errorf("ping failed: %s", rep.GetStatus().GetMessage())
	}
	return nil
}

// SpoilDirectToken makes b's next direct connection present a wrong token,
// as if the plugin had refused it, and drops its idle connections so that
// the next call needs a new one.
func SpoilDirectToken(b sdk.Backend) {
	d := b.(*grpcClient).hop.direct.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.token = make([]byte, directTokenBytes)
	for _, c := range d.idle {
		_ = c.c.Close()
		delete(d.all, c)
	}
	d.idle = nil
}
