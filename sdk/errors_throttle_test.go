package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A ThrottleError keeps its limit and delay across the plugin hop.
func TestThrottleErrorCrossesTheHop(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want ThrottleError
	}{
		{"limit and delay", Throttled("GCP Secret Manager: 600 reads per minute per project", 30*time.Second), ThrottleError{Limit: "GCP Secret Manager: 600 reads per minute per project", RetryAfter: 30 * time.Second}},
		{"no delay", Throttled("AWS: 50 PutSecretValue per second", 0), ThrottleError{Limit: "AWS: 50 PutSecretValue per second"}},
		{"wrapped", errors.Join(errors.New("writing db"), Throttled("per-secret writes", time.Second)), ThrottleError{Limit: "per-secret writes", RetryAfter: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromStatus(context.Background(), toStatus(tc.err), nil)
			require.ErrorIs(t, got, ErrThrottled)
			require.NotErrorIs(t, got, ErrUnavailable)
			var te *ThrottleError
			require.ErrorAs(t, got, &te)
			require.Equal(t, tc.want, *te)
		})
	}
}
