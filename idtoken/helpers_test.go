package idtoken

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/oidctest"
)

const testAudience = "secretgate"

// fakeClock is the verifier's and the issuer's clock in tests, so that the
// refetch rate limit and expiry are driven without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testRules covers every way of naming a claim and matching a value.
func testRules() []Rule {
	return []Rule{
		{Subject: "deploy-api", Claims: map[string]string{"repository": "acme/api", "ref": "refs/heads/main"}},
		{Subject: "k8s-payments", Claims: map[string]string{"kubernetes.io/namespace": "payments"}},
		{Subject: "release", Claims: map[string]string{"repository": "acme/*", "ref": "refs/heads/release-*"}},
		{Subject: "k8s-builder", Claims: map[string]string{"/kubernetes.io/serviceaccount/name": "builder"}},
		{Subject: "k8s-runner", Claims: map[string]string{"kubernetes.io.pod.name": "runner-?"}},
		{Subject: "admins", Claims: map[string]string{"groups": "admins", "sub": "repo:acme/*"}},
	}
}

// testIssuer is the configuration of iss as the "github" issuer.
func testIssuer(iss *oidctest.Server) Issuer {
	return Issuer{
		Name:             "github",
		IssuerURL:        iss.URL,
		Discovery:        true,
		Audiences:        []string{testAudience},
		Algorithms:       []string{"RS256", "ES256"},
		MaxTokenLifetime: 2 * time.Hour,
		AuditClaims:      []string{"sub", "repository", "groups"},
		Rules:            testRules(),
	}
}

type fixture struct {
	iss   *oidctest.Server
	clock *fakeClock
	v     *Verifier
}

// newFixture starts an issuer and a verifier trusting it; edit changes the
// issuer's configuration and opts the verifier's options.
func newFixture(t testing.TB, edit func(*Issuer), opts Options) *fixture {
	t.Helper()
	f := &fixture{iss: oidctest.New(t), clock: newFakeClock()}
	f.iss.Now = f.clock.Now
	cfg := testIssuer(f.iss)
	if edit != nil {
		edit(&cfg)
	}
	if opts.Now == nil {
		opts.Now = f.clock.Now
	}
	v, err := NewVerifier([]Issuer{cfg}, opts)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	f.v = v
	return f
}

// token signs the issuer's usual claims (aud secretgate, 10 minutes) plus extra.
func (f *fixture) token(extra map[string]any, opts ...oidctest.SignOption) string {
	return f.iss.Sign(f.iss.Claims(testAudience, 10*time.Minute, extra), opts...)
}

// deployClaims match the first rule.
func deployClaims() map[string]any {
	return map[string]any{"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"}
}

func writeFile(path string, data []byte) error {
	return os.WriteFile(path, data, 0o600)
}

// randomKID is a kid no issuer has.
func randomKID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
