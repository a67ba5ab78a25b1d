package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// A listing's page token is the gateway's own, never the backend's: the
// backend's token (which for name-ordered backends spells out a name, maybe
// a hidden one) travels sealed inside it. Tokens are AES-256-GCM sealed with
// a key drawn from crypto/rand when the process starts, and bound by the
// AAD to the subject, the project and the prefix, so a token is useless to
// anyone else, elsewhere, or after a restart (each answers 400
// invalid_argument on page_token). Docs: docs/api.md, "Listing".

// pageTokenPrefix versions the token format.
const pageTokenPrefix = "p1."

// maxPageToken bounds an incoming token before any work is done on it.
const maxPageToken = 4096

// pageCursor is what a sealed token holds: where to resume in the backend.
type pageCursor struct {
	// Backend is the backend that issued Token: after a migration switch
	// the project's backend differs and Token means nothing there.
	Backend string `json:"b"`
	// Token is the backend's page token of the page to fetch ("" = first).
	Token string `json:"t,omitempty"`
	// After skips the names up to and including it in that page: they
	// were on the previous page (backends list in name order).
	After string `json:"a"`
}

// pageSealer seals and opens page tokens with one key: drawn per process,
// or shared by every replica through the shared state (gateway/state.go).
type pageSealer struct{ aead cipher.AEAD }

func newPageSealer() (*pageSealer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	return newPageSealerWithKey(key)
}

// newPageSealerWithKey seals with a given AES-256 key.
func newPageSealerWithKey(key []byte) (*pageSealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("page token key: %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	return &pageSealer{aead: aead}, nil
}

// pageAAD binds a token to who asked for which listing. NUL cannot occur
// in subject, project or prefix names, so the fields cannot run together.
func pageAAD(subject, project, prefix string) []byte {
	return []byte("secretgate page token v1\x00" + subject + "\x00" + project + "\x00" + prefix)
}

func (p *pageSealer) seal(cur pageCursor, subject, project, prefix string) (string, error) {
	plain, err := json.Marshal(cur)
	if err != nil {
		return "", fmt.Errorf("page token: %w", err)
	}
	nonce := make([]byte, p.aead.NonceSize(), p.aead.NonceSize()+len(plain)+p.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("page token nonce: %w", err)
	}
	sealed := p.aead.Seal(nonce, nonce, plain, pageAAD(subject, project, prefix))
	return pageTokenPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

var errBadPageToken = invalidArg("page_token", "is not a token this server issued for this listing (tokens are bound to the caller, project and prefix, and end with a restart); start again without it")

func (p *pageSealer) open(tok, subject, project, prefix string) (pageCursor, error) {
	var cur pageCursor
	body, ok := strings.CutPrefix(tok, pageTokenPrefix)
	if !ok || len(tok) > maxPageToken {
		return cur, errBadPageToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < p.aead.NonceSize()+p.aead.Overhead() {
		return cur, errBadPageToken
	}
	n := p.aead.NonceSize()
	plain, err := p.aead.Open(nil, raw[:n], raw[n:], pageAAD(subject, project, prefix))
	if err != nil {
		return cur, errBadPageToken
	}
	if err := json.Unmarshal(plain, &cur); err != nil {
		return cur, errBadPageToken
	}
	return cur, nil
}
