package plugin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/secretgate/secretgate/sdk"

	"github.com/stretchr/testify/require"
)

// A ThrottleError keeps its limit and delay across the plugin hop.
func TestThrottleErrorCrossesTheHop(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want sdk.ThrottleError
	}{
		{"limit and delay", sdk.Throttled("GCP Secret Manager: 600 reads per minute per project", 30*time.Second), sdk.ThrottleError{Limit: "GCP Secret Manager: 600 reads per minute per project", RetryAfter: 30 * time.Second}},
		{"no delay", sdk.Throttled("AWS: 50 PutSecretValue per second", 0), sdk.ThrottleError{Limit: "AWS: 50 PutSecretValue per second"}},
		{"wrapped", errors.Join(errors.New("writing db"), sdk.Throttled("per-secret writes", time.Second)), sdk.ThrottleError{Limit: "per-secret writes", RetryAfter: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromStatus(context.Background(), toStatus(tc.err), nil)
			require.ErrorIs(t, got, sdk.ErrThrottled)
			require.NotErrorIs(t, got, sdk.ErrUnavailable)
			var te *sdk.ThrottleError
			require.ErrorAs(t, got, &te)
			require.Equal(t, tc.want, *te)
		})
	}
}
