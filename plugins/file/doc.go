// Package file is secretgate's built-in encrypted file backend: every secret
// of every project in one bbolt database file, sealed with envelope
// encryption. It is served as a plugin by `secretgate plugin serve file`.
//
// The reference for operators (settings, what is encrypted, rotating the
// key-encryption key) is docs/backends/file.md; it is not repeated here.
// What follows is the layout and the cryptography, for reviewers.
//
// # Storage layout
//
// The bbolt file holds three top-level buckets (receipts only once a write
// carried one):
//
//	meta/
//	  format        "1"
//	  kek_verifier  nonce || AES-256-GCM(KEK, known constant, AAD "secretgate/file/kek-verifier/v1")
//	  kdf           JSON {alg, salt, time, memory_kib, threads}; only with passphrase_env
//	projects/
//	  <project>/                       bucket key: the project name's bytes
//	    dek         id(16) || nonce(12) || AES-256-GCM(KEK, data key, AAD "secretgate/file/dek/v1|"+project+"|"+hex(id))
//	    secrets/
//	      <name>/                      bucket key: the secret name's bytes
//	        m       JSON metadata: incarnation id, latest version, keys,
//	                labels, created/updated times, stored versions and times
//	        'v' + uint64be(version)    0x01 || nonce(12) || AES-256-GCM(data key, EncodeData(data), AAD below)
//	receipts/
//	  <key>         uint64be(version) || the gateway's audit record (receipts.go)
//
// The mapping of project+name to storage is injective: the project and the
// name are each the exact bytes of a bucket key, at different nesting levels,
// so no two (project, name) pairs share a bucket. List walks a project's
// secrets bucket in byte order; page tokens are "f1." + base64url(last name).
//
// # Crypto
//
// Envelope encryption. Each project has a random 256-bit data key, created
// with the project's first write and stored only wrapped by the KEK (AES-256-GCM,
// random nonce, AAD binding project and key id). Every stored version is
// AES-256-GCM under the project's data key with a random 96-bit nonce, over
// the canonical JSON of its key/value map, with AAD
//
//	"secretgate/file/secret/v1" NUL project NUL name NUL uint64be(version) incarnation(16)
//
// Projects and names cannot contain NUL, and the last two fields are fixed
// width, so the AAD is unambiguous. A ciphertext copied under another
// project, name or version, or into a later secret of the same name (a new
// incarnation after a delete), fails to decrypt with an error wrapping
// ErrDecrypt that names the project, name and version, never a value.
// Nothing is stored in plain text but names and metadata: keys, labels,
// times and version numbers. Values exist in plain text only in memory.
//
// The KEK verifier lets Configure tell a wrong key from a right one before
// anything is written: a wrong key fails with ErrKeyMismatch ("key does not
// match this database") and the file is left as it was.
//
// Unwrapped data keys are cached in memory per project, so a read costs one
// bbolt read transaction and one AES-GCM open.
//
// # Durability and concurrency
//
// Each Write and Delete runs in one bbolt read-write transaction (mode and
// check-and-set checks, data key creation, ciphertext, pruning and metadata
// together), fsync'd on commit (NoSync is never set): an acknowledged write
// survives a crash of the process or the machine. Concurrent writes share a
// transaction (group commit without a timer, groupcommit.go); each is
// checked after the earlier writes of its batch, and one refused by its
// checks leaves the transaction untouched instead of failing the batch (see
// write.go). ExpectedVersion and a conditional Delete are checked inside
// the transaction, so check-and-set is atomic. bbolt serialises writers and
// lets readers run concurrently.
// The file is locked while open: a second process opening it fails after
// one second with an error wrapping sdk.ErrUnavailable instead of waiting.
//
// # Rotation
//
// Rotating the KEK re-wraps every project's data key in one transaction;
// secret ciphertexts are not rewritten, so rotation costs one small write
// per project. Online, through the settings:
//
//  1. Make the new key source: a new key file (or let the backend create
//     one: name a path that does not exist), a new key in an environment
//     variable, or a new passphrase.
//  2. Move the current source to the matching previous_* setting and put the
//     new one in key_file / key_env / passphrase_env, e.g.
//     previous_key_file: ./old.key, key_file: ./new.key.
//  3. Restart the backend (or the gateway). Configure opens the database
//     with the previous key, re-wraps every data key under the new one
//     atomically, logs "rotated the key-encryption key", and serves. A crash
//     during rotation leaves the old key in force; run again.
//  4. Remove the previous_* setting, then destroy the old key. Until then a
//     restart with both settings only logs that rotation is already done.
//
// In process, (*Backend).RotateKEK does the same with a raw 32-byte key
// while the backend keeps serving.
package file
