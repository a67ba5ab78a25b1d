// Package vault is the secretgate backend for HashiCorp Vault's KV version 2
// secrets engine (also HCP Vault and OpenBao), served as the built-in plugin
// "vault". It talks to Vault with github.com/hashicorp/vault/api.
//
// # Settings
//
//	address                Vault's URL, e.g. https://vault.example.com:8200 (required)
//	mount                  the KV v2 mount, default "secret"
//	prefix                 folder under the mount for secretgate, default "secretgate/"
//	                       ("" puts projects at the top of the mount; a missing
//	                       trailing "/" is added)
//	namespace              Vault Enterprise / HCP namespace, sent as X-Vault-Namespace
//	max_versions           versions Vault keeps per secret, set on each secret's
//	                       metadata when it is created (or written and differs);
//	                       unset: the mount's setting, else KV's default of 10
//	auth_method            token | approle | kubernetes; inferred from the other
//	                       settings when unset
//	token                  a Vault token ...
//	token_file             ... or a file holding one (re-read when Vault refuses
//	                       the token, so an agent can rotate it) ...
//	                       ... or, when neither is set, VAULT_TOKEN
//	role_id                AppRole role_id ...
//	secret_id              ... with secret_id ...
//	secret_id_file         ... or a file holding it (re-read at each login)
//	approle_mount          AppRole auth mount path, default "approle"
//	kubernetes_role        Kubernetes auth role
//	kubernetes_token_path  service-account token, default
//	                       /var/run/secrets/kubernetes.io/serviceaccount/token
//	                       (re-read at each login: kubelets rotate it)
//	kubernetes_mount       Kubernetes auth mount path, default "kubernetes"
//	ca_cert                PEM file of the CA(s) to trust for Vault's certificate
//	client_cert, client_key  PEM files for TLS client authentication
//	tls_server_name        name to verify Vault's certificate against (SNI)
//	tls_skip_verify        "true" disables certificate verification; logs a warning
//
// Unknown settings are an error. Apart from VAULT_TOKEN the plugin reads no
// VAULT_* environment variable (VAULT_SKIP_VERIFY, VAULT_CACERT,
// VAULT_NAMESPACE...): its behaviour comes from its settings alone.
//
// # Authentication
//
// A token is used as given. At start the plugin looks it up; a renewable
// token with a TTL is renewed by an api.LifetimeWatcher before it expires.
// Tokens from AppRole or Kubernetes logins are renewed the same way until
// Vault will not extend them (their max TTL), and then replaced by a fresh
// login; non-renewable ones (batch tokens) are replaced at 2/3 of their TTL.
// When Vault answers 403, the plugin asks whether its token is still valid
// (auth/token/lookup-self, in Vault's default policy); if it is not, it logs
// in again (AppRole, Kubernetes, or re-reading token_file) and retries the
// call once. Concurrent calls that all meet the expired token share one
// login. Configure fails on bad settings and refused credentials; while
// Vault is unreachable it succeeds and the login happens on first use, so
// that the gateway starts and answers 503 until Vault is back. Tokens,
// secret_ids and JWTs never appear in logs, errors or process arguments.
//
// # Mapping
//
// Secret <name> of project <project> is the KV v2 secret
// <prefix><project>/<name> of the mount, that is, the API paths
//
//	<mount>/data/<prefix><project>/<name>       the versions' key/value pairs
//	<mount>/metadata/<prefix><project>/<name>   versions, labels, max_versions
//
// Projects and names never contain "/", so the mapping is injective; `vault
// kv get -mount=<mount> <prefix><project>/<name>` reads what secretgate
// wrote, and what `vault kv put` writes there is a secretgate secret.
//
//   - Versions are KV v2's version numbers. KV v2 prunes the oldest version
//     past max_versions; Capabilities.MaxVersions reports the number Vault
//     keeps (the larger of the setting and the mount's max_versions, which
//     needs read on <mount>/config; 10 when neither is set).
//   - Writes use KV v2 check-and-set (options.cas): a creation writes with
//     cas=0, which Vault refuses when the secret exists (ErrAlreadyExists);
//     a write with ExpectedVersion writes with cas=ExpectedVersion
//     (ErrVersionMismatch when another version landed first); other
//     replaces and upserts read the current version and write with it,
//     starting over when another writer got in between. A write is one
//     metadata read and one data write, plus one metadata write when it
//     sets labels (or max_versions). Data and labels are two requests: if
//     the second fails, the version is written with the old labels, and the
//     error says so.
//   - Labels are the secret's custom_metadata, keys as they are. Values
//     Vault cannot hold (empty, unprintable) and values starting with
//     "b64:" are stored as "b64:" + base64 of the value. custom_metadata
//     entries whose key is not a valid label key (set by hand) are ignored
//     when reading and dropped when secretgate sets the labels.
//   - CreatedAt is the creation of version 1 (of the metadata once version
//     1 is pruned); UpdatedAt is the creation of the version read (the
//     latest for Describe and List). Keys are the keys of that version.
//     Past version 1 the creation time needs a metadata read; the plugin
//     remembers it per secret, trusted only for the exact latest version it
//     saw (number and nanosecond creation time), so repeated reads of an
//     unchanged secret are one request.
//     Values that other tools stored as JSON numbers, booleans or objects
//     read as their JSON text.
//   - A secret exists while its metadata holds at least one version. A
//     version deleted with `vault kv delete` (but not destroyed) or
//     destroyed is not found for Read and is left out of Versions; when it
//     is the latest, Describe and List still show the secret (with no
//     keys), a create is refused, and a replace writes the next version.
//   - Delete removes the metadata path: every version goes and the name can
//     be created again at once, from version 1. KV v2 has no conditional
//     delete, so Delete with a version reads the current version and then
//     deletes: a write landing between the two is deleted with the rest.
//   - List: Vault's LIST returns all names of a folder at once and no
//     metadata. Each List call LISTs the project's folder, sorts the names
//     (byte order), skips to the page token (an opaque base64 of the last
//     name returned) and the prefix, and describes the page's names, eight
//     at a time: one data read each, plus a metadata read for secrets past
//     version 1. A page of n costs 1 LIST + n to 2n reads; the LIST itself
//     grows with the project. Sub-folders and entries that are not valid
//     secretgate names are left out; a secret deleted between the LIST and
//     its read is left out of the page.
//
// # Errors
//
//   - 404 (no such secret or version): sdk.ErrNotFound.
//   - Vault's 400 "check-and-set parameter did not match the current
//     version": sdk.ErrAlreadyExists for a create, sdk.ErrVersionMismatch
//     with an ExpectedVersion.
//   - 403: an error wrapping sdk.ErrPermission that names the Vault path
//     (and namespace) and the ACL capability refused (read, list, create,
//     update, delete), after the re-login described above.
//   - Sealed, standby or rate-limited (503, 429), 5xx, connection refused:
//     retried with exponential backoff and jitter (4 tries over about a
//     second, within the caller's deadline), then sdk.ErrUnavailable. A
//     write is retried only when Vault certainly did not act (503, 429,
//     connection refused); after a 5xx or a broken connection it answers
//     ErrUnavailable at once, since repeating it could report a spurious
//     conflict.
//   - Ping reads sys/health (initialized, unsealed) and makes sure the
//     plugin holds a token.
//
// The minimal policy the plugin needs is MinimalPolicy(mount, prefix).
package vault
