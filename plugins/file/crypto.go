package file

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrDecrypt is wrapped by every error about a ciphertext that does not
// authenticate: altered bytes, a ciphertext moved under another project,
// name or version, or a data key that is not the one it was sealed with.
var ErrDecrypt = errors.New("decryption failed")

// ErrKeyMismatch is wrapped by Configure's error when the key-encryption key
// is not the one the database was created (or last rotated) with.
var ErrKeyMismatch = errors.New("key does not match this database")

const (
	keySize   = 32 // AES-256
	nonceSize = 12 // the standard 96-bit GCM nonce
	idSize    = 16 // data key ids and secret incarnation ids

	// versionFormat1 is the first byte of every stored version ciphertext,
	// so that a later format can be told apart without guessing.
	versionFormat1 = 0x01
)

// AAD prefixes. Each kind of sealed object has its own, so that no
// ciphertext of one kind can ever be opened as another.
const (
	dekAADPrefix      = "secretgate/file/dek/v1|"
	secretAADPrefix   = "secretgate/file/secret/v1\x00"
	verifierAAD       = "secretgate/file/kek-verifier/v1"
	verifierPlaintext = "secretgate/file: this database's key-encryption key"
)

// newAEAD builds AES-256-GCM over key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plaintext under a fresh random nonce and returns
// prefix || nonce || ciphertext+tag.
func seal(aead cipher.AEAD, prefix []byte, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, len(prefix)+nonceSize, len(prefix)+nonceSize+len(plaintext)+aead.Overhead())
	copy(out, prefix)
	if _, err := rand.Read(out[len(prefix):]); err != nil {
		return nil, fmt.Errorf("reading a random nonce: %w", err)
	}
	return aead.Seal(out, out[len(prefix):], plaintext, aad), nil
}

// open reverses seal for a value without prefix. The plaintext is a new
// slice: sealed may point into bbolt's read-only mmap.
func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("ciphertext is %d bytes, too short: %w", len(sealed), ErrDecrypt)
	}
	pt, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// dekAAD binds a wrapped data key to its project and its id.
func dekAAD(project string, id []byte) []byte {
	return []byte(dekAADPrefix + project + "|" + hex.EncodeToString(id))
}

// secretAAD binds a version ciphertext to its project, name, version and
// the secret's incarnation id. Projects and names cannot hold NUL, so the
// NUL separators make the encoding unambiguous; the version (8 bytes) and
// the incarnation (16 bytes) are fixed-width at the end. The incarnation
// (random per creation) stops a ciphertext of a deleted secret from being
// replayed into a later secret of the same name.
func secretAAD(project, name string, version int64, incarnation []byte) []byte {
	aad := make([]byte, 0, len(secretAADPrefix)+len(project)+len(name)+2+8+len(incarnation))
	aad = append(aad, secretAADPrefix...)
	aad = append(aad, project...)
	aad = append(aad, 0)
	aad = append(aad, name...)
	aad = append(aad, 0)
	aad = binary.BigEndian.AppendUint64(aad, uint64(version))
	return append(aad, incarnation...)
}

// dataKey is an unwrapped per-project data key.
type dataKey struct {
	id   []byte
	aead cipher.AEAD
}

// wrapDEK seals a raw data key under the KEK: the stored record is
// id (16) || nonce (12) || sealed key (32+16).
func wrapDEK(kek cipher.AEAD, project string, id, raw []byte) ([]byte, error) {
	return seal(kek, id, raw, dekAAD(project, id))
}

// unwrapDEK opens a stored data key record.
func unwrapDEK(kek cipher.AEAD, project string, record []byte) (*dataKey, error) {
	if len(record) < idSize {
		return nil, fmt.Errorf("data key of project %q: record is %d bytes, too short: %w", project, len(record), ErrDecrypt)
	}
	id := append([]byte(nil), record[:idSize]...)
	raw, err := open(kek, record[idSize:], dekAAD(project, id))
	if err != nil {
		return nil, fmt.Errorf("data key of project %q does not unwrap with the key-encryption key: %w", project, err)
	}
	defer clear(raw)
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, fmt.Errorf("data key of project %q: %w", project, err)
	}
	return &dataKey{id: id, aead: aead}, nil
}

// newDEK makes a fresh random data key and its wrapped record.
func newDEK(kek cipher.AEAD, project string) (*dataKey, []byte, error) {
	raw := make([]byte, keySize)
	defer clear(raw)
	id := make([]byte, idSize)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("reading a random data key: %w", err)
	}
	if _, err := rand.Read(id); err != nil {
		return nil, nil, fmt.Errorf("reading a random data key id: %w", err)
	}
	record, err := wrapDEK(kek, project, id, raw)
	if err != nil {
		return nil, nil, err
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, nil, err
	}
	return &dataKey{id: id, aead: aead}, record, nil
}

// rewrapDEK opens a data key record with one KEK and seals it with another,
// keeping its id: the data key itself, and so every secret ciphertext, is
// unchanged.
func rewrapDEK(oldKEK, newKEK cipher.AEAD, project string, record []byte) ([]byte, error) {
	if len(record) < idSize {
		return nil, fmt.Errorf("data key of project %q: record is %d bytes, too short: %w", project, len(record), ErrDecrypt)
	}
	id := record[:idSize]
	raw, err := open(oldKEK, record[idSize:], dekAAD(project, id))
	if err != nil {
		return nil, fmt.Errorf("data key of project %q does not unwrap with the previous key: %w", project, err)
	}
	defer clear(raw)
	return wrapDEK(newKEK, project, append([]byte(nil), id...), raw)
}

// newVerifier seals the known constant under kek.
func newVerifier(kek cipher.AEAD) ([]byte, error) {
	return seal(kek, nil, []byte(verifierPlaintext), []byte(verifierAAD))
}

// checkVerifier reports whether kek opens the stored verifier.
func checkVerifier(kek cipher.AEAD, verifier []byte) bool {
	pt, err := open(kek, verifier, []byte(verifierAAD))
	return err == nil && string(pt) == verifierPlaintext
}
