package gateway

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// vault_api.mount is one path segment that no route of the gateway takes;
// the error names the field.
func TestVaultAPIConfig(t *testing.T) {
	for _, tc := range []struct {
		mount string
		err   string
	}{
		{"", ""},
		{"kv", ""},
		{"kv-v2_prod", ""},
		{"projects", "vault_api.mount: \"projects\" is taken"},
		{"sys", "vault_api.mount: \"sys\" is taken"},
		{"kv/prod", "vault_api.mount: \"kv/prod\" must be one path segment"},
		{"KV", "vault_api.mount: \"KV\" must be one path segment"},
	} {
		var errs []string
		VaultAPIConfig{Enabled: true, Mount: tc.mount}.validate(func(field, format string, args ...any) {
			errs = append(errs, cfgErr(field, format, args...).Error())
		})
		if tc.err == "" {
			require.Empty(t, errs, tc.mount)
			continue
		}
		require.Len(t, errs, 1)
		require.True(t, strings.HasPrefix(errs[0], tc.err), "%s", errs[0])
	}
	cfg, err := ParseConfig([]byte(`
audit: {path: /tmp/a.log}
backends: [{name: local, plugin: file}]
projects: [{name: default, backend: local}]
vault_api: {enabled: true, mount: kv}
`), LoadOptions{Builtins: []string{"file"}})
	require.NoError(t, err)
	require.Equal(t, VaultAPIConfig{Enabled: true, Mount: "kv"}, cfg.VaultAPI)
	_, err = ParseConfig([]byte(`
audit: {path: /tmp/a.log}
backends: [{name: local, plugin: file}]
projects: [{name: default, backend: local}]
vault_api: {enabled: true, mount: auth}
`), LoadOptions{Builtins: []string{"file"}})
	require.ErrorContains(t, err, "vault_api.mount")
}
