package file

// The key hierarchy (KEK sources, wrapped data keys, sealed versions) is
// internal/envelope's, shared with the postgres backend. The "file" domain
// keeps the associated data this backend has always sealed with, so
// existing databases open unchanged.

import "github.com/secretgate/secretgate/internal/envelope"

// ErrDecrypt is wrapped by every error about a ciphertext that does not
// authenticate: altered bytes, a ciphertext moved under another project,
// name or version, or a data key that is not the one it was sealed with.
var ErrDecrypt = envelope.ErrDecrypt

// ErrKeyMismatch is wrapped by Configure's error when the key-encryption key
// is not the one the database was created (or last rotated) with.
var ErrKeyMismatch = envelope.ErrKeyMismatch

// domain is this backend's part of every AAD.
const domain = envelope.Domain("file")

// EnsureKeyFile makes sure path holds a key-encryption key: an existing file
// is only read and checked (mode 0600 or stricter, 64 hex digits or 32 raw
// bytes); a missing one is created 0600 (its directory 0700) with a fresh
// random key written as 64 hex digits and a newline. created tells the
// caller to say so, once. The key itself is never returned.
func EnsureKeyFile(path string) (created bool, err error) { return envelope.EnsureKeyFile(path) }
