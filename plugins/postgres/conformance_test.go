package postgres_test

import (
	"testing"

	"github.com/secretgate/secretgate/plugins/postgres"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// The conformance suite (its CAS race included) through a real plugin
// process against a real PostgreSQL, with the default settings and with
// max_versions, another schema and a passphrase; and once in process.
func TestConformance(t *testing.T) {
	t.Setenv("POSTGRES_TEST_CONF_PASS", "correct horse battery staple")
	cases := []struct {
		name     string
		plugin   bool
		settings func(f fixture) map[string]string
	}{
		{"plugin", true, func(f fixture) map[string]string { return f.settings() }},
		{"plugin-max-versions-3-schema-passphrase", true, func(f fixture) map[string]string {
			return f.settings(postgres.SettingMaxVersions, "3", postgres.SettingSchema, "vault_two",
				postgres.SettingKeyFile, "", postgres.SettingPassphraseEnv, "POSTGRES_TEST_CONF_PASS")
		}},
		{"in-process", false, func(f fixture) map[string]string { return f.settings() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) sdk.Backend {
				f := newFixture(t)
				if tc.plugin {
					return plugintest.Start(t, tc.settings(f))
				}
				return open(t, tc.settings(f))
			})
		})
	}
}
