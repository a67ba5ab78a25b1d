package vault

import (
	"testing"

	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// The conformance suite through a real plugin process against a real Vault,
// with the root token and with a token holding only the documented minimal
// policy (which proves the policy is enough), and with max_versions set.
func TestConformance(t *testing.T) {
	s := vaulttest.Start(t)
	root := s.Client(t)
	putPolicy(t, root)
	cases := []struct {
		name     string
		settings func() map[string]string
	}{
		{"root-token", func() map[string]string { return rootSettings(s) }},
		{"minimal-policy", func() map[string]string {
			return map[string]string{"address": s.Addr, "token": policyToken(t, root, "secretgate")}
		}},
		{"max-versions-3-custom-prefix", func() map[string]string {
			st := rootSettings(s)
			st["max_versions"] = "3"
			st["prefix"] = "teams/platform"
			return st
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) sdk.Backend {
				return plugintest.Start(t, tc.settings())
			})
		})
	}
}
