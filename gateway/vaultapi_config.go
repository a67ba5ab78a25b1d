package gateway

// The `vault_api:` block of the configuration (docs/vault-api.md).

import "regexp"

// VaultAPIConfig serves Vault's KV v2 API next to the native one, so that
// the vault CLI, vault/api, consul-template and the External Secrets
// Operator work unchanged. Off unless enabled. Fixed at start: a reload
// does not add, remove or move its routes.
type VaultAPIConfig struct {
	Enabled bool `yaml:"enabled"`
	// Mount is the KV v2 mount the clients name ("secret" when empty):
	// <mount>/data/<project>/<secret>.
	Mount string `yaml:"mount"`
}

// DefaultVaultMount is Vault's own default KV v2 mount (`vault server -dev`).
const DefaultVaultMount = "secret"

// vaultMountRe: one path segment, so that the mount's routes are one gin
// catch-all. Vault allows nested mounts ("kv/prod"); none of the clients
// this serves needs one.
var vaultMountRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,62})$`)

// vaultReservedMounts are the first segments of the other routes under
// /v1: a mount there would shadow them (or they it).
var vaultReservedMounts = map[string]bool{"projects": true, "migrations": true, "resolve": true, "sys": true, "auth": true}

// mount is the configured mount, or the default.
func (v VaultAPIConfig) mount() string {
	if v.Mount == "" {
		return DefaultVaultMount
	}
	return v.Mount
}

// validate reports a malformed or reserved mount.
func (v VaultAPIConfig) validate(add func(field, format string, args ...any)) {
	if v.Mount == "" {
		return
	}
	switch {
	case !vaultMountRe.MatchString(v.Mount):
		add("vault_api.mount", "%q must be one path segment: 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", v.Mount)
	case vaultReservedMounts[v.Mount]:
		add("vault_api.mount", "%q is taken by the gateway's own routes under /v1/; choose another name (Vault's default is %q)", v.Mount, DefaultVaultMount)
	}
}
