package gateway

// The read cache keeps values sealed (AES-256-GCM under a key made at random
// for this process and never stored), so that a heap dump, a swapped page or
// a stray reference shows ciphertext. Each entry's additional data binds it
// to its backend, project, name and version: an entry moved to another slot
// does not open.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/secretgate/secretgate/sdk"
)

// cacheSealer seals cache entries. Nonces are a random prefix and a
// counter rather than random: a busy gateway seals billions of entries over
// its life, past where random 96-bit nonces stop being safely unique.
type cacheSealer struct {
	aead   cipher.AEAD
	prefix [4]byte
	ctr    atomic.Uint64
}

// processSealer is the one key of this process: entries of every cache are
// sealed under it, and it disappears with the process.
var processSealer = sync.OnceValues(func() (*cacheSealer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("read cache key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("read cache key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("read cache key: %w", err)
	}
	s := &cacheSealer{aead: aead}
	if _, err := rand.Read(s.prefix[:]); err != nil {
		return nil, fmt.Errorf("read cache nonce: %w", err)
	}
	return s, nil
})

var errCacheOpen = errors.New("read cache entry does not open")

// cacheAAD binds a sealed value to where it belongs; every part is
// length-prefixed, so no two slots share one.
func cacheAAD(backend string, key secretKey, version int64) []byte {
	b := make([]byte, 0, 16+len(backend)+len(key.project)+len(key.name)+3*binary.MaxVarintLen64)
	b = append(b, "sg-cache-v1"...)
	for _, s := range [...]string{backend, key.project, key.name} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return binary.BigEndian.AppendUint64(b, uint64(version))
}

// seal encodes and seals one version's values: nonce || ciphertext.
func (s *cacheSealer) seal(backend string, key secretKey, version int64, data map[string]string) ([]byte, error) {
	pt, err := sdk.EncodeData(data)
	if err != nil {
		// Never the encoder's text: it could quote a value.
		return nil, errors.New("read cache: the values cannot be encoded")
	}
	defer clear(pt)
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(pt)+s.aead.Overhead())
	copy(nonce, s.prefix[:])
	binary.BigEndian.PutUint64(nonce[4:], s.ctr.Add(1))
	return s.aead.Seal(nonce, nonce, pt, cacheAAD(backend, key, version)), nil
}

// open returns the values sealed in sealed, which must belong to the slot.
func (s *cacheSealer) open(backend string, key secretKey, version int64, sealed []byte) (map[string]string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errCacheOpen
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], cacheAAD(backend, key, version))
	if err != nil {
		return nil, errCacheOpen
	}
	defer clear(pt)
	data, err := sdk.DecodeData(pt)
	if err != nil {
		return nil, errCacheOpen
	}
	return data, nil
}
