// Package idtoken verifies workload identity tokens (OIDC ID tokens from
// GitHub Actions and GitLab CI, Kubernetes projected service-account
// tokens) and maps them to a subject through the rules of the configured
// issuer. The operator's reference is docs/workload-identity.md; this
// comment says how it works inside and why.
//
// # Verification
//
// Verify reads the token's header and, unverified, its iss, and looks the
// issuer up among the configured ones before anything else: a token naming
// an issuer nobody configured costs no network call. The header's alg must
// be in that issuer's allow-list, which Validate keeps free of "none" and
// the HMAC algorithms; go-jose then parses the token with that one
// algorithm allowed and verifies the signature with a public key of the
// issuer (*rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey, never a
// byte slice, so an HS256 token keyed with the public key has nothing to
// verify against even if it got that far). The claims come from the
// verified payload only: iss exactly the configured URL, aud containing a
// configured audience, exp required, nbf and iat not in the future, all
// with the issuer's leeway, and the lifetime bound.
//
// # Keys
//
// Each issuer has a keySource: an immutable key set behind an atomic
// pointer, fetched at first use (discovery document, then its jwks_uri,
// kept once found; or jwks_url; or jwks_file, read by NewVerifier already).
// A kid the set lacks triggers one refetch; fetches run in one goroutine per
// issuer that concurrent callers share, detached from any one caller's
// context, and at most one starts per MinRefreshInterval whatever its
// outcome, so a flood of forged kids costs the issuer one request per
// interval. A fetch that fails keeps the previous keys. Keys older than
// KeyMaxAge are refreshed in the background on use, so that a key the
// issuer withdrew stops verifying within that time. A JWKS key that go-jose
// cannot read, an encryption key, a symmetric key or an RSA key shorter
// than 2048 bits is skipped, not fatal.
//
// # Result cache
//
// A verified token is remembered by its SHA-256 (never the token) until its
// exp, with the thumbprint of the key that verified it: a hit costs a hash
// and a map lookup, and stops counting once that key has left the issuer's
// set. Failures are not cached. The cache is bounded (DefaultCacheSize);
// when full, expired entries go first (scanned at most once a second), then
// arbitrary ones.
//
// # Reload
//
// NewVerifier is cheap and does no network I/O: on a configuration reload
// the gateway builds a new Verifier and closes the old one, whose key and
// result caches go with it.
package idtoken
