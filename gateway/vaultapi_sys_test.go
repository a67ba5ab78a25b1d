package gateway

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// Headers that would change what the client gets are refused; the token
// may come as X-Vault-Token or Authorization, not two different ones.
func TestVaultAPIHeaders(t *testing.T) {
	e := newVaultEnv(t)
	e.put(t, "h", map[string]any{"k": "v"})
	tests := []struct {
		name string
		hdrs []string
		want int
	}{
		{"wrap", []string{"X-Vault-Wrap-TTL", "60s"}, 400},
		{"namespace", []string{"X-Vault-Namespace", "team"}, 400},
		{"root namespace", []string{"X-Vault-Namespace", "root/"}, 200},
		{"bearer only", []string{"X-Vault-Token", "", "Authorization", "Bearer t-bob"}, 200},
		{"both, equal", []string{"Authorization", "Bearer t-bob"}, 200},
		{"both, different", []string{"Authorization", "Bearer t-alice"}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", "/v1/secret/data/payments/h", "t-bob", nil, tc.hdrs...)
			require.Equal(t, tc.want, r.code, "%s", r.body)
			if tc.want != 200 {
				require.NotEmpty(t, r.errs(t))
			}
		})
	}
}

// The preflight of the vault CLI and consul-template finds a KV v2 mount.
func TestVaultAPIPreflight(t *testing.T) {
	e := newVaultEnv(t)
	r := e.do(t, "GET", "/v1/sys/internal/ui/mounts/secret/payments/db", "t-bob", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	d := r.json(t)["data"].(map[string]any)
	require.Equal(t, "secret/", d["path"])
	require.Equal(t, "kv", d["type"])
	require.Equal(t, map[string]any{"version": "2"}, d["options"])
	require.Equal(t, http.StatusBadRequest, e.do(t, "GET", "/v1/sys/internal/ui/mounts/kv/x", "t-bob", nil).code)
	require.Equal(t, http.StatusForbidden, e.do(t, "GET", "/v1/sys/internal/ui/mounts/secret/x", "", nil).code)
}
