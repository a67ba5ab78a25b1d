package plugin_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// TestDirectChannelOnlyTheGateway: on the direct channel, as on gRPC with
// its mutual TLS, only the gateway that started the plugin gets answers.
// Another process with the right token, another user, or the gateway
// itself without the token are refused, and the refusal is logged with its
// reason but without the token.
func TestDirectChannelOnlyTheGateway(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the direct channel is Linux only")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	var logs syncbuf.Buffer
	p, err := plugin.Launch(bg(t), plugin.LaunchConfig{Path: exe, Env: []string{plugintest.ChildEnv + "=1"}, Stderr: &logs})
	require.NoError(t, err)
	t.Cleanup(p.Kill)
	addr, token := plugin.DirectAddr(p.Backend())
	require.NotEmpty(t, addr, "the plugin must be on the direct channel")
	require.Len(t, token, 32)

	dir, err := os.Lstat(filepath.Dir(addr))
	require.NoError(t, err)
	require.True(t, dir.IsDir())
	require.Equal(t, os.FileMode(0o700), dir.Mode().Perm(), "the socket's directory")
	sock, err := os.Lstat(addr)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket, sock.Mode().Type())
	require.Equal(t, os.FileMode(0o600), sock.Mode().Perm(), "the socket")

	wrong := bytes.Clone(token)
	wrong[0] ^= 1
	tests := []struct {
		name   string
		ping   func() error
		refuse string // "" when the call must be answered; else in the error
		logged string // the plugin's log line about the refusal
	}{
		// The control: the same code, from the gateway with the token.
		{"the gateway with the token", func() error { return plugin.DirectPing(bg(t), addr, token, p.Pid()) }, "", ""},
		{"the gateway with a wrong token", func() error { return plugin.DirectPing(bg(t), addr, wrong, p.Pid()) },
			"did not admit the connection", "wrong token"},
		{"the gateway without a token", func() error { return plugin.DirectPing(bg(t), addr, nil, p.Pid()) },
			"did not admit the connection", "wrong token"},
		{"another process with the token", func() error { return stranger(t, addr, token, p.Pid(), nil) },
			"did not admit the connection", fmt.Sprintf("want pid %d", os.Getpid())},
	}
	if os.Getuid() == 0 {
		tests = append(tests, struct {
			name   string
			ping   func() error
			refuse string
			logged string
		}{"another user with the token", func() error {
			return stranger(t, addr, token, p.Pid(), &syscall.Credential{Uid: 65534, Gid: 65534})
		}, "permission denied", ""})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ping()
			if tc.refuse == "" {
				require.NoError(t, err)
				return
			}
			t.Logf("refused: %v", err)
			require.ErrorContains(t, err, tc.refuse)
			if tc.logged != "" {
				require.Eventually(t, func() bool { return strings.Contains(logs.String(), tc.logged) }, hangLimit, 10*time.Millisecond,
					"the refusal's reason in the plugin's log: %s", logs.String())
			}
		})
	}
	require.NotContains(t, logs.String(), hex.EncodeToString(token))
	require.NotContains(t, logs.String(), string(token))
	require.NoError(t, p.Backend().Ping(bg(t)), "the gateway's own calls still work")
	require.True(t, plugin.UsesDirect(p.Backend()))
}

// stranger runs this test binary as another process (as user cred when
// set) that pings the direct channel at addr with token.
func stranger(t *testing.T, addr string, token []byte, pid int, cred *syscall.Credential) error {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	if cred != nil {
		// Another user must be able to run the binary: a copy in a
		// directory open to all, unlike go test's build directory.
		dir, err := os.MkdirTemp("", "secretgate-stranger-")
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		require.NoError(t, os.Chmod(dir, 0o755))
		exe = copyExecutable(t, exe, filepath.Join(dir, "stranger"))
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), directPingEnv+"=1")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("%s %s %d\n", addr, hex.EncodeToString(token), pid))
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.Output()
	require.NoError(t, err, "the stranger process: %s", out)
	if res := strings.TrimSpace(string(out)); res != "answered" {
		return fmt.Errorf("%s", res)
	}
	return nil
}

func copyExecutable(t *testing.T, from, to string) string {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	return to
}

// TestDirectChannelRefusedFallsBack: when the plugin refuses a new direct
// connection, the call is made over gRPC instead, and so are later calls;
// a call in flight on the direct channel meanwhile is not disturbed.
func TestDirectChannelRefusedFallsBack(t *testing.T) {
	b := startOn(t, false, nil).Backend()
	_, err := b.Write(bg(t), sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)

	inflight := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := b.Read(ctx, sdk.Ref{Project: "p", Name: "block"})
		inflight <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the call reach the plugin

	plugin.SpoilDirectToken(b)
	s, err := b.Read(bg(t), sdk.Ref{Project: "p", Name: "a"})
	require.NoError(t, err)
	require.Equal(t, "v", s.Data["k"])
	require.False(t, plugin.UsesDirect(b), "a refused channel is given up")
	require.NoError(t, b.Ping(bg(t)))
	select {
	case err := <-inflight:
		require.ErrorIs(t, err, context.DeadlineExceeded, "the call in flight ends by its own deadline")
	case <-time.After(hangLimit):
		t.Fatal("the call in flight never returned")
	}
}

// TestDirectChannelCallsAfterCancel: a connection whose call was cancelled
// is not reused; the calls after it are answered.
func TestDirectChannelCallsAfterCancel(t *testing.T) {
	b := startOn(t, false, nil).Backend()
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, b.Ping(ctx), context.Canceled)
		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := b.Read(ctx, sdk.Ref{Project: "p", Name: "block"})
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, b.Ping(bg(t)))
	}
	require.True(t, plugin.UsesDirect(b))
}
