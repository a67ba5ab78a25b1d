package gateway

// POST auth/jwt/login and auth/kubernetes/login {"role","jwt"}: a workload
// identity JWT, verified and mapped to a subject exactly as a JWT bearer
// token is (authenticate, authenticateJWT), buys a short-lived gateway
// token: what Vault's clients (ESO, Vault Agent) expect from a login.
//
// Subjects' own tokens are hashes in the configuration, so a login token is
// the gateway's: 32 bytes from crypto/rand, kept in memory as its SHA-256
// with the identity it stands for and its expiry, min(the JWT's exp, 1h).
// authenticate accepts it (authenticateLoginToken); revoke-self ends it; a
// restart ends them all. It is valid on the gateway that issued it only.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/idtoken"
	"github.com/secretgate/secretgate/sdk/api"
)

// Audit actions of the token routes (docs/vault-api.md).
const (
	actionLogin  = "auth.login"
	actionRevoke = "auth.revoke"
)

const (
	// loginTokenPrefix tells a login token from a static token or a JWT
	// before any lookup.
	loginTokenPrefix = "sgv."
	// MaxLoginTokenTTL bounds a login token's life whatever the JWT's exp.
	MaxLoginTokenTTL = time.Hour
	// maxLoginTokens bounds the memory of live login tokens (about 300
	// bytes each); every one took a valid JWT to get.
	maxLoginTokens  = 100_000
	loginSweepEvery = time.Minute
	ctxKeyVaultRole = "sg.vault_role"
)

var errTooManyLogins = errors.New("too many live login tokens")

// loginTokens holds the live login tokens of one server, by hash.
type loginTokens struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]caller
	nextSweep time.Time
}

func newLoginTokens() *loginTokens {
	return &loginTokens{m: map[[sha256.Size]byte]caller{}}
}

// issue makes a token for cl (whose expires is the token's expiry).
func (l *loginTokens) issue(cl caller, now time.Time) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("login token: %w", err)
	}
	tok := loginTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.nextSweep) || len(l.m) >= maxLoginTokens {
		for h, c := range l.m {
			if !now.Before(c.expires) {
				delete(l.m, h)
			}
		}
		l.nextSweep = now.Add(loginSweepEvery)
	}
	if len(l.m) >= maxLoginTokens {
		return "", errTooManyLogins
	}
	l.m[sha256.Sum256([]byte(tok))] = cl
	return tok, nil
}

// lookup returns the identity of a live or expired token.
func (l *loginTokens) lookup(tok string) (caller, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cl, ok := l.m[sha256.Sum256([]byte(tok))]
	return cl, ok
}

// revoke ends a token; false when it was not one.
func (l *loginTokens) revoke(tok string) bool {
	h := sha256.Sum256([]byte(tok))
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[h]
	delete(l.m, h)
	return ok
}

// authenticateLoginToken is authenticate's hook for login tokens: false
// when token is not one (authenticate goes on with static tokens), true
// when it answered the request or passed it on as the token's subject.
// The subject's bindings are the current configuration's, as for every
// token; a reload that removes the issuer or the subject ends the token.
func (s *Server) authenticateLoginToken(c *gin.Context, r *request, live *liveConfig, token string) bool {
	if s.vault == nil || !strings.HasPrefix(token, loginTokenPrefix) {
		return false
	}
	cl, ok := s.vault.logins.lookup(token)
	if !ok {
		return false
	}
	if !time.Now().Before(cl.expires) {
		s.vault.logins.revoke(token)
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token", error_description="token expired"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "login token expired at %s; log in again", cl.expires.UTC().Format(time.RFC3339)))
		return true
	}
	if !live.cfg.hasIssuer(cl.issuer) || !live.cfg.hasSubject(cl.subject) {
		s.vault.logins.revoke(token)
		c.Header("WWW-Authenticate", `Bearer realm="secretgate", error="invalid_token"`)
		s.failAuth(r, newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "login token revoked: its issuer or subject is no longer configured; log in again"))
		return true
	}
	c.Set(ctxKeySubject, cl.subject)
	c.Set(ctxKeyCaller, cl)
	c.Next()
	return true
}

func (c *Config) hasIssuer(name string) bool {
	return slices.ContainsFunc(c.Auth.JWT, func(i idtoken.Issuer) bool { return i.Name == name })
}

func (c *Config) hasSubject(name string) bool {
	return slices.ContainsFunc(c.Subjects, func(s SubjectConfig) bool { return s.Name == name })
}

// vaultLoginToken reads the login body and presents its JWT to
// authenticate as the bearer token, so that it is verified, mapped and
// (when refused) audited exactly as a JWT bearer token. Refusals before
// authentication go through failAuth: they cannot flood the audit log.
func (s *Server) vaultLoginToken(c *gin.Context) {
	r := &request{s: s, c: c, action: actionLogin}
	if !s.vaultHeaderChecks(c, r) {
		return
	}
	raw, e := readBody(c.Request, s.readTimeout)
	var body map[string]json.RawMessage
	if e == nil {
		body, e = vaultMembers(raw, "body", []string{"role", "jwt"})
	}
	var jwt, role string
	if e == nil && (body["jwt"] == nil || json.Unmarshal(body["jwt"], &jwt) != nil || jwt == "") {
		e = invalidArg("jwt", "is required: the workload identity token (a JWT) as a string")
	}
	if e == nil && body["role"] != nil && json.Unmarshal(body["role"], &role) != nil {
		e = invalidArg("role", "must be a string: the subject the token maps to, or empty")
	}
	if e == nil && s.live.Load().jwt == nil {
		e = invalidArg("jwt", "cannot be verified: no workload identity issuer is configured (auth.jwt)")
	}
	if e == nil && !idtoken.LooksLikeJWT(jwt) {
		e = newAPIError(http.StatusUnauthorized, api.CodeUnauthenticated, "invalid workload identity token: not a JWT")
	}
	if e != nil {
		s.failAuth(r, e)
		return
	}
	c.Request.Header.Del("X-Vault-Token")
	c.Request.Header.Set("Authorization", "Bearer "+jwt)
	c.Set(ctxKeyVaultRole, role)
	c.Next()
}

// vaultLogin issues the login token of an authenticated JWT. Vault's role
// names a configuration of the auth method; here the issuer's rules pick
// the subject, so a role, when sent, must be that subject.
func (s *Server) vaultLogin(c *gin.Context) {
	r := s.req(c)
	cl := callerOf(c)
	if cl.issuer == "" {
		r.fail(invalidArg("jwt", "is not a workload identity token"))
		return
	}
	if role := c.GetString(ctxKeyVaultRole); role != "" && role != cl.subject {
		r.fail(invalidArg("role", "%s is not the subject the token maps to (%s, by the rules of issuer %s): send that subject, or no role",
			quoteShort(role), quoteShort(cl.subject), quoteShort(cl.issuer)))
		return
	}
	now := time.Now()
	if exp := now.Add(MaxLoginTokenTTL); cl.expires.IsZero() || cl.expires.After(exp) {
		cl.expires = exp
	}
	tok, err := s.vault.logins.issue(cl, now)
	if err != nil {
		e := newAPIError(http.StatusServiceUnavailable, api.CodeBackendUnavailable, "cannot issue a login token now (%d are live); retry later", maxLoginTokens)
		e.cause = err
		r.fail(e)
		return
	}
	if !r.auditSuccess() {
		// No token leaves the gateway without its audit record.
		s.vault.logins.revoke(tok)
		return
	}
	policies := vaultPolicies(s.liveOf(c).cfg, cl.subject)
	meta := map[string]string{"subject": cl.subject, "issuer": cl.issuer}
	if role := c.GetString(ctxKeyVaultRole); role != "" {
		meta["role"] = role
	}
	c.JSON(http.StatusOK, vaultResponse{RequestID: requestID(c), Auth: &vaultAuth{
		ClientToken: tok, Policies: policies, TokenPolicies: policies, Metadata: meta,
		LeaseDuration: int64(cl.expires.Sub(now) / time.Second), TokenType: "service", Orphan: true,
	}})
}
