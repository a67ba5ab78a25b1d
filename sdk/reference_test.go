package sdk_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sdk.Reference
	}{
		{"sg://payments/stripe/api_key", sdk.Reference{Project: "payments", Secret: "stripe", Key: "api_key"}},
		{"sg://p/S-1_x/a.b-c_D", sdk.Reference{Project: "p", Secret: "S-1_x", Key: "a.b-c_D"}},
		{"sg://payments/stripe/api_key?version=12", sdk.Reference{Project: "payments", Secret: "stripe", Key: "api_key", Version: 12}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := sdk.ParseReference(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.in, got.String(), "a valid reference has one spelling")
			require.True(t, sdk.IsReference(tc.in))
		})
	}
}

func TestParseReferenceRejects(t *testing.T) {
	long := "sg://p/s/" + strings.Repeat("k", 500)
	for _, tc := range []struct {
		in, reason string
	}{
		{"", "must start with sg://"},
		{"SG://p/s/k", "must start with sg://"},
		{"sg:/p/s/k", "must start with sg://"},
		{"sg://p/s", "PROJECT/SECRET/KEY"},
		{"sg://p/s/k/extra", "PROJECT/SECRET/KEY"},
		{"sg:///s/k", "project must be"},
		{"sg://Payments/s/k", "project must be"},
		{"sg://p//k", "secret must be"},
		{"sg://p/s.x/k", "secret must be"},
		{"sg://p/s/", "key must be"},
		{"sg://p/s/k%20", "key must be"},
		{"sg://p/s/k#frag", "key must be"},
		{long, "key must be"},
		{"sg://p/s/k?", "?version=N"},
		{"sg://p/s/k?version=", "?version=N"},
		{"sg://p/s/k?version=0", "?version=N"},
		{"sg://p/s/k?version=-1", "?version=N"},
		{"sg://p/s/k?version=01", "?version=N"},
		{"sg://p/s/k?version=1&x=2", "?version=N"},
		{"sg://p/s/k?v=1", "?version=N"},
		{"sg://p/s/k?version=99999999999999999999", "?version=N"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := sdk.ParseReference(tc.in)
			require.Error(t, err)
			var fe *sdk.FieldError
			require.True(t, errors.As(err, &fe), "%T", err)
			require.True(t, errors.Is(err, sdk.ErrInvalid))
			require.Equal(t, "reference", fe.Field)
			require.Contains(t, fe.Reason, tc.reason)
			// The reference is named, but never more than its start.
			quoted := tc.in
			if len(quoted) > 80 {
				quoted = quoted[:80]
			}
			require.Contains(t, fe.Reason, quoted)
			require.Less(t, len(err.Error()), 300)
		})
	}
}

func TestIsReference(t *testing.T) {
	require.False(t, sdk.IsReference("postgres://u:p@h/db"))
	require.False(t, sdk.IsReference(" sg://p/s/k"))
	require.True(t, sdk.IsReference("sg://not valid"))
}
