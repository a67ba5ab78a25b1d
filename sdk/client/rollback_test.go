package client_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

// An editor rolls back a rotation it cannot read; the admin reads the old
// value as the new version.
func TestRollback(t *testing.T) {
	f := gatewaytest.Start(t)
	admin := newClient(t, f, gatewaytest.AdminToken)
	editor := newClient(t, f, gatewaytest.EditorToken)
	ctx := context.Background()
	_, err := admin.Create(ctx, "payments", "db", map[string]string{"password": "good"}, nil)
	require.NoError(t, err)
	_, err = editor.Update(ctx, "payments", "db", map[string]string{"password": "bad"}, nil, 1)
	require.NoError(t, err)

	_, err = editor.Rollback(ctx, "payments", "db", 1, 1)
	require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	_, err = editor.Rollback(ctx, "payments", "db", 0, 0)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	m, err := editor.Rollback(ctx, "payments", "db", 1, 2)
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Version)
	s, err := admin.Get(ctx, "payments", "db")
	require.NoError(t, err)
	require.Equal(t, "good", s.Data["password"])
	_, err = newClient(t, f, gatewaytest.ReaderToken).Rollback(ctx, "payments", "db", 1, 0)
	require.ErrorIs(t, err, client.ErrPermissionDenied)
}
