package envelope

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

// ErrKeyMismatch is wrapped by the error a backend returns when the
// key-encryption key is not the one its store was created (or last rotated)
// with.
var ErrKeyMismatch = errors.New("key does not match this database")

const (
	KeySize   = 32 // AES-256
	NonceSize = 12 // the standard 96-bit GCM nonce
	IDSize    = 16 // data key ids and secret incarnation ids

	// VersionFormat1 is the first byte of every stored version ciphertext,
	// so that a later format can be told apart without guessing.
	VersionFormat1 = 0x01
)

// Domain names the backend whose objects are sealed ("file", "postgres").
// It is part of every AAD, so that each backend's ciphertexts are its own.
type Domain string

func (d Domain) dekAADPrefix() string    { return "secretgate/" + string(d) + "/dek/v1|" }
func (d Domain) secretAADPrefix() string { return "secretgate/" + string(d) + "/secret/v1\x00" }
func (d Domain) verifierAAD() []byte     { return []byte("secretgate/" + string(d) + "/kek-verifier/v1") }
func (d Domain) verifierPlaintext() string {
	return "secretgate/" + string(d) + ": this database's key-encryption key"
}

// NewAEAD builds AES-256-GCM over key.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext under a fresh random nonce and returns
// prefix || nonce || ciphertext+tag.
func Seal(aead cipher.AEAD, prefix []byte, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, len(prefix)+NonceSize, len(prefix)+NonceSize+len(plaintext)+aead.Overhead())
	copy(out, prefix)
	if _, err := rand.Read(out[len(prefix):]); err != nil {
		return nil, fmt.Errorf("reading a random nonce: %w", err)
	}
	return aead.Seal(out, out[len(prefix):], plaintext, aad), nil
}

// Open reverses Seal for a value without prefix. The plaintext is a new
// slice: sealed may point into memory the caller does not own (bbolt's
// read-only mmap).
func Open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+aead.Overhead() {
		return nil, fmt.Errorf("ciphertext is %d bytes, too short: %w", len(sealed), ErrDecrypt)
	}
	pt, err := aead.Open(nil, sealed[:NonceSize], sealed[NonceSize:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// DEKAAD binds a wrapped data key to its project and its id.
func (d Domain) DEKAAD(project string, id []byte) []byte {
	return []byte(d.dekAADPrefix() + project + "|" + hex.EncodeToString(id))
}

// SecretAAD binds a version ciphertext to its project, name, version and
// the secret's incarnation id. The incarnation (random per creation) stops a
// ciphertext of a deleted secret from being replayed into a later secret of
// the same name.
func (d Domain) SecretAAD(project, name string, version int64, incarnation []byte) []byte {
	prefix := d.secretAADPrefix()
	aad := make([]byte, 0, len(prefix)+len(project)+len(name)+2+8+len(incarnation))
	aad = append(aad, prefix...)
	aad = append(aad, project...)
	aad = append(aad, 0)
	aad = append(aad, name...)
	aad = append(aad, 0)
	aad = binary.BigEndian.AppendUint64(aad, uint64(version))
	return append(aad, incarnation...)
}

// SealVersion seals the encoded data of one version under a data key:
// VersionFormat1 || nonce || AES-256-GCM(data key, plain, SecretAAD).
func (d Domain) SealVersion(dk *DataKey, project, name string, version int64, incarnation, plain []byte) ([]byte, error) {
	return Seal(dk.AEAD, []byte{VersionFormat1}, plain, d.SecretAAD(project, name, version, incarnation))
}

// OpenVersion reverses SealVersion. Its error wraps ErrDecrypt and names the
// project, name and version, never a value.
func (d Domain) OpenVersion(dk *DataKey, project, name string, version int64, incarnation, ct []byte) ([]byte, error) {
	fail := func(err error) error {
		return fmt.Errorf("version %d of secret %q in project %q does not decrypt "+
			"(the ciphertext was altered or moved from another secret or version, or the data key is wrong): %w",
			version, name, project, err)
	}
	if len(ct) < 1 || ct[0] != VersionFormat1 {
		return nil, fail(fmt.Errorf("unknown ciphertext format: %w", ErrDecrypt))
	}
	pt, err := Open(dk.AEAD, ct[1:], d.SecretAAD(project, name, version, incarnation))
	if err != nil {
		return nil, fail(err)
	}
	return pt, nil
}

// DataKey is an unwrapped per-project data key.
type DataKey struct {
	ID   []byte
	AEAD cipher.AEAD
}

// WrapDEK seals a raw data key under the KEK: the stored record is
// id (16) || nonce (12) || sealed key (32+16).
func (d Domain) WrapDEK(kek cipher.AEAD, project string, id, raw []byte) ([]byte, error) {
	return Seal(kek, id, raw, d.DEKAAD(project, id))
}

// UnwrapDEK opens a stored data key record.
func (d Domain) UnwrapDEK(kek cipher.AEAD, project string, record []byte) (*DataKey, error) {
	if len(record) < IDSize {
		return nil, fmt.Errorf("data key of project %q: record is %d bytes, too short: %w", project, len(record), ErrDecrypt)
	}
	id := append([]byte(nil), record[:IDSize]...)
	raw, err := Open(kek, record[IDSize:], d.DEKAAD(project, id))
	if err != nil {
		return nil, fmt.Errorf("data key of project %q does not unwrap with the key-encryption key: %w", project, err)
	}
	defer clear(raw)
	aead, err := NewAEAD(raw)
	if err != nil {
		return nil, fmt.Errorf("data key of project %q: %w", project, err)
	}
	return &DataKey{ID: id, AEAD: aead}, nil
}

// NewDEK makes a fresh random data key and its wrapped record.
func (d Domain) NewDEK(kek cipher.AEAD, project string) (*DataKey, []byte, error) {
	raw := make([]byte, KeySize)
	defer clear(raw)
	id := make([]byte, IDSize)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("reading a random data key: %w", err)
	}
	if _, err := rand.Read(id); err != nil {
		return nil, nil, fmt.Errorf("reading a random data key id: %w", err)
	}
	record, err := d.WrapDEK(kek, project, id, raw)
	if err != nil {
		return nil, nil, err
	}
	aead, err := NewAEAD(raw)
	if err != nil {
		return nil, nil, err
	}
	return &DataKey{ID: id, AEAD: aead}, record, nil
}

// RewrapDEK opens a data key record with one KEK and seals it with another,
// keeping its id: the data key itself, and so every secret ciphertext, is
// unchanged.
func (d Domain) RewrapDEK(oldKEK, newKEK cipher.AEAD, project string, record []byte) ([]byte, error) {
	if len(record) < IDSize {
		return nil, fmt.Errorf("data key of project %q: record is %d bytes, too short: %w", project, len(record), ErrDecrypt)
	}
	id := record[:IDSize]
	raw, err := Open(oldKEK, record[IDSize:], d.DEKAAD(project, id))
	if err != nil {
		return nil, fmt.Errorf("data key of project %q does not unwrap with the previous key: %w", project, err)
	}
	defer clear(raw)
	return d.WrapDEK(newKEK, project, append([]byte(nil), id...), raw)
}

// NewVerifier seals a known constant under kek, so that a store can tell a
// wrong key from a right one before it writes anything.
func (d Domain) NewVerifier(kek cipher.AEAD) ([]byte, error) {
	return Seal(kek, nil, []byte(d.verifierPlaintext()), d.verifierAAD())
}

// CheckVerifier reports whether kek opens the stored verifier.
func (d Domain) CheckVerifier(kek cipher.AEAD, verifier []byte) bool {
	pt, err := Open(kek, verifier, d.verifierAAD())
	return err == nil && string(pt) == d.verifierPlaintext()
}
