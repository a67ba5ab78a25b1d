// Package envelope is the key hierarchy of secretgate's own storage
// backends (file, postgres): where the key-encryption key (KEK) comes from,
// per-project data keys wrapped by the KEK, and secret versions sealed under
// a data key. It holds no storage: each backend keeps the wrapped data keys,
// the KEK verifier and the argon2id parameters in its own store, and decides
// in its own transaction when to initialise, check or rotate.
//
// Everything is AES-256-GCM with random 96-bit nonces. The associated data
// of every sealed object starts with "secretgate/" and the backend's Domain
// ("file", "postgres"), then the kind of object, so no ciphertext of one
// backend or kind opens as another:
//
//	data key    "secretgate/<domain>/dek/v1|" project "|" hex(id)
//	version     "secretgate/<domain>/secret/v1" NUL project NUL name NUL uint64be(version) incarnation(16)
//	verifier    "secretgate/<domain>/kek-verifier/v1"
//
// Projects and names cannot contain NUL or '|', and the last two fields of
// a version's AAD are fixed width, so each encoding is unambiguous.
package envelope
