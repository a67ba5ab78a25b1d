package vault

import (
	"fmt"
	"strings"
)

// MinimalPolicy returns the smallest Vault ACL policy (HCL) under which the
// plugin works with the given mount and prefix (the settings, defaults
// "secret" and "secretgate/"). The tests run the conformance suite with a
// token holding only this policy (and Vault's "default" policy, which lets a
// token look itself up and renew itself).
func MinimalPolicy(mount, prefix string) string {
	mount = strings.Trim(mount, "/")
	prefix = strings.TrimLeft(prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return fmt.Sprintf(`# secretgate: the Vault KV v2 backend (mount %[1]q, prefix %[2]q).
# Values: write new versions (create = a new secret, update = a new version)
# and read them.
path "%[1]s/data/%[2]s*" {
  capabilities = ["create", "read", "update"]
}
# Metadata: list names, read versions and labels, set labels and
# max_versions, delete a secret with all its versions.
path "%[1]s/metadata/%[2]s*" {
  capabilities = ["read", "update", "delete", "list"]
}
# Optional: the mount's max_versions, reported in Capabilities.
path "%[1]s/config" {
  capabilities = ["read"]
}
`, mount, prefix)
}
