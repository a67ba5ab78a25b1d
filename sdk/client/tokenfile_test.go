package client_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk/client"
)

// A token file rotated under a running client (as the kubelet swaps a
// projected token: a new file renamed over the old one) is used from the
// next request on; a token file that becomes unreadable fails the request
// with a message naming the file, never a token.
func TestTokenFileRotation(t *testing.T) {
	f := gatewaytest.Start(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	write := func(tok string) {
		t.Helper()
		tmp := filepath.Join(dir, "token.new")
		require.NoError(t, os.WriteFile(tmp, []byte(tok+"\n"), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	write(gatewaytest.ViewerToken)
	c, err := client.New(f.URL, "", client.WithTokenFile(path), client.WithTimeout(5*time.Second))
	require.NoError(t, err)
	ctx := context.Background()

	_, err = c.Create(ctx, "payments", "db", map[string]string{"k": "v"}, nil)
	require.ErrorIs(t, err, client.ErrPermissionDenied, "the viewer's token")
	write(gatewaytest.AdminToken)
	_, err = c.Create(ctx, "payments", "db", map[string]string{"k": "v"}, nil)
	require.NoError(t, err, "the rotated token, without a new client")

	write("bad token with spaces")
	_, err = c.Get(ctx, "payments", "db")
	require.ErrorContains(t, err, "token file "+path)
	require.NotContains(t, err.Error(), "spaces")
	require.NoError(t, os.Remove(path))
	_, err = c.Get(ctx, "payments", "db")
	require.ErrorContains(t, err, "token file")

	_, err = client.New(f.URL, "sg_x", client.WithTokenFile(path))
	require.ErrorContains(t, err, "both given")
	_, err = client.New(f.URL, "", client.WithTokenFile(filepath.Join(dir, "missing")))
	require.ErrorContains(t, err, "token file")
}
