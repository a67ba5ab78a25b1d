// Package oidctest is an OpenID Connect issuer for tests: a discovery
// document and a JWKS served on 127.0.0.1, and tokens signed with RSA and
// ECDSA keys generated at start (crypto/rand), with go-jose. It can rotate
// its keys, go down (503), count the fetches of its key set, and forge the
// tokens a verifier must refuse (alg none, HS256 keyed with the public key).
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Paths served under the issuer URL.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/keys"
)

// Key kinds the server holds one current key of.
const (
	kindRSA = "RSA"
	kindEC  = "EC"
)

// key is one signing key; its public half is in the JWKS while published.
type key struct {
	kid       string
	kind      string
	signer    crypto.Signer
	published bool
}

// Server is the test issuer. Its methods are safe for concurrent use.
type Server struct {
	// URL is the issuer URL (the iss of its tokens): http://127.0.0.1:port.
	URL string
	// Now is the clock of Claims; time.Now unless a test sets it before
	// using the server.
	Now func() time.Time

	tb  testing.TB
	srv *httptest.Server

	mu              sync.Mutex
	keys            []*key          // every key ever made, published or not
	current         map[string]*key // the key that signs, per kind
	down            bool
	delay           time.Duration
	discoveryIssuer string
	next            int // for kids

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
}

// New starts an issuer on a free port of 127.0.0.1 with one RSA (2048-bit)
// and one ECDSA (P-256) key; it stops when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, Now: time.Now, current: map[string]*key{}}
	s.mu.Lock()
	err := s.addKeysLocked()
	s.mu.Unlock()
	if err != nil {
		tb.Fatalf("oidctest: %v", err)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	tb.Cleanup(s.srv.Close)
	return s
}

// addKeysLocked makes a new current RSA and ECDSA key.
func (s *Server) addKeysLocked() error {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("RSA key: %w", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("ECDSA key: %w", err)
	}
	for _, k := range []*key{{kind: kindRSA, signer: rk}, {kind: kindEC, signer: ek}} {
		s.next++
		k.kid = fmt.Sprintf("%s-%d", k.kind, s.next)
		k.published = true
		s.keys = append(s.keys, k)
		s.current[k.kind] = k
	}
	return nil
}

// Rotate adds a new RSA and a new ECDSA key, which sign from now on, and
// unpublishes the older ones when dropOld is true (tokens they signed then
// fail verification once the verifier refreshes its keys).
func (s *Server) Rotate(dropOld bool) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if dropOld {
		for _, k := range s.keys {
			k.published = false
		}
	}
	if err := s.addKeysLocked(); err != nil {
		s.tb.Errorf("oidctest: rotate: %v", err)
	}
}

// KID returns the kid of the key that signs alg now.
func (s *Server) KID(alg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.current[kindOf(alg)]; k != nil {
		return k.kid
	}
	return ""
}

// SetDown makes every endpoint answer 503 (true) or serve again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// SetDelay makes every answer wait d first (a slow issuer), so that
// concurrent fetches overlap.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetDiscoveryIssuer makes the discovery document name another issuer
// ("" restores the real one).
func (s *Server) SetDiscoveryIssuer(iss string) {
	s.mu.Lock()
	s.discoveryIssuer = iss
	s.mu.Unlock()
}

// JWKSFetches counts the requests for the key set, including failed ones.
func (s *Server) JWKSFetches() int64 { return s.jwksFetches.Load() }

// DiscoveryFetches counts the requests for the discovery document.
func (s *Server) DiscoveryFetches() int64 { return s.discoveryFetches.Load() }

// JWKSURL is where the key set is served.
func (s *Server) JWKSURL() string { return s.URL + JWKSPath }

// JWKSJSON returns the published public keys as a JWKS document, for a
// file-based key source.
func (s *Server) JWKSJSON() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jwksLocked()
}

func (s *Server) jwksLocked() []byte {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range s.keys {
		if k.published {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.signer.Public(), KeyID: k.kid, Algorithm: defaultAlg(k.kind), Use: "sig"})
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		s.tb.Errorf("oidctest: JWKS: %v", err)
	}
	return b
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down, delay := s.down, s.delay
	s.mu.Unlock()
	switch r.URL.Path {
	case JWKSPath:
		s.jwksFetches.Add(1)
	case DiscoveryPath:
		s.discoveryFetches.Add(1)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if down {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	var body []byte
	switch r.URL.Path {
	case JWKSPath:
		body = s.JWKSJSON()
	case DiscoveryPath:
		s.mu.Lock()
		iss := s.discoveryIssuer
		s.mu.Unlock()
		if iss == "" {
			iss = s.URL
		}
		var err error
		body, err = json.Marshal(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              s.JWKSURL(),
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256", "RS384", "RS512", "PS256", "ES256"},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// Claims returns the usual claims of a token of this issuer: iss, aud, iat
// and nbf (now), exp (now + ttl), then extra, which may override or delete
// (a nil value) any of them.
func (s *Server) Claims(aud string, ttl time.Duration, extra map[string]any) map[string]any {
	now := s.Now()
	c := map[string]any{
		"iss": s.URL,
		"aud": aud,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

type signConfig struct {
	alg        string
	kid        *string // nil: the signing key's own
	signingKID string  // sign with this key (any ever made) instead of the current one
	headers    map[string]any
	none       bool
	hmacPublic bool
}

// SignOption changes how Sign makes a token.
type SignOption func(*signConfig)

// WithAlg signs with alg: RS256 (the default), RS384, RS512, PS256 and
// PS384 with the current RSA key; ES256 with the current ECDSA key. The
// JWKS publishes the keys with alg RS256 and ES256, as real issuers do, so
// a verifier that honours a key's alg refuses the others.
func WithAlg(alg string) SignOption { return func(c *signConfig) { c.alg = alg } }

// WithKID puts kid in the header, whatever key signs (an unknown kid).
func WithKID(kid string) SignOption { return func(c *signConfig) { c.kid = &kid } }

// WithoutKID leaves the kid out of the header.
func WithoutKID() SignOption { return WithKID("") }

// WithSigningKey signs with the key of that kid, even one Rotate dropped.
func WithSigningKey(kid string) SignOption { return func(c *signConfig) { c.signingKID = kid } }

// WithHeader adds a protected header.
func WithHeader(name string, value any) SignOption {
	return func(c *signConfig) {
		if c.headers == nil {
			c.headers = map[string]any{}
		}
		c.headers[name] = value
	}
}

// AlgNone makes an unsigned token: header {"alg":"none"}, empty signature.
func AlgNone() SignOption { return func(c *signConfig) { c.none = true } }

// HS256WithPublicKey forges the algorithm-confusion token: HS256 whose HMAC
// key is the PEM of the current RSA public key (which anybody can fetch),
// with that key's kid. A verifier that lets the token pick the algorithm
// would accept it.
func HS256WithPublicKey() SignOption { return func(c *signConfig) { c.hmacPublic = true } }

// Sign returns a compact JWT of the claims. A failure is reported on the
// test (goroutine-safe) and yields "".
func (s *Server) Sign(claims map[string]any, opts ...SignOption) string {
	s.tb.Helper()
	tok, err := s.sign(claims, opts...)
	if err != nil {
		s.tb.Errorf("oidctest: sign: %v", err)
		return ""
	}
	return tok
}

func (s *Server) sign(claims map[string]any, opts ...SignOption) (string, error) {
	cfg := signConfig{alg: "RS256"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.none {
		return unsigned(claims, cfg.headers)
	}
	kind := kindOf(cfg.alg)
	if cfg.hmacPublic {
		kind = kindRSA
	}
	s.mu.Lock()
	k := s.current[kind]
	if cfg.signingKID != "" {
		k = nil
		for _, c := range s.keys {
			if c.kid == cfg.signingKID {
				k = c
			}
		}
	}
	s.mu.Unlock()
	if k == nil {
		return "", fmt.Errorf("no key for alg %s / kid %q", cfg.alg, cfg.signingKID)
	}
	kid := k.kid
	if cfg.kid != nil {
		kid = *cfg.kid
	}

	var sk jose.SigningKey
	if cfg.hmacPublic {
		der, err := x509.MarshalPKIXPublicKey(k.signer.Public())
		if err != nil {
			return "", err
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		sk = jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: pemKey, KeyID: kid}}
	} else {
		sk = jose.SigningKey{Algorithm: jose.SignatureAlgorithm(cfg.alg), Key: jose.JSONWebKey{Key: k.signer, KeyID: kid}}
	}
	so := (&jose.SignerOptions{}).WithType("JWT")
	for name, v := range cfg.headers {
		so = so.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(sk, so)
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

func unsigned(claims map[string]any, headers map[string]any) (string, error) {
	h := map[string]any{"alg": "none", "typ": "JWT"}
	maps.Copy(h, headers)
	hb, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(hb) + "." + enc.EncodeToString(pb) + ".", nil
}

func kindOf(alg string) string {
	if len(alg) >= 2 && alg[:2] == "ES" {
		return kindEC
	}
	return kindRSA
}

func defaultAlg(kind string) string {
	if kind == kindEC {
		return "ES256"
	}
	return "RS256"
}
