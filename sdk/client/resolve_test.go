package client_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

func resolveRequests(f *gatewaytest.Server) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == "/v1/resolve" {
			n++
		}
	}
	return n
}

func TestResolve(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	admin := newClient(t, f, gatewaytest.AdminToken)
	_, err := admin.Create(ctx, "payments", "db", map[string]string{"user": "app", "password": "pw1"}, nil)
	require.NoError(t, err)
	_, err = admin.Update(ctx, "payments", "db", map[string]string{"user": "app", "password": "pw2"}, nil, 0)
	require.NoError(t, err)
	_, err = admin.Create(ctx, "payments", "stripe-key", map[string]string{"key": "sk"}, nil)
	require.NoError(t, err)

	got, err := admin.Resolve(ctx, []string{"sg://payments/db/password", "sg://payments/db/password?version=1", "sg://payments/stripe-key/key", "sg://payments/db/password"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"sg://payments/db/password": "pw2", "sg://payments/db/password?version=1": "pw1", "sg://payments/stripe-key/key": "sk",
	}, got)
	require.Equal(t, 1, resolveRequests(f), "one round trip")

	narrow := newClient(t, f, gatewaytest.NarrowToken)
	tests := []struct {
		name   string
		c      *client.Client
		refs   []string
		is     error
		naming string
	}{
		{"not found", admin, []string{"sg://payments/db/user", "sg://payments/nope/k"}, sdk.ErrNotFound, "sg://payments/nope/k"},
		{"no such key", admin, []string{"sg://payments/db/nope"}, sdk.ErrNotFound, "sg://payments/db/nope"},
		{"denied", narrow, []string{"sg://payments/stripe-key/key", "sg://payments/db/user"}, client.ErrPermissionDenied, "sg://payments/db/user"},
		{"hidden project", narrow, []string{"sg://default/db/user"}, sdk.ErrNotFound, "sg://default/db/user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Resolve(ctx, tc.refs)
			require.ErrorIs(t, err, tc.is)
			require.ErrorContains(t, err, tc.naming)
			require.NotContains(t, err.Error(), "pw2")
		})
	}

	// Malformed references fail before anything is sent.
	before := resolveRequests(f)
	_, err = admin.Resolve(ctx, []string{"sg://payments/db/user", "sg://payments/db"})
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.ErrorContains(t, err, `"sg://payments/db"`)
	_, err = admin.Resolve(ctx, nil)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.Equal(t, before, resolveRequests(f))
}

// More than 100 distinct references take one request per 100.
func TestResolveBatches(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	admin := newClient(t, f, gatewaytest.AdminToken)
	var refs []string
	want := map[string]string{}
	for s := range 2 {
		data := map[string]string{}
		for k := range 80 {
			data[fmt.Sprintf("k%d", k)] = fmt.Sprintf("v%d-%d", s, k)
			ref := fmt.Sprintf("sg://default/s%d/k%d", s, k)
			refs = append(refs, ref)
			want[ref] = data[fmt.Sprintf("k%d", k)]
		}
		_, err := admin.Create(ctx, "default", fmt.Sprintf("s%d", s), data, nil)
		require.NoError(t, err)
	}
	got, err := admin.Resolve(ctx, refs)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 2, resolveRequests(f))
}
