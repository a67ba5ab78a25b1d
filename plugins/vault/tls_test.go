package vault

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// TLS settings against `vault server -dev-tls` (certificate for localhost
// and 127.0.0.1, signed by a CA of its own).
func TestTLS(t *testing.T) {
	s := vaulttest.StartTLS(t)
	localhost := "https://localhost:" + s.Addr[len("https://127.0.0.1:"):]
	cases := []struct {
		name     string
		settings map[string]string
		wantOK   bool
	}{
		{"ca_cert", map[string]string{"ca_cert": s.CACert}, true},
		{"ca_cert by host name", map[string]string{"address": localhost, "ca_cert": s.CACert}, true},
		{"tls_server_name matching", map[string]string{"ca_cert": s.CACert, "tls_server_name": "localhost"}, true},
		{"tls_server_name not matching", map[string]string{"ca_cert": s.CACert, "tls_server_name": "vault.example.com"}, false},
		{"system roots only", map[string]string{}, false},
		{"tls_skip_verify", map[string]string{"tls_skip_verify": "true"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			settings := rootSettings(s)
			for k, v := range tc.settings {
				settings[k] = v
			}
			if tc.wantOK {
				b := plugintest.Start(t, settings)
				_, err := b.Read(t.Context(), sdk.Ref{Project: "tls", Name: "missing"})
				require.ErrorIs(t, err, sdk.ErrNotFound)
				return
			}
			// Configure refuses a server whose certificate does not verify.
			b := newBackend()
			t.Cleanup(b.Close)
			err := b.Configure(t.Context(), settings)
			require.Error(t, err)
			require.NotErrorIs(t, err, sdk.ErrNotFound)
			require.NotErrorIs(t, err, sdk.ErrUnavailable, "a certificate that does not verify is not an outage")
			require.Contains(t, err.Error(), "certificate")
		})
	}
}
