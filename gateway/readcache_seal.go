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
func (s *cacheSealer) seal(backend string, key secretKey, version int64, data map[string]string) []byte {
	pt := encodeCacheData(data)
	defer clear(pt)
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(pt)+s.aead.Overhead())
	copy(nonce, s.prefix[:])
	binary.BigEndian.PutUint64(nonce[4:], s.ctr.Add(1))
	return s.aead.Seal(nonce, nonce, pt, cacheAAD(backend, key, version))
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
	data, ok := decodeCacheData(pt)
	if !ok {
		return nil, errCacheOpen
	}
	return data, nil
}

// encodeCacheData lays out a version's values for sealing: the number of
// pairs, then each key and value with its length (uvarints). Decoding it
// costs one string and one map, where JSON cost a scan and a string per
// key and value: opening an entry is most of what a cache hit costs.
func encodeCacheData(data map[string]string) []byte {
	n := binary.MaxVarintLen64
	for k, v := range data {
		n += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	b := binary.AppendUvarint(make([]byte, 0, n), uint64(len(data)))
	for k, v := range data {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// decodeCacheData reads what encodeCacheData wrote; ok is false for
// anything else (never reached for an entry that opened: GCM vouches for
// the bytes). Keys and values share one string.
func decodeCacheData(pt []byte) (map[string]string, bool) {
	count, n := binary.Uvarint(pt)
	// Each pair takes at least two bytes, which bounds the map's size hint.
	if n <= 0 || count > uint64(len(pt)-n)/2 {
		return nil, false
	}
	all := string(pt[n:])
	data := make(map[string]string, count)
	pos := 0
	next := func() (string, bool) {
		l, m := binary.Uvarint(pt[n+pos:])
		if m <= 0 || l > uint64(len(all)-pos-m) {
			return "", false
		}
		start := pos + m
		pos = start + int(l)
		return all[start:pos], true
	}
	for range count {
		k, ok1 := next()
		v, ok2 := next()
		if !ok1 || !ok2 {
			return nil, false
		}
		data[k] = v
	}
	if pos != len(all) || len(data) != int(count) {
		return nil, false
	}
	return data, true
}
