// Package vault is the secretgate backend for HashiCorp Vault's KV version 2
// secrets engine (also HCP Vault and OpenBao), served as the built-in plugin
// "vault". It talks to Vault with github.com/hashicorp/vault/api.
//
// The reference for operators (settings, authentication, the minimal policy,
// how secrets map to KV v2 paths, errors) is docs/backends/vault.md; it is
// not repeated here. What follows is how the plugin does it.
//
// # Files
//
//   - config.go: settings, TLS; auth.go: token, AppRole and Kubernetes
//     logins, renewal and re-login after a 403; policy.go: MinimalPolicy.
//   - backend.go: the Backend, Configure, Capabilities, Ping; read.go:
//     Describe, Read, Versions; list.go: List and paging; write.go: Write,
//     Delete; errors.go: retries and how Vault's errors map to sdk's.
//   - kv.go: KV v2 data and metadata requests; labels.go: labels as
//     custom_metadata; created_cache.go: creation times.
//
// # Costs and the reasons behind them
//
//   - A write is one metadata read and one data write (KV v2 check-and-set:
//     cas=0 for a create, cas=ExpectedVersion with If-Match, else the
//     current version read first, starting over when another writer got in
//     between), plus one metadata write when it sets labels or
//     max_versions. Data and labels are two requests: if the second fails,
//     the version is written with the old labels, and the error says so.
//   - Past version 1, the creation time needs a metadata read. The plugin
//     remembers it per secret, trusted only for the exact latest version it
//     saw (number and nanosecond creation time), so repeated reads of an
//     unchanged secret are one request.
//   - Vault's LIST returns every name of a folder at once and no metadata:
//     a page of n costs one LIST plus n to 2n reads, eight at a time, and
//     the LIST grows with the project. Pages use the sdk's page tokens
//     (sdk.PageNames). A secret deleted between the LIST and its read is
//     left out of the page.
//   - Values other tools stored as JSON numbers, booleans or objects read as
//     their JSON text.
//   - Retries: sealed, standby, 429, 5xx and refused connections are retried
//     with exponential backoff and jitter (4 tries over about a second,
//     within the caller's deadline), then sdk.ErrUnavailable. A write is
//     retried only when Vault certainly did not act (503, 429, connection
//     refused); after a 5xx or a broken connection it answers ErrUnavailable
//     at once, since repeating it could report a spurious conflict.
//   - Ping reads sys/health (initialized, unsealed) and makes sure the
//     plugin holds a token. Tokens, secret_ids and JWTs never appear in
//     logs, errors or process arguments.
package vault
