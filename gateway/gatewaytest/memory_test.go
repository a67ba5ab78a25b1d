package gatewaytest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
)

func TestMemoryConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		m := gatewaytest.NewMemory()
		require.NoError(t, m.Configure(t.Context(), nil))
		return m
	})
}

func TestMemoryRefusesSettings(t *testing.T) {
	err := gatewaytest.NewMemory().Configure(t.Context(), map[string]string{"path": "/tmp/x"})
	require.ErrorIs(t, err, sdk.ErrInvalid)
}

// While down, every call that touches the store answers ErrUnavailable and
// changes nothing; afterwards the secrets are all still there.
func TestMemoryUnavailable(t *testing.T) {
	ctx := t.Context()
	m := gatewaytest.NewMemory()
	ref := sdk.Ref{Project: "p", Name: "db"}
	_, err := m.Write(ctx, sdk.WriteRequest{Project: "p", Name: "db", Data: map[string]string{"k": "v1"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)

	m.SetUnavailable(true)
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Ping", m.Ping},
		{"List", func(ctx context.Context) error {
			_, err := m.List(ctx, sdk.ListRequest{Project: "p"})
			return err
		}},
		{"Describe", func(ctx context.Context) error { _, err := m.Describe(ctx, ref); return err }},
		{"Read", func(ctx context.Context) error { _, err := m.Read(ctx, ref); return err }},
		{"Versions", func(ctx context.Context) error { _, err := m.Versions(ctx, ref); return err }},
		{"Write", func(ctx context.Context) error {
			_, err := m.Write(ctx, sdk.WriteRequest{Project: "p", Name: "db", Data: map[string]string{"k": "v2"}, Mode: sdk.WriteUpsert})
			return err
		}},
		{"Delete", func(ctx context.Context) error { return m.Delete(ctx, ref) }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.call(ctx), sdk.ErrUnavailable)
		})
	}
	v, ok := m.Value("p", "db", "k")
	require.True(t, ok, "Value reads the store even while it is down")
	require.Equal(t, "v1", v)

	m.SetUnavailable(false)
	s, err := m.Read(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, int64(1), s.Version, "nothing was written while down")
	require.Equal(t, map[string]string{"k": "v1"}, s.Data)
}
