package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretgate/secretgate/sdk"
)

// Capabilities named in permission errors, as Vault's ACL policies spell them.
const (
	capRead   = "read"
	capList   = "list"
	capCreate = "create"
	capUpdate = "update"
	capDelete = "delete"
)

// retryPolicy bounds how long one operation keeps trying through a sealed,
// standby, rate-limited or unreachable Vault before it answers ErrUnavailable.
type retryPolicy struct {
	attempts int           // total tries, at least 1
	base     time.Duration // first wait; doubles each time
	max      time.Duration // cap of one wait
}

var defaultRetry = retryPolicy{attempts: 4, base: 100 * time.Millisecond, max: time.Second}

// errCASMismatch is Vault's 400 "check-and-set parameter did not match the
// current version". It never leaves the package: callers turn it into
// ErrAlreadyExists, ErrVersionMismatch or ErrNotFound depending on the mode.
var errCASMismatch = errors.New("vault: check-and-set parameter did not match the current version")

// errKind classifies an error of one Vault request.
type errKind int

const (
	kindOther      errKind = iota
	kindPermission         // 403
	kindCAS                // 400 check-and-set mismatch
	kindRetry              // sealed, standby, 429, 5xx, request not sent: safe to retry any request
	kindMaybeSent          // transport failure after the request may have reached Vault
	kindContext            // the caller's context ended
)

func classify(ctx context.Context, err error) errKind {
	if ctx.Err() != nil {
		return kindContext
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusForbidden:
			return kindPermission
		case re.StatusCode == http.StatusBadRequest && containsFold(re.Errors, "check-and-set parameter did not match"):
			return kindCAS
		case re.StatusCode == http.StatusTooManyRequests,
			re.StatusCode == http.StatusServiceUnavailable: // sealed, standby without forwarding, quota
			return kindRetry
		case re.StatusCode >= 500:
			// A 500, 502 or 504 may come after Vault did the work.
			return kindMaybeSent
		}
		return kindOther
	}
	if isTLSVerifyError(err) {
		// A configuration problem (wrong ca_cert, tls_server_name), not an
		// outage: retrying will not help.
		return kindOther
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The per-request timeout of the api client, not the caller's.
		return kindMaybeSent
	}
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") {
		return kindRetry
	}
	return kindMaybeSent
}

func isTLSVerifyError(err error) bool {
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr)
}

func containsFold(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(strings.ToLower(s), sub) {
			return true
		}
	}
	return false
}

// request describes one Vault call for retries and error messages.
type request struct {
	capability string // the ACL capability the call needs, for 403 messages
	path       string // the Vault path, for messages
	// idempotent calls (reads, lists, deletes) are retried after any
	// transient failure; writes only when Vault certainly did not act.
	idempotent bool
	// noAuth calls (logins, health) skip the token checks.
	noAuth bool
}

// call runs fn with the plugin's token, retrying transient failures with
// backoff, and logging in again once when Vault refuses the token itself.
func (b *Backend) call(ctx context.Context, r request, fn func(ctx context.Context) (*api.Secret, error)) (*api.Secret, error) {
	reloggedIn := false
	var last error
	for attempt := 0; ; attempt++ {
		if !r.noAuth {
			if err := b.ensureLogin(ctx); err != nil {
				return nil, err
			}
		}
		gen := b.auth.gen.Load()
		sec, err := fn(ctx)
		if err == nil {
			return sec, nil
		}
		switch classify(ctx, err) {
		case kindContext:
			return nil, fmt.Errorf("vault: %s %s: %w (%w)", r.capability, r.path, sdk.ErrUnavailable, ctx.Err())
		case kindCAS:
			return nil, errCASMismatch
		case kindPermission:
			if r.noAuth {
				return nil, b.permissionError(r, err, false)
			}
			if reloggedIn {
				return nil, b.permissionError(r, err, false)
			}
			if b.auth.gen.Load() != gen {
				// Another caller logged in meanwhile: retry with its token.
				reloggedIn = true
				attempt--
				continue
			}
			valid := b.tokenStillValid(ctx, err)
			if valid {
				return nil, b.permissionError(r, err, false)
			}
			if !b.cfg.canLogin() {
				return nil, b.permissionError(r, err, true)
			}
			// The token expired or was revoked: log in again, retry once.
			if lerr := b.relogin(ctx, gen); lerr != nil {
				return nil, lerr
			}
			reloggedIn = true
			attempt-- // a fresh login is not a failed attempt
			continue
		case kindRetry:
			last = err
		case kindMaybeSent:
			if !r.idempotent {
				return nil, unavailable(r, err)
			}
			last = err
		default:
			return nil, fmt.Errorf("vault: %s %s: %s", r.capability, r.path, describeErr(err))
		}
		if attempt+1 >= b.retry.attempts {
			return nil, unavailable(r, last)
		}
		if err := sdk.Sleep(ctx, b.retry.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("vault: %s %s: %w (%w; last error: %s)", r.capability, r.path, sdk.ErrUnavailable, err, describeErr(last))
		}
	}
}

func unavailable(r request, err error) error {
	return fmt.Errorf("vault: %s %s: %w: %s", r.capability, r.path, sdk.ErrUnavailable, describeErr(err))
}

// backoff is the wait after the attempt-th failure: exponential with full
// jitter over its upper half, so that many callers do not retry in step.
func (p retryPolicy) backoff(attempt int) time.Duration {
	d := p.base << attempt
	if d > p.max || d <= 0 {
		d = p.max
	}
	return d/2 + sdk.Jitter(d/2)
}

// describeErr is an error's text for messages: Vault's own error strings for
// a response (they name paths and rules, never values), the transport error
// otherwise.
func describeErr(err error) string {
	if err == nil {
		return "no response"
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		if re.RawError {
			// A body Vault did not produce (a proxy's page): only the status.
			msg = http.StatusText(re.StatusCode)
		}
		return fmt.Sprintf("status %d: %s", re.StatusCode, msg)
	}
	return err.Error()
}

// permissionError names the path and the capability Vault refused.
// tokenRefused says Vault refused the token itself (expired or revoked) and
// the plugin has no way to get another one.
func (b *Backend) permissionError(r request, err error, tokenRefused bool) error {
	where := fmt.Sprintf("path %q", r.path)
	if b.cfg.namespace != "" {
		where += fmt.Sprintf(" in namespace %q", b.cfg.namespace)
	}
	hint := ""
	if tokenRefused {
		hint = " (the token itself is refused: expired or revoked)"
	}
	return fmt.Errorf("vault: the %q capability on %s was refused%s (%s): %w",
		r.capability, where, hint, describeErr(err), sdk.ErrPermission)
}
