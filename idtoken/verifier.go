package idtoken

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of Options.
const (
	// MaxTokenSize bounds the tokens looked at: real ones (GitHub, GitLab,
	// Kubernetes) are 1-2 KiB.
	MaxTokenSize = 16 << 10
	// DefaultMinRefreshInterval is the least time between two fetches of
	// one issuer's keys.
	DefaultMinRefreshInterval = 10 * time.Second
	// DefaultKeyMaxAge is how old an issuer's keys may grow before a
	// request starts a background refresh, so that a key the issuer removed
	// stops working even if no unknown kid ever shows up.
	DefaultKeyMaxAge = time.Hour
	// DefaultFetchTimeout bounds one fetch (discovery and JWKS together).
	DefaultFetchTimeout = 10 * time.Second
)

// Options tune a Verifier; the zero value is ready for production.
type Options struct {
	// HTTPClient fetches discovery documents and key sets; nil means a
	// client with a DefaultFetchTimeout timeout.
	HTTPClient *http.Client
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Logger receives key fetches and their failures, never a token; nil
	// discards.
	Logger *slog.Logger
	// CacheSize is how many verified tokens are remembered: 0 means
	// DefaultCacheSize, negative disables the cache.
	CacheSize int
	// MinRefreshInterval: 0 means DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// KeyMaxAge: 0 means DefaultKeyMaxAge.
	KeyMaxAge time.Duration
	// FetchTimeout: 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
}

// Identity is who a verified token speaks for.
type Identity struct {
	// Subject is the subject of the first rule that matched.
	Subject string
	// Issuer is the configured name of the issuer (not its URL).
	Issuer string
	// Expiry is the token's exp.
	Expiry time.Time
	// AuditClaims holds the issuer's audit_claims present in the token,
	// rendered as text. The map is the caller's own.
	AuditClaims map[string]string
}

// Verifier checks workload identity tokens against the configured issuers.
// It is safe for concurrent use. NewVerifier does no network I/O, so the
// gateway builds a new Verifier when its configuration is reloaded (and
// Closes the old one once no request uses it); the new one starts with
// empty caches and re-reads jwks_file files.
type Verifier struct {
	issuers []*issuerState
	byURL   map[string]*issuerState
	cache   *resultCache

	client       *http.Client
	ownClient    bool
	now          func() time.Time
	log          *slog.Logger
	minRefresh   time.Duration
	keyMaxAge    time.Duration
	fetchTimeout time.Duration

	baseCtx context.Context
	cancel  context.CancelFunc
	closeMu sync.RWMutex
	closed  bool
	wg      sync.WaitGroup

	fetches   atomic.Int64 // key fetches started (tests)
	sigChecks atomic.Int64 // signature verifications (tests)
}

type issuerState struct {
	cfg    Issuer
	algs   []string
	leeway time.Duration
	rules  []compiledRule
	keys   *keySource
}

// errClosed fails fetches after Close.
var errClosed = errors.New("verifier closed")

// NewVerifier checks the issuers (ValidateIssuers) and reads their
// jwks_file key sets, so that a missing or broken file is a start-up (or
// reload) error; URL sources are fetched lazily, at first use.
func NewVerifier(issuers []Issuer, opts Options) (*Verifier, error) {
	if err := ValidateIssuers(issuers); err != nil {
		return nil, err
	}
	v := &Verifier{
		byURL:        make(map[string]*issuerState, len(issuers)),
		client:       opts.HTTPClient,
		now:          opts.Now,
		log:          opts.Logger,
		minRefresh:   opts.MinRefreshInterval,
		keyMaxAge:    opts.KeyMaxAge,
		fetchTimeout: opts.FetchTimeout,
	}
	if v.fetchTimeout <= 0 {
		v.fetchTimeout = DefaultFetchTimeout
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: v.fetchTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		v.ownClient = true
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.minRefresh <= 0 {
		v.minRefresh = DefaultMinRefreshInterval
	}
	if v.keyMaxAge <= 0 {
		v.keyMaxAge = DefaultKeyMaxAge
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	v.cache = newResultCache(size)
	v.baseCtx, v.cancel = context.WithCancel(context.Background())

	for k, cfg := range issuers {
		// Our own copies: the caller's configuration may change under us.
		cfg.Audiences = slices.Clone(cfg.Audiences)
		cfg.AuditClaims = slices.Clone(cfg.AuditClaims)
		rules, err := compileRules(cfg.Rules)
		if err != nil {
			v.Close()
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, &FieldError{Field: fmt.Sprintf("auth.jwt[%d].%s", k, fe.Field), Reason: fe.Reason}
			}
			return nil, err
		}
		is := &issuerState{
			cfg:    cfg,
			algs:   slices.Clone(cfg.algorithms()),
			leeway: cfg.leeway(),
			rules:  rules,
		}
		is.keys = &keySource{issuer: cfg.Name, v: v, cfg: cfg}
		if cfg.JWKSFile != "" {
			// Read now: a broken file must stop the (re)load, not the
			// first workload. It is re-read when an unknown kid shows up.
			ks, err := is.keys.fetch(context.Background())
			if err != nil {
				v.Close()
				return nil, &FieldError{Field: fmt.Sprintf("auth.jwt[%d].jwks_file", k), Reason: err.Error()}
			}
			is.keys.current.Store(ks)
		}
		v.issuers = append(v.issuers, is)
		v.byURL[cfg.IssuerURL] = is
	}
	return v, nil
}

// Close stops the key fetches under way and waits for them. Verify keeps
// working afterwards with the keys and results already cached, and fails
// where it would need a fetch.
func (v *Verifier) Close() {
	v.closeMu.Lock()
	already := v.closed
	v.closed = true
	v.closeMu.Unlock()
	if already {
		return
	}
	v.cancel()
	v.wg.Wait()
	if v.ownClient {
		v.client.CloseIdleConnections()
	}
}

// goFetch runs f in a goroutine that Close waits for, unless the verifier
// is closed.
func (v *Verifier) goFetch(f func(ctx context.Context)) bool {
	v.closeMu.RLock()
	defer v.closeMu.RUnlock()
	if v.closed {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		ctx, cancel := context.WithTimeout(v.baseCtx, v.fetchTimeout)
		defer cancel()
		f(ctx)
	}()
	return true
}

// Verify checks the token and maps it to a subject. Every error it returns
// is an *Error (errors.Is(err, ErrInvalidToken)); none contains the token.
// A token verified before is answered from the cache until its exp.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if len(token) > MaxTokenSize {
		return Identity{}, tokenErr(ErrMalformed, "", fmt.Sprintf("malformed token: longer than %d bytes", MaxTokenSize))
	}
	h := sha256.Sum256([]byte(token))
	now := v.now()
	if e := v.cache.get(h); e != nil {
		ks := e.src.current.Load()
		// A hit also needs the key that verified it to still be the
		// issuer's: a key removed at the issuer revokes its tokens here
		// at the next key refresh.
		if now.Before(e.expires) && ks.has(e.keyID) {
			v.maybeRefresh(e.src, ks, now)
			return e.id.clone(), nil
		}
		v.cache.remove(h)
	}
	entry, err := v.verify(ctx, token, now)
	if err != nil {
		return Identity{}, err
	}
	v.cache.put(h, entry, now)
	return entry.id.clone(), nil
}

func (id Identity) clone() Identity {
	id.AuditClaims = maps.Clone(id.AuditClaims)
	return id
}

func (v *Verifier) maybeRefresh(src *keySource, ks *keySet, now time.Time) {
	if now.Sub(ks.fetchedAt) > v.keyMaxAge {
		src.refreshInBackground()
	}
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*cacheEntry, error) {
	hdr, payloadSeg, err := parseHeader(token)
	if err != nil {
		return nil, tokenErr(ErrMalformed, "", "malformed token: "+err.Error())
	}
	var unverified struct {
		Iss any `json:"iss"`
	}
	if err := decodeSegment(payloadSeg, &unverified); err != nil {
		return nil, tokenErr(ErrMalformed, "", "malformed token: the payload is not a JSON object")
	}
	iss, ok := unverified.Iss.(string)
	if !ok {
		return nil, tokenErr(ErrUnknownIssuer, "", "the token has no iss claim")
	}
	// Before any key is looked at: a token naming an issuer we do not
	// trust costs no network call.
	is := v.byURL[iss]
	if is == nil {
		return nil, tokenErr(ErrUnknownIssuer, "", fmt.Sprintf("unknown issuer %s: no auth.jwt entry has this issuer", quoteCut(iss)))
	}
	name := is.cfg.Name

	alg := *hdr.Alg
	if err := checkAlgorithm(alg); err != nil || !slices.Contains(is.algs, alg) {
		return nil, tokenErr(ErrAlgorithm, name, fmt.Sprintf("algorithm %s is not allowed (allowed: %s)", quoteCut(alg), strings.Join(is.algs, ", ")))
	}
	// The allow-list given to go-jose is the header's own algorithm, which
	// the issuer allows: go-jose refuses any other.
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, tokenErr(ErrMalformed, name, "malformed token: not a JWS compact serialization")
	}

	payload, key, err := v.checkSignature(ctx, is, jws, hdr.Kid, alg, now)
	if err != nil {
		return nil, err
	}

	claims, std, err := decodeClaims(payload)
	if err != nil {
		return nil, tokenErr(ErrClaims, name, "bad claims: "+err.Error())
	}
	exp, err := checkClaims(is, std, now)
	if err != nil {
		return nil, err
	}

	subject := ""
	for _, r := range is.rules {
		if r.matches(claims) {
			subject = r.subject
			break
		}
	}
	if subject == "" {
		return nil, tokenErr(ErrNoRule, name, fmt.Sprintf("no rule matches the token's claims (%d rules)", len(is.rules)))
	}

	id := Identity{Subject: subject, Issuer: name, Expiry: exp}
	for _, c := range is.cfg.AuditClaims {
		if val, ok := claimLookup(claims, c); ok {
			if id.AuditClaims == nil {
				id.AuditClaims = make(map[string]string, len(is.cfg.AuditClaims))
			}
			id.AuditClaims[c] = auditValue(val)
		}
	}
	return &cacheEntry{src: is.keys, keyID: key.id, expires: exp, id: id}, nil
}

// checkSignature finds the issuer's key for the token and verifies the
// signature with go-jose, fetching the keys at first use and once more
// (rate-limited) when the kid is unknown.
func (v *Verifier) checkSignature(ctx context.Context, is *issuerState, jws *jose.JSONWebSignature, kid, alg string, now time.Time) ([]byte, verificationKey, error) {
	name := is.cfg.Name
	src := is.keys
	ks := src.current.Load()
	var rr refreshResult
	if ks == nil {
		ks, rr = src.refresh(ctx)
		if ks == nil {
			return nil, verificationKey{}, &Error{Kind: ErrKeysUnavailable, Issuer: name,
				Reason: "the issuer's keys are unavailable" + refreshNote(rr), Err: rr.err}
		}
	} else {
		v.maybeRefresh(src, ks, now)
	}

	cands := ks.candidates(kid, alg)
	if len(cands) == 0 && !rr.fetched {
		// The issuer may have rotated its keys: look once more.
		ks, rr = src.refresh(ctx)
		cands = ks.candidates(kid, alg)
	}
	if len(cands) == 0 {
		what := "no " + alg + " key"
		if kid != "" {
			what = fmt.Sprintf("no %s key kid=%s", alg, quoteCut(kid))
		}
		kind := ErrUnknownKey
		if rr.err != nil {
			kind = ErrKeysUnavailable
		}
		return nil, verificationKey{}, &Error{Kind: kind, Issuer: name, Reason: what + refreshNote(rr), Err: rr.err}
	}

	for _, k := range cands {
		v.sigChecks.Add(1)
		if payload, err := jws.Verify(k.pub); err == nil {
			return payload, k, nil
		}
	}
	return nil, verificationKey{}, tokenErr(ErrSignature, name, "the signature does not verify with the issuer's keys")
}

// refreshNote explains, after a key lookup failed, what became of the
// attempt to refresh the keys.
func refreshNote(rr refreshResult) string {
	switch {
	case rr.err != nil && rr.rateLimited:
		return fmt.Sprintf(" (key set refresh failed: %v; next attempt in %s)", rr.err, rr.retryIn.Round(time.Second))
	case rr.err != nil:
		return fmt.Sprintf(" (key set refresh failed: %v)", rr.err)
	case rr.rateLimited:
		return fmt.Sprintf(" (key set refreshed moments ago; next refresh allowed in %s)", rr.retryIn.Round(time.Second))
	default:
		return " (key set refreshed)"
	}
}
