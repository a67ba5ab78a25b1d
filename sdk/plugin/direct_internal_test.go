package plugin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// TestServerConnCancel: CancelDirect ends the call it names, whether it
// arrives while the call runs or before the plugin has read the call, and
// never a later call; the context says why it ended.
func TestServerConnCancel(t *testing.T) {
	tests := []struct {
		name    string
		run     func(sc *serverConn) context.Context // returns the context of the call under test
		wantErr error
	}{
		{"while it runs", func(sc *serverConn) context.Context {
			ctx := sc.begin(1, time.Time{})
			sc.cancelCall(1, context.Canceled)
			return ctx
		}, context.Canceled},
		{"its deadline, while it runs", func(sc *serverConn) context.Context {
			ctx := sc.begin(1, time.Now().Add(time.Hour))
			sc.cancelCall(1, context.DeadlineExceeded)
			return ctx
		}, context.DeadlineExceeded},
		{"before it starts", func(sc *serverConn) context.Context {
			sc.cancelCall(1, context.Canceled)
			return sc.begin(1, time.Time{})
		}, context.Canceled},
		{"an earlier call's cancel", func(sc *serverConn) context.Context {
			ctx := sc.begin(1, time.Time{})
			sc.end()
			ctx.cancel(context.Canceled)
			sc.cancelCall(1, context.Canceled) // arrives after call 1 ended
			return sc.begin(2, time.Time{})
		}, nil},
		{"a cancel for the next call, not this one", func(sc *serverConn) context.Context {
			ctx := sc.begin(1, time.Time{})
			sc.cancelCall(2, context.Canceled)
			return ctx
		}, nil},
		{"a deadline already past on arrival", func(sc *serverConn) context.Context {
			return sc.begin(1, time.Now().Add(-time.Millisecond))
		}, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := &serverConn{}
			t.Cleanup(sc.stopTimer)
			ctx := tc.run(sc)
			require.Equal(t, tc.wantErr, ctx.Err())
		})
	}
}

// TestServerConnDeadlineBackstop: without any word from the host, a call
// still ends at its deadline; the timer that ends it, armed by an earlier
// call with a later deadline, re-arms for the running call.
func TestServerConnDeadlineBackstop(t *testing.T) {
	sc := &serverConn{}
	t.Cleanup(sc.stopTimer)
	first := sc.begin(1, time.Now().Add(50*time.Millisecond))
	sc.end()
	first.cancel(context.Canceled)

	start := time.Now()
	ctx := sc.begin(2, time.Now().Add(200*time.Millisecond))
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the call outlived its deadline")
	}
	require.Equal(t, context.DeadlineExceeded, ctx.Err())
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "not before its deadline")
}

// TestCallCtx: the plugin's call context behaves as a context: it reports
// the deadline, and what a backend derives from it ends with it, with the
// same error, without a goroutine each.
func TestCallCtx(t *testing.T) {
	dl := time.Now().Add(time.Hour)
	ctx := &callCtx{deadline: dl}
	got, ok := ctx.Deadline()
	require.True(t, ok)
	require.Equal(t, dl, got)
	_, ok = (&callCtx{}).Deadline()
	require.False(t, ok)

	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(ctx, 2*time.Hour) // later: keeps the parent's deadline
	defer cancelTimed()
	got, _ = timed.Deadline()
	require.Equal(t, dl, got)
	ran := make(chan struct{})
	context.AfterFunc(ctx, func() { close(ran) })
	stopped := false
	stop := context.AfterFunc(ctx, func() { stopped = true })
	require.True(t, stop())
	require.NoError(t, ctx.Err())
	require.NoError(t, child.Err())

	before := runtime.NumGoroutine()
	for range 100 {
		_, cancel := context.WithCancel(ctx)
		defer cancel()
	}
	require.Less(t, runtime.NumGoroutine(), before+10, "derived contexts must not need a goroutine each")

	ctx.cancel(context.DeadlineExceeded)
	ctx.cancel(context.Canceled) // the first reason stays
	for _, c := range []context.Context{ctx, child, timed} {
		<-c.Done()
		require.Equal(t, context.DeadlineExceeded, c.Err())
		require.Equal(t, context.DeadlineExceeded, context.Cause(c))
	}
	<-ran
	require.False(t, stopped)

	late, cancelLate := context.WithCancel(ctx) // derived after the end
	defer cancelLate()
	require.Equal(t, context.DeadlineExceeded, late.Err())
}

func TestCheckPrivateDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the direct channel is Linux only")
	}
	root := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(root, name)
		require.NoError(t, os.Mkdir(p, mode))
		require.NoError(t, os.Chmod(p, mode)) // past the umask
		return p
	}
	private := mk("private", 0o700)
	link := filepath.Join(root, "link")
	require.NoError(t, os.Symlink(private, link))
	file := filepath.Join(root, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o700))

	tests := []struct {
		name string
		dir  string
		ok   bool
	}{
		{"private directory", private, true},
		{"readable by others", mk("open", 0o755), false},
		{"writable by the group", mk("group", 0o770), false},
		{"symlink to a private directory", link, false},
		{"a file", file, false},
		{"missing", filepath.Join(root, "nope"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPrivateDir(tc.dir)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

// TestDirectServerOpenRefusesOpenDir: the plugin does not put its socket in
// a directory that others can enter.
func TestDirectServerOpenRefusesOpenDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the direct channel is Linux only")
	}
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	s := newDirectServer(nil, nil, nil)
	t.Cleanup(s.close)
	_, _, err := s.open(dir)
	require.ErrorContains(t, err, "mode 755")
	_, err = os.Lstat(filepath.Join(dir, "direct.sock"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestFrames: frames round-trip, the scratch buffer is cleared after use
// (it held a secret), and a length over the limit is refused before any
// allocation of that size.
func TestFrames(t *testing.T) {
	var wire bytes.Buffer
	call := &backendpb.DirectCall{Call: 7, Method: "/m", Request: []byte("s3cret-value")}
	buf, err := writeFrame(&wire, nil, call)
	require.NoError(t, err)
	require.Empty(t, buf)
	require.NotContains(t, string(buf[:cap(buf)]), "s3cret", "the write buffer is cleared")

	var got backendpb.DirectCall
	buf, err = readFrame(bufio.NewReader(&wire), nil, &got)
	require.NoError(t, err)
	require.Equal(t, call.GetRequest(), got.GetRequest())
	require.Equal(t, call.GetCall(), got.GetCall())
	require.NotContains(t, string(buf[:cap(buf)]), "s3cret", "the read buffer is cleared")

	var huge [4]byte
	binary.BigEndian.PutUint32(huge[:], maxFrameBytes+1)
	_, err = readFrame(bufio.NewReader(bytes.NewReader(huge[:])), nil, &got)
	require.ErrorIs(t, err, errFrameTooLarge)
}
