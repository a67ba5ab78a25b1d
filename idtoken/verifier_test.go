package idtoken

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/oidctest"
)

func TestVerifyMapsEachRule(t *testing.T) {
	f := newFixture(t, nil, Options{})
	tests := []struct {
		name    string
		claims  map[string]any
		opts    []oidctest.SignOption
		subject string
	}{
		{"exact claims", deployClaims(), nil, "deploy-api"},
		{"exact claims, ES256", deployClaims(), []oidctest.SignOption{oidctest.WithAlg("ES256")}, "deploy-api"},
		{"slash path into a dotted key", map[string]any{"kubernetes.io": map[string]any{"namespace": "payments"}}, nil, "k8s-payments"},
		{"globs", map[string]any{"repository": "acme/web", "ref": "refs/heads/release-2.1"}, nil, "release"},
		{"glob * crosses slashes", map[string]any{"repository": "acme/web", "ref": "refs/heads/release-2/hotfix"}, nil, "release"},
		{"JSON pointer", map[string]any{"kubernetes.io": map[string]any{"serviceaccount": map[string]any{"name": "builder", "uid": "1"}}}, nil, "k8s-builder"},
		{"dotted path through a dotted key", map[string]any{"kubernetes.io": map[string]any{"pod": map[string]any{"name": "runner-7"}}}, nil, "k8s-runner"},
		{"array claim, one element matches", map[string]any{"groups": []any{"devs", "admins"}, "sub": "repo:acme/ops:ref:refs/heads/x"}, nil, "admins"},
		{"first match wins", map[string]any{"repository": "acme/api", "ref": "refs/heads/main", "groups": []any{"admins"}, "sub": "repo:acme/api"}, nil, "deploy-api"},
		{"token without kid", deployClaims(), []oidctest.SignOption{oidctest.WithoutKID()}, "deploy-api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.v.Verify(context.Background(), f.token(tt.claims, tt.opts...))
			require.NoError(t, err)
			require.Equal(t, tt.subject, id.Subject)
			require.Equal(t, "github", id.Issuer)
			require.Equal(t, f.clock.Now().Add(10*time.Minute), id.Expiry)
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t, func(i *Issuer) { i.Algorithms = []string{"RS256", "RS384", "ES256"} }, Options{})
	other := oidctest.New(t) // a second issuer nobody trusts
	now := f.clock.Now()
	ok := func(edit map[string]any) map[string]any {
		c := deployClaims()
		for k, v := range edit {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name  string
		token func() string
		kind  error
		msg   string
	}{
		{"unknown issuer", func() string { return other.Sign(other.Claims(testAudience, time.Minute, deployClaims())) }, ErrUnknownIssuer, "unknown issuer"},
		{"no iss", func() string { return f.token(ok(map[string]any{"iss": nil})) }, ErrUnknownIssuer, "no iss claim"},
		{"iss with a trailing slash", func() string { return f.token(ok(map[string]any{"iss": f.iss.URL + "/"})) }, ErrUnknownIssuer, "unknown issuer"},
		{"wrong audience", func() string { return f.iss.Sign(f.iss.Claims("vault", time.Minute, deployClaims())) }, ErrAudience, "wrong audience: the token's aud must contain one of secretgate"},
		{"audience list without ours", func() string { return f.token(ok(map[string]any{"aud": []any{"a", "b"}})) }, ErrAudience, "wrong audience"},
		{"expired", func() string {
			return f.token(ok(map[string]any{"exp": now.Add(-61 * time.Second).Unix(), "iat": now.Add(-time.Hour).Unix()}))
		}, ErrExpired, "token expired at " + now.Add(-61*time.Second).UTC().Format(time.RFC3339)},
		{"not yet valid", func() string { return f.token(ok(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})) }, ErrNotYetValid, "token not valid before"},
		{"issued in the future", func() string { return f.token(ok(map[string]any{"iat": now.Add(2 * time.Minute).Unix()})) }, ErrNotYetValid, "issued in the future"},
		{"lifetime too long", func() string { return f.iss.Sign(f.iss.Claims(testAudience, 3*time.Hour, deployClaims())) }, ErrLifetime, "token lifetime 3h0m0s exceeds max_token_lifetime 2h0m0s"},
		{"lifetime too long without iat", func() string {
			return f.token(ok(map[string]any{"iat": nil, "exp": now.Add(2*time.Hour + 2*time.Minute).Unix()}))
		}, ErrLifetime, "exceeds max_token_lifetime"},
		{"no exp", func() string { return f.token(ok(map[string]any{"exp": nil})) }, ErrClaims, "no exp claim"},
		{"exp of the wrong type", func() string { return f.token(ok(map[string]any{"exp": "tomorrow"})) }, ErrClaims, "wrong type"},
		{"alg none", func() string { return f.token(deployClaims(), oidctest.AlgNone()) }, ErrAlgorithm, `algorithm "none" is not allowed`},
		{"HS256 keyed with the RSA public key", func() string { return f.token(deployClaims(), oidctest.HS256WithPublicKey()) }, ErrAlgorithm, `algorithm "HS256" is not allowed`},
		{"algorithm outside the issuer's list", func() string { return f.token(deployClaims(), oidctest.WithAlg("PS256")) }, ErrAlgorithm, `"PS256" is not allowed (allowed: RS256, RS384, ES256)`},
		{"algorithm the key does not declare", func() string { return f.token(deployClaims(), oidctest.WithAlg("RS384")) }, ErrUnknownKey, "no RS384 key kid="},
		{"signed by another issuer's key under our kid", func() string {
			return other.Sign(f.iss.Claims(testAudience, time.Minute, deployClaims()), oidctest.WithKID(f.iss.KID("RS256")))
		}, ErrSignature, "signature does not verify"},
		{"ES256 header on an RSA kid", func() string {
			return f.token(deployClaims(), oidctest.WithAlg("ES256"), oidctest.WithKID(f.iss.KID("RS256")))
		}, ErrUnknownKey, "no ES256 key kid="},
		{"no rule matches", func() string { return f.token(map[string]any{"repository": "evil/api", "ref": "refs/heads/main"}) }, ErrNoRule, "issuer github: no rule matches the token's claims (6 rules)"},
		{"glob does not match", func() string { return f.token(map[string]any{"repository": "acme/web", "ref": "refs/heads/main"}) }, ErrNoRule, "no rule"},
		{"malformed", func() string { return "a.b" }, ErrMalformed, "malformed token"},
		{"header without alg", func() string { return "e30.e30.c2ln" }, ErrMalformed, "malformed token"},
		{"too long", func() string { return strings.Repeat("a", MaxTokenSize+1) }, ErrMalformed, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token()
			require.NotEmpty(t, token)
			id, err := f.v.Verify(context.Background(), token)
			require.Error(t, err)
			require.Empty(t, id.Subject)
			require.ErrorIs(t, err, ErrInvalidToken)
			require.ErrorIs(t, err, tt.kind, "error: %v", err)
			require.Contains(t, err.Error(), tt.msg)
			var te *Error
			require.True(t, errors.As(err, &te))
			for _, seg := range strings.Split(token, ".") {
				if len(seg) > 8 {
					require.NotContains(t, err.Error(), seg, "the error must not carry the token")
				}
			}
		})
	}
	require.Zero(t, other.JWKSFetches()+other.DiscoveryFetches(), "the untrusted issuer is never asked")
}

func TestUnknownIssuerCostsNoFetch(t *testing.T) {
	f := newFixture(t, nil, Options{})
	stranger := oidctest.New(t)
	_, err := f.v.Verify(context.Background(), stranger.Sign(stranger.Claims(testAudience, time.Minute, deployClaims())))
	require.ErrorIs(t, err, ErrUnknownIssuer)
	require.Zero(t, f.iss.JWKSFetches()+f.iss.DiscoveryFetches()+stranger.JWKSFetches()+stranger.DiscoveryFetches())
	require.Zero(t, f.v.fetches.Load())
}

func TestKeysFetchedLazilyOnce(t *testing.T) {
	f := newFixture(t, nil, Options{})
	require.Zero(t, f.iss.JWKSFetches(), "NewVerifier does no network I/O")
	for range 3 {
		f.clock.Advance(time.Second)
		_, err := f.v.Verify(context.Background(), f.token(deployClaims()))
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, f.iss.DiscoveryFetches())
	require.EqualValues(t, 1, f.iss.JWKSFetches())
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t, nil, Options{})
	ctx := context.Background()
	oldKID := f.iss.KID("RS256")
	_, err := f.v.Verify(ctx, f.token(deployClaims()))
	require.NoError(t, err)

	f.iss.Rotate(false)
	require.NotEqual(t, oldKID, f.iss.KID("RS256"))
	// Within the refetch interval the new kid is not looked up again.
	f.clock.Advance(5 * time.Second)
	_, err = f.v.Verify(ctx, f.token(deployClaims()))
	require.ErrorIs(t, err, ErrUnknownKey)
	require.Contains(t, err.Error(), "next refresh allowed in 5s")
	require.EqualValues(t, 1, f.iss.JWKSFetches())

	f.clock.Advance(6 * time.Second)
	id, err := f.v.Verify(ctx, f.token(deployClaims()))
	require.NoError(t, err)
	require.Equal(t, "deploy-api", id.Subject)
	require.EqualValues(t, 2, f.iss.JWKSFetches(), "one refetch for the new kid")
	require.EqualValues(t, 1, f.iss.DiscoveryFetches(), "the jwks_uri is kept")

	// The old key is still published: its tokens still verify.
	_, err = f.v.Verify(ctx, f.token(deployClaims(), oidctest.WithSigningKey(oldKID)))
	require.NoError(t, err)
}

func TestDroppedKeyRevokesCachedTokens(t *testing.T) {
	f := newFixture(t, nil, Options{})
	ctx := context.Background()
	oldToken := f.token(deployClaims())
	_, err := f.v.Verify(ctx, oldToken)
	require.NoError(t, err)

	f.iss.Rotate(true)
	f.clock.Advance(11 * time.Second)
	_, err = f.v.Verify(ctx, f.token(deployClaims())) // new kid: refetch
	require.NoError(t, err)

	_, err = f.v.Verify(ctx, oldToken)
	require.ErrorIs(t, err, ErrUnknownKey, "a cached result dies with its key")
}

func TestKeysRefreshedWhenOld(t *testing.T) {
	f := newFixture(t, nil, Options{KeyMaxAge: time.Minute})
	ctx := context.Background()
	tok := f.token(deployClaims())
	_, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	f.clock.Advance(2 * time.Minute)
	_, err = f.v.Verify(ctx, tok) // a cache hit still starts the refresh
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.iss.JWKSFetches() == 2 }, 5*time.Second, 5*time.Millisecond)
}

func TestForgedKidFloodIsRateLimited(t *testing.T) {
	f := newFixture(t, nil, Options{})
	ctx := context.Background()
	_, err := f.v.Verify(ctx, f.token(deployClaims()))
	require.NoError(t, err)
	// One refetch is allowed again; the issuer is slow, so that 50 workers
	// overlap its fetch, and the flood goes on long after it.
	f.clock.Advance(11 * time.Second)
	f.iss.SetDelay(20 * time.Millisecond)

	const n, workers = 1000, 50
	tokens := make(chan string, n)
	for range n {
		tokens <- f.token(deployClaims(), oidctest.WithKID(randomKID(t)))
	}
	close(tokens)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tok := range tokens {
				_, err := f.v.Verify(ctx, tok)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, ErrUnknownKey)
	}
	require.EqualValues(t, 2, f.iss.JWKSFetches(), "1 first fetch + 1 refetch for 1,000 forged kids")
}

func TestConcurrentFirstUseSharesOneFetch(t *testing.T) {
	f := newFixture(t, nil, Options{})
	f.iss.SetDelay(50 * time.Millisecond)
	tokens := make([]string, 20)
	for i := range tokens {
		tokens[i] = f.token(map[string]any{"repository": "acme/web", "ref": fmt.Sprintf("refs/heads/release-%d", i)})
	}
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Go(func() {
			id, err := f.v.Verify(context.Background(), tok)
			if assert.NoError(t, err, "every caller waits for the fetch under way") {
				assert.Equal(t, "release", id.Subject)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, f.iss.DiscoveryFetches())
	require.EqualValues(t, 1, f.iss.JWKSFetches())
}

func TestIssuerDown(t *testing.T) {
	f := newFixture(t, nil, Options{})
	ctx := context.Background()
	_, err := f.v.Verify(ctx, f.token(deployClaims()))
	require.NoError(t, err)

	f.iss.SetDown(true)
	f.clock.Advance(11 * time.Second)
	// A new token under a known kid needs no fetch: the cached keys work.
	id, err := f.v.Verify(ctx, f.token(map[string]any{"repository": "acme/web", "ref": "refs/heads/release-1"}))
	require.NoError(t, err)
	require.Equal(t, "release", id.Subject)

	f.iss.Rotate(false)
	_, err = f.v.Verify(ctx, f.token(deployClaims()))
	require.ErrorIs(t, err, ErrKeysUnavailable)
	require.ErrorIs(t, err, ErrInvalidToken)
	require.Contains(t, err.Error(), "issuer github: no RS256 key kid=\""+f.iss.KID("RS256")+"\" (key set refresh failed: GET ")
	require.Contains(t, err.Error(), "503 Service Unavailable")

	// Up again, the new kid works once the interval has passed.
	f.iss.SetDown(false)
	f.clock.Advance(11 * time.Second)
	_, err = f.v.Verify(ctx, f.token(deployClaims()))
	require.NoError(t, err)
}

func TestIssuerDownAtFirstUse(t *testing.T) {
	f := newFixture(t, nil, Options{})
	ctx := context.Background()
	f.iss.SetDown(true)
	_, err := f.v.Verify(ctx, f.token(deployClaims()))
	require.ErrorIs(t, err, ErrKeysUnavailable)
	require.Contains(t, err.Error(), "issuer github: the issuer's keys are unavailable (key set refresh failed:")
	require.EqualValues(t, 1, f.iss.DiscoveryFetches())

	// The failure is remembered for the interval: no second request.
	f.clock.Advance(3 * time.Second)
	_, err = f.v.Verify(ctx, f.token(deployClaims()))
	require.ErrorIs(t, err, ErrKeysUnavailable)
	require.Contains(t, err.Error(), "next attempt in 7s")
	require.EqualValues(t, 1, f.iss.DiscoveryFetches())
}

func TestDiscoveryNamingAnotherIssuerIsRefused(t *testing.T) {
	f := newFixture(t, nil, Options{})
	f.iss.SetDiscoveryIssuer("https://evil.example")
	_, err := f.v.Verify(context.Background(), f.token(deployClaims()))
	require.ErrorIs(t, err, ErrKeysUnavailable)
	require.Contains(t, err.Error(), `names issuer "https://evil.example"`)
	require.Zero(t, f.iss.JWKSFetches())
}

func TestJWKSURLSource(t *testing.T) {
	f := newFixture(t, func(i *Issuer) { i.Discovery, i.JWKSURL = false, i.IssuerURL+oidctest.JWKSPath }, Options{})
	_, err := f.v.Verify(context.Background(), f.token(deployClaims()))
	require.NoError(t, err)
	require.Zero(t, f.iss.DiscoveryFetches())
	require.EqualValues(t, 1, f.iss.JWKSFetches())
}

func TestJWKSFileSource(t *testing.T) {
	iss := oidctest.New(t)
	clock := newFakeClock()
	iss.Now = clock.Now
	file := t.TempDir() + "/jwks.json"
	require.NoError(t, writeFile(file, iss.JWKSJSON()))
	cfg := testIssuer(iss)
	cfg.Discovery, cfg.JWKSFile = false, file
	v, err := NewVerifier([]Issuer{cfg}, Options{Now: clock.Now})
	require.NoError(t, err)
	t.Cleanup(v.Close)

	ctx := context.Background()
	sign := func() string { return iss.Sign(iss.Claims(testAudience, time.Minute, deployClaims())) }
	_, err = v.Verify(ctx, sign())
	require.NoError(t, err)

	// Rotated keys written to the file are read when the new kid shows up.
	iss.Rotate(true)
	require.NoError(t, writeFile(file, iss.JWKSJSON()))
	_, err = v.Verify(ctx, sign())
	require.NoError(t, err)
	require.Zero(t, iss.JWKSFetches()+iss.DiscoveryFetches(), "a file source never touches the network")

	// A file that cannot be read fails NewVerifier, naming the field.
	cfg.JWKSFile = t.TempDir() + "/missing.json"
	_, err = NewVerifier([]Issuer{cfg}, Options{})
	require.ErrorContains(t, err, "auth.jwt[0].jwks_file: open ")
	require.NoError(t, writeFile(cfg.JWKSFile, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)))
	_, err = NewVerifier([]Issuer{cfg}, Options{})
	require.ErrorContains(t, err, "auth.jwt[0].jwks_file: "+cfg.JWKSFile+": key set has no usable signing key")
}

func TestResultCache(t *testing.T) {
	f := newFixture(t, nil, Options{})
	ctx := context.Background()
	tok := f.token(deployClaims())
	first, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	require.EqualValues(t, 1, f.v.sigChecks.Load())

	second, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.EqualValues(t, 1, f.v.sigChecks.Load(), "a repeated token costs no signature check")

	// The identity handed out is the caller's own.
	second.AuditClaims["sub"] = "changed"
	third, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, "repo:acme/api:ref:refs/heads/main", third.AuditClaims["sub"])

	// Failures are not cached: each costs a check.
	bad := f.token(map[string]any{"repository": "evil/x", "ref": "x"})
	for range 2 {
		_, err = f.v.Verify(ctx, bad)
		require.ErrorIs(t, err, ErrNoRule)
	}
	require.EqualValues(t, 3, f.v.sigChecks.Load())

	// Past exp (and the leeway), the cached result is not used.
	f.clock.Advance(10*time.Minute + 61*time.Second)
	_, err = f.v.Verify(ctx, tok)
	require.ErrorIs(t, err, ErrExpired)
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, nil, Options{CacheSize: -1})
	tok := f.token(deployClaims())
	for range 2 {
		_, err := f.v.Verify(context.Background(), tok)
		require.NoError(t, err)
	}
	require.EqualValues(t, 2, f.v.sigChecks.Load())
}

func TestAuditClaims(t *testing.T) {
	f := newFixture(t, nil, Options{})
	long := strings.Repeat("é", 200)
	id, err := f.v.Verify(context.Background(), f.token(map[string]any{
		"sub": long, "groups": []any{"admins", "devs"}, "repository": "acme/x", "ref": "refs/heads/release-1",
	}))
	require.NoError(t, err)
	require.Equal(t, "release", id.Subject)
	require.Equal(t, `["admins","devs"]`, id.AuditClaims["groups"])
	require.Equal(t, "acme/x", id.AuditClaims["repository"])
	require.LessOrEqual(t, len(id.AuditClaims["sub"]), maxAuditValue+len("…"))
	require.True(t, strings.HasSuffix(id.AuditClaims["sub"], "é…"), "cut on a character boundary")
}

func TestConcurrentVerify(t *testing.T) {
	f := newFixture(t, nil, Options{CacheSize: 4})
	tokens := []string{
		f.token(deployClaims()),
		f.token(deployClaims(), oidctest.WithAlg("ES256")),
		f.token(map[string]any{"kubernetes.io": map[string]any{"namespace": "payments"}}),
		f.token(map[string]any{"repository": "acme/web", "ref": "refs/heads/release-9"}),
		f.token(map[string]any{"repository": "acme/web", "ref": "refs/heads/release-8"}),
		f.token(map[string]any{"repository": "nope", "ref": "nope"}),
	}
	want := []string{"deploy-api", "deploy-api", "k8s-payments", "release", "release", ""}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := (g + i) % len(tokens)
				id, err := f.v.Verify(context.Background(), tokens[k])
				if want[k] == "" {
					assert.ErrorIs(t, err, ErrNoRule)
					continue
				}
				if assert.NoError(t, err) {
					assert.Equal(t, want[k], id.Subject)
				}
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, f.iss.JWKSFetches())
	require.LessOrEqual(t, f.v.cache.len(), 4)
}

func TestCloseStopsFetches(t *testing.T) {
	f := newFixture(t, nil, Options{})
	f.iss.SetDelay(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := f.v.Verify(ctx, f.token(deployClaims()))
	require.ErrorIs(t, err, ErrKeysUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	start := time.Now()
	f.v.Close() // cancels the fetch still waiting on the slow issuer
	require.Less(t, time.Since(start), 10*time.Second)
	f.v.Close() // twice is harmless

	f.clock.Advance(time.Minute)
	_, err = f.v.Verify(context.Background(), f.token(deployClaims()))
	require.ErrorIs(t, err, ErrKeysUnavailable)
	require.ErrorContains(t, err, "verifier closed")
}

func TestLooksLikeJWT(t *testing.T) {
	iss := oidctest.New(t)
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"signed JWT", iss.Sign(map[string]any{"sub": "x"}), true},
		{"alg none", iss.Sign(map[string]any{"sub": "x"}, oidctest.AlgNone()), true},
		{"static token", "sg_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false},
		{"dev token", "sgdev_3q2abc", false},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", false},
		{"four segments", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.c2ln", false},
		{"padding", "eyJhbGciOiJSUzI1NiJ9.e30=.c2ln", false},
		{"header not JSON", "bm9wZQ.e30.c2ln", false},
		{"header without alg", "e30.e30.c2ln", false},
		{"alg not a string", "eyJhbGciOjF9.e30.c2ln", false},
		{"empty payload", "eyJhbGciOiJSUzI1NiJ9..c2ln", false},
		{"empty", "", false},
		{"too long", "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("a", MaxTokenSize) + ".c2ln", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, LooksLikeJWT(tt.token))
		})
	}
}
