package idtoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits on what an issuer sends back.
const (
	maxDocumentSize = 1 << 20 // a discovery document or a JWKS
	maxKeys         = 100     // keys kept from one JWKS
	minRSABits      = 2048
)

// verificationKey is one public key of an issuer's key set.
type verificationKey struct {
	kid string
	alg string // the JWK's alg, "" when it names none
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	id  string // RFC 7638 thumbprint: what a cached result remembers
}

// keySet is an immutable snapshot of an issuer's keys.
type keySet struct {
	keys      []verificationKey
	ids       map[string]struct{}
	fetchedAt time.Time
}

func (ks *keySet) has(id string) bool {
	_, ok := ks.ids[id]
	return ok
}

// candidates returns the keys that may have signed a token with this kid
// and alg: the keys of that kid (every key when the token names none),
// whose type suits the algorithm and whose own alg, if any, is that one.
func (ks *keySet) candidates(kid, alg string) []verificationKey {
	var out []verificationKey
	for _, k := range ks.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		if k.alg != "" && k.alg != alg {
			continue
		}
		if !keyFitsAlgorithm(k.pub, alg) {
			continue
		}
		out = append(out, k)
	}
	return out
}

func keyFitsAlgorithm(pub any, alg string) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// parseJWKS keeps the usable public signing keys of a JWKS document. A key
// that go-jose cannot read (an unknown kty), an encryption key, a
// symmetric key or a weak RSA key is skipped rather than failing the whole
// set, so one odd key at the issuer does not lock every workload out.
func parseJWKS(data []byte, now time.Time) (*keySet, int, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, fmt.Errorf("key set is not a JWKS document: %w", err)
	}
	ks := &keySet{ids: map[string]struct{}{}, fetchedAt: now}
	skipped := 0
	for _, raw := range doc.Keys {
		if len(ks.keys) == maxKeys {
			skipped += len(doc.Keys) - maxKeys
			break
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil || (jwk.Use != "" && jwk.Use != "sig") {
			skipped++
			continue
		}
		if !jwk.IsPublic() {
			jwk = jwk.Public()
		}
		pub := jwk.Key
		switch k := pub.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				skipped++
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default: // symmetric keys and anything else
			skipped++
			continue
		}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			skipped++
			continue
		}
		id := hex.EncodeToString(tp)
		ks.keys = append(ks.keys, verificationKey{kid: jwk.KeyID, alg: jwk.Algorithm, pub: pub, id: id})
		ks.ids[id] = struct{}{}
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errors.New("key set has no usable signing key")
	}
	return ks, skipped, nil
}

// keySource fetches and caches one issuer's keys. Reads are a pointer load;
// fetches are shared by concurrent callers and rate-limited, so that a
// flood of tokens naming unknown kids costs the issuer at most one request
// per minInterval.
type keySource struct {
	issuer string // the configured name, for errors and logs
	v      *Verifier
	cfg    Issuer

	current atomic.Pointer[keySet]

	mu          sync.Mutex
	inflight    *fetchCall
	lastAttempt time.Time // of the last fetch, successful or not
	lastErr     error     // of the last fetch
	jwksURI     string    // found by discovery, kept once found
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// refreshResult tells why the keys a caller got may lack its kid.
type refreshResult struct {
	fetched     bool          // a fetch ran for (or alongside) this caller
	err         error         // that fetch's error, or the last one's when none ran
	rateLimited bool          // no fetch ran: the last one was too recent
	retryIn     time.Duration // when rateLimited: until the next one is allowed
}

// refresh fetches the key set unless the last attempt is too recent; a
// caller arriving while a fetch is under way waits for that one.
func (s *keySource) refresh(ctx context.Context) (*keySet, refreshResult) {
	s.mu.Lock()
	call := s.inflight
	if call == nil {
		now := s.v.now()
		if !s.lastAttempt.IsZero() {
			if wait := s.v.minRefresh - now.Sub(s.lastAttempt); wait > 0 {
				err := s.lastErr
				s.mu.Unlock()
				return s.current.Load(), refreshResult{err: err, rateLimited: true, retryIn: wait}
			}
		}
		call = s.startLocked(now)
	}
	s.mu.Unlock()

	select {
	case <-call.done:
		return s.current.Load(), refreshResult{fetched: true, err: call.err}
	case <-ctx.Done():
		return s.current.Load(), refreshResult{fetched: true, err: ctx.Err()}
	}
}

// refreshInBackground starts a fetch if none is running and the rate limit
// allows one, without waiting for it: used when the keys are merely old.
func (s *keySource) refreshInBackground() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.v.now()
	if s.inflight != nil || (!s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.v.minRefresh) {
		return
	}
	s.startLocked(now)
}

// startLocked runs one fetch in its own goroutine, detached from the
// caller's context so that a caller giving up does not fail the others
// waiting for the same fetch; Close cancels it. s.mu is held.
func (s *keySource) startLocked(now time.Time) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	s.inflight = call
	s.lastAttempt = now
	started := s.v.goFetch(func(ctx context.Context) {
		ks, err := s.fetch(ctx)
		s.mu.Lock()
		s.finishLocked(call, ks, err)
		s.mu.Unlock()
	})
	if !started {
		s.finishLocked(call, nil, errClosed)
	}
	return call
}

func (s *keySource) finishLocked(call *fetchCall, ks *keySet, err error) {
	if err == nil {
		s.current.Store(ks)
	}
	s.lastErr = err
	s.inflight = nil
	call.err = err
	close(call.done)
}

func (s *keySource) fetch(ctx context.Context) (*keySet, error) {
	s.v.fetches.Add(1)
	var (
		data   []byte
		err    error
		origin string
	)
	switch {
	case s.cfg.JWKSFile != "":
		origin = s.cfg.JWKSFile
		data, err = readFileLimited(s.cfg.JWKSFile)
	case s.cfg.JWKSURL != "":
		origin = s.cfg.JWKSURL
		data, err = s.v.get(ctx, s.cfg.JWKSURL)
	default:
		origin, err = s.discover(ctx)
		if err == nil {
			data, err = s.v.get(ctx, origin)
		}
	}
	var ks *keySet
	skipped := 0
	if err == nil {
		ks, skipped, err = parseJWKS(data, s.v.now())
		if err != nil {
			err = fmt.Errorf("%s: %w", origin, err)
		}
	}
	if err != nil {
		s.v.log.Warn("idtoken: cannot fetch the issuer's keys", "issuer", s.issuer, "error", err)
		return nil, err
	}
	s.v.log.Info("idtoken: issuer keys fetched", "issuer", s.issuer, "source", origin, "keys", len(ks.keys), "skipped", skipped)
	return ks, nil
}

// discover returns the jwks_uri of the issuer's discovery document, found
// once and then kept: it names where the keys live, which does not move
// when they rotate.
func (s *keySource) discover(ctx context.Context) (string, error) {
	s.mu.Lock()
	uri := s.jwksURI
	s.mu.Unlock()
	if uri != "" {
		return uri, nil
	}
	docURL := strings.TrimSuffix(s.cfg.IssuerURL, "/") + "/.well-known/openid-configuration"
	data, err := s.v.get(ctx, docURL)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("%s: not a discovery document: %w", docURL, err)
	}
	// OpenID Connect Discovery 1.0, section 4.3: the document's issuer must
	// be the one it was fetched for, or one issuer could hand out another's
	// keys.
	if doc.Issuer != s.cfg.IssuerURL {
		return "", fmt.Errorf("%s: the document names issuer %q, not %q", docURL, doc.Issuer, s.cfg.IssuerURL)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("%s: jwks_uri: %w", docURL, err)
	}
	s.mu.Lock()
	s.jwksURI = doc.JWKSURI
	s.mu.Unlock()
	return doc.JWKSURI, nil
}

// get fetches a small JSON document.
func (v *Verifier) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err // *url.Error already names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentSize))
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(data) > maxDocumentSize {
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", url, maxDocumentSize)
	}
	return data, nil
}

func readFileLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxDocumentSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxDocumentSize)
	}
	return data, nil
}
