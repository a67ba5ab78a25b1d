package gateway

// What a configuration reload replaces (reload.go), held as one immutable
// snapshot: a request takes the snapshot current when it is authenticated
// and finishes on it, so that it never sees half of two configurations.

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/idtoken"
)

// liveConfig is the reloadable part of the server's state.
type liveConfig struct {
	cfg   *Config
	authz Authorizer
	// jwt verifies workload identity tokens; nil without auth.jwt.
	jwt *idtoken.Verifier
}

// caller is who a request comes from, as authentication found.
type caller struct {
	subject string
	// expires: the subject's static token expiry, or a JWT's exp.
	expires time.Time
	// issuer is the auth.jwt issuer of a workload identity token, and
	// claims the audit_claims it carried; empty for a static token.
	issuer string
	claims map[string]string
}

// Context keys of the snapshot and the caller.
const (
	ctxKeyLive   = "sg.live"
	ctxKeyCaller = "sg.caller"
)

// config returns the current configuration (a reload may replace it; the
// fields a reload cannot change, listen, tls, audit and ui, are s.cfg's).
func (s *Server) config() *Config { return s.live.Load().cfg }

// liveOf returns the snapshot a request was authenticated with, or the
// current one for a request that has not been (or is a long-lived stream
// that must follow reloads).
func (s *Server) liveOf(c *gin.Context) *liveConfig {
	if c != nil {
		if v, ok := c.Get(ctxKeyLive); ok {
			return v.(*liveConfig)
		}
	}
	return s.live.Load()
}

// authzOf is the authorizer a request decides with.
func (s *Server) authzOf(c *gin.Context) Authorizer { return s.liveOf(c).authz }

// authz is the authorizer this request decides with.
func (r *request) authz() Authorizer { return r.s.authzOf(r.c) }

// newLive builds the snapshot of a configuration: its policy (unless the
// server was given a fixed authorizer).
func (s *Server) newLive(cfg *Config) (*liveConfig, error) {
	l := &liveConfig{cfg: cfg, authz: s.fixedAuthz}
	if l.authz == nil {
		p, err := NewPolicy(cfg)
		if err != nil {
			return nil, err
		}
		l.authz = PolicyAuthorizer{P: p}
	}
	if len(cfg.Auth.JWT) > 0 {
		// No network I/O here: keys are fetched at the first token.
		v, err := idtoken.NewVerifier(cfg.Auth.JWT, idtoken.Options{Logger: s.log})
		if err != nil {
			return nil, err
		}
		l.jwt = v
	}
	return l, nil
}

// retire closes what a replaced snapshot holds once the requests that
// started on it are done (they get the reload drain, as old plugins do).
func (l *liveConfig) retire(after time.Duration) {
	if l != nil && l.jwt != nil {
		time.AfterFunc(after, l.jwt.Close)
	}
}

// callerOf is who the request comes from (zero before authentication).
func callerOf(c *gin.Context) caller {
	v, _ := c.Get(ctxKeyCaller)
	cl, _ := v.(caller)
	return cl
}
