// Package postgres is secretgate's built-in PostgreSQL backend: every
// secret of every project in five tables of one PostgreSQL schema, sealed
// with the file backend's envelope encryption, so that any number of
// gateway replicas can serve the same secrets from a database their
// operators already run. It is served as a plugin by
// `secretgate plugin serve postgres`.
//
// The reference for operators (settings, privileges, rotation, limits) is
// docs/backends/postgres.md; it is not repeated here. What follows is the
// layout, the cryptography and the concurrency, for reviewers.
//
// # Storage layout
//
// In the schema named by the schema setting (default "secretgate"):
//
//	schema_version  one row: the layout's version (SchemaVersion)
//	meta            key text PK, value bytea:
//	                  kek_verifier  nonce || AES-256-GCM(KEK, known constant)
//	                  kdf           JSON {alg, salt, time, memory_kib, threads}; only with passphrase_env
//	projects        project PK, dek bytea: id(16) || nonce(12) || AES-256-GCM(KEK, data key)
//	secrets         (project, name) PK, incarnation bytea(16), version (latest), keys text[]
//	                (of the latest version, sorted), labels jsonb, created_at, updated_at
//	versions        (project, name, version) PK, created_at, ciphertext bytea:
//	                  0x01 || nonce(12) || AES-256-GCM(data key, EncodeData(data), AAD below)
//	                FK (project, name) -> secrets ON DELETE CASCADE
//
// Text keys are COLLATE "C", so that the primary key's order is byte order,
// which List pages in; a page is an index range scan bounded by the prefix
// and the page token's name. Page tokens are sdk's (EncodePageToken).
//
// # Crypto
//
// The file backend's, through internal/envelope, with the domain
// "postgres" in every AAD, so that no ciphertext moves between the two:
// a random 256-bit data key per project, wrapped by the KEK; each version
// sealed under it with AAD
//
//	"secretgate/postgres/secret/v1" NUL project NUL name NUL uint64be(version) incarnation(16)
//
// A ciphertext copied under another project, name or version, or into a
// later secret of the same name (a new incarnation after a delete), fails
// with an error wrapping ErrDecrypt that names the project, name and
// version, never a value. The database holds values only as ciphertext;
// names, keys, labels, times and version numbers are plain text.
// Unwrapped data keys are cached per project and checked against the
// stored record's id on every use.
//
// # Consistency
//
// Write is one READ COMMITTED transaction. It locks the secret's row
// (SELECT ... FOR UPDATE, joined to its project's data key) before the
// mode and check-and-set checks, so concurrent writers of one secret, in
// any number of processes, queue on the row and each sees what its
// predecessor committed: exactly one wins each version, and ExpectedVersion
// is checked atomically. A secret that does not exist has no row to lock:
// it is created with INSERT ... ON CONFLICT DO NOTHING, and the loser of
// that race looks again and locks the winner's row (or, creating, answers
// ErrAlreadyExists). The version, the secret's new metadata and the pruning
// of versions past max_versions go to the server in one round trip (a
// pipeline), then the commit. The versions table's primary key would refuse
// a duplicate version even without the lock. Delete is one statement whose
// WHERE carries the check-and-set version; the versions cascade. Reads are
// single statements, each on one snapshot. Serialization failures and
// deadlocks, not expected with row locks, are retried a few times.
//
// Durability is the server's: a write is acknowledged after COMMIT
// returns, so with PostgreSQL's defaults (fsync, synchronous_commit on) it
// survives a crash of the plugin, the gateway or the database server.
//
// # Configure
//
// Configure runs one transaction holding a transaction-scoped advisory
// lock named after the schema, so replicas starting together take turns:
// it creates or migrates the schema (migrations[i] takes version i to i+1;
// a schema newer than SchemaVersion is refused with ErrSchemaNewer and left
// alone), then initialises, checks or rotates the key with the verifier
// row locked. Rotation re-wraps every data key in that transaction;
// ciphertexts are not rewritten. A replica still running with the old key
// keeps serving the projects whose data keys it has cached, and refuses to
// create a project's data key (it checks the verifier, FOR SHARE, first),
// since the others could not unwrap it: restart every replica with the new
// key settings after a rotation.
//
// # Costs
//
// Read, Describe, Versions and List are one round trip each; Write is four
// (BEGIN, the locking SELECT, the pipelined writes, COMMIT) and one fsync
// of the server's WAL at commit; Delete is one. pgx's pool keeps
// connections open and prepares each statement once per connection.
package postgres
