package vault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretgate/secretgate/sdk"
)

// authState is the plugin's current token and what keeps it alive. The
// token itself lives only in the api.Client.
type authState struct {
	mu       sync.Mutex    // serializes logins
	gen      atomic.Uint64 // bumped on every new token
	loggedIn atomic.Bool
	// stopRenew ends the goroutine that renews the current token (or logs
	// in again before it expires). Guarded by mu.
	stopRenew context.CancelFunc
}

// loginTimeout bounds a background login, which has no caller's context.
const loginTimeout = 30 * time.Second

// ensureLogin gets a first token when the plugin has none yet (Vault was
// down at Configure).
func (b *Backend) ensureLogin(ctx context.Context) error {
	if b.auth.loggedIn.Load() {
		return nil
	}
	return b.relogin(ctx, b.auth.gen.Load())
}

// relogin gets a fresh token unless another caller already did since seen,
// the generation the caller's failed request used; so a burst of requests
// that all found the token expired logs in once.
func (b *Backend) relogin(ctx context.Context, seen uint64) error {
	b.auth.mu.Lock()
	defer b.auth.mu.Unlock()
	if b.auth.loggedIn.Load() && b.auth.gen.Load() != seen {
		return nil
	}
	sec, token, err := b.login(ctx)
	if err != nil {
		return err
	}
	b.client.SetToken(token)
	b.auth.gen.Add(1)
	b.auth.loggedIn.Store(true)
	b.startRenewalLocked(sec)
	return nil
}

// login authenticates with the configured method and returns the token and,
// when Vault said, its lifetime. Errors never contain a credential.
func (b *Backend) login(ctx context.Context) (*api.Secret, string, error) {
	switch b.cfg.authMethod {
	case authToken:
		token := b.cfg.token
		if b.cfg.tokenFile != "" {
			t, err := readSecretFile("token_file", b.cfg.tokenFile)
			if err != nil {
				return nil, "", err
			}
			token = t
		}
		sec, err := b.lookupToken(ctx, token)
		return sec, token, err
	case authAppRole:
		secretID := b.cfg.secretID
		if b.cfg.secretIDFile != "" {
			s, err := readSecretFile("secret_id_file", b.cfg.secretIDFile)
			if err != nil {
				return nil, "", err
			}
			secretID = s
		}
		return b.loginWith(ctx, "AppRole", "auth/"+b.cfg.appRoleMount+"/login",
			map[string]any{"role_id": b.cfg.roleID, "secret_id": secretID})
	case authKubernetes:
		// Read on every login: the kubelet rotates projected tokens.
		jwt, err := readSecretFile("kubernetes_token_path", b.cfg.k8sTokenPath)
		if err != nil {
			return nil, "", err
		}
		return b.loginWith(ctx, "Kubernetes", "auth/"+b.cfg.k8sMount+"/login",
			map[string]any{"role": b.cfg.k8sRole, "jwt": jwt})
	}
	return nil, "", fmt.Errorf("vault: unknown auth method %q", b.cfg.authMethod)
}

func (b *Backend) loginWith(ctx context.Context, method, path string, body map[string]any) (*api.Secret, string, error) {
	r := request{capability: capUpdate, path: path, noAuth: true}
	sec, err := b.call(ctx, r, func(ctx context.Context) (*api.Secret, error) {
		return b.loginClient.Logical().WriteWithContext(ctx, path, body)
	})
	if err != nil {
		if errors.Is(err, sdk.ErrUnavailable) {
			return nil, "", fmt.Errorf("vault: %s login: %w", method, err)
		}
		// Wrong credentials answer 400 or 403 depending on the method.
		return nil, "", fmt.Errorf("vault: %s login at %q refused: %w (%v)", method, path, sdk.ErrPermission, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, "", fmt.Errorf("vault: %s login at %q returned no token: %w", method, path, sdk.ErrPermission)
	}
	b.log.Info("logged in to Vault", "method", method, "ttl_seconds", sec.Auth.LeaseDuration, "renewable", sec.Auth.Renewable)
	return sec, sec.Auth.ClientToken, nil
}

// lookupToken asks Vault about a given token so that a renewable one can be
// kept alive. Only a certificate that does not verify fails it (a settings
// problem); a token that cannot look itself up (no "default" policy) or a
// Vault that is down only means no renewal.
func (b *Backend) lookupToken(ctx context.Context, token string) (*api.Secret, error) {
	c, err := b.loginClient.Clone()
	if err != nil {
		return nil, nil
	}
	c.SetToken(token)
	c.SetNamespace(b.cfg.namespace)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sec, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil && isTLSVerifyError(err) {
		return nil, fmt.Errorf("vault: %s: check ca_cert and tls_server_name", describeErr(err))
	}
	if err != nil || sec == nil {
		b.log.Warn("cannot look the token up; it will not be renewed", "error", describeErr(err))
		return nil, nil
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Renewable:     renewable,
		LeaseDuration: int(ttl / time.Second),
	}}, nil
}

// tokenStillValid tells, after a 403, whether Vault refused the operation
// (the token is fine) or the token itself (expired, revoked).
func (b *Backend) tokenStillValid(ctx context.Context, err error) bool {
	var re *api.ResponseError
	if errors.As(err, &re) && containsFold(re.Errors, "invalid token") {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, lerr := b.client.Auth().Token().LookupSelfWithContext(ctx)
	if lerr == nil {
		return true
	}
	// A token without the default policy cannot look itself up either; the
	// caller then logs in again once and retries, which settles it.
	return false
}

// startRenewalLocked keeps the token in sec alive: renewable tokens are
// renewed by an api.LifetimeWatcher until Vault will not extend them (max
// TTL), and then, like non-renewable tokens near their end, replaced by a
// fresh login when the auth method allows one. Called with auth.mu held.
func (b *Backend) startRenewalLocked(sec *api.Secret) {
	if b.auth.stopRenew != nil {
		b.auth.stopRenew()
		b.auth.stopRenew = nil
	}
	if sec == nil || sec.Auth == nil || sec.Auth.LeaseDuration <= 0 {
		return // root and other non-expiring tokens
	}
	ctx, cancel := context.WithCancel(b.ctx)
	b.auth.stopRenew = cancel
	gen := b.auth.gen.Load()
	ttl := time.Duration(sec.Auth.LeaseDuration) * time.Second

	if !sec.Auth.Renewable {
		go b.reloginAt(ctx, gen, ttl*2/3)
		return
	}
	w, err := b.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
	if err != nil {
		b.log.Warn("cannot renew the Vault token", "error", err.Error())
		go b.reloginAt(ctx, gen, ttl*2/3)
		return
	}
	go w.Start()
	go func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-w.RenewCh():
				ttl := 0
				if r != nil && r.Secret != nil && r.Secret.Auth != nil {
					ttl = r.Secret.Auth.LeaseDuration
				}
				b.log.Debug("renewed the Vault token", "ttl_seconds", ttl)
			case err := <-w.DoneCh():
				// The token cannot be extended any more (max TTL near) or
				// renewal failed.
				if err != nil {
					b.log.Warn("Vault token renewal stopped", "error", describeErr(err))
				}
				if !b.cfg.canLogin() {
					b.log.Warn("the Vault token will expire and cannot be replaced: use token_file, AppRole or Kubernetes auth to let the plugin log in again")
					return
				}
				b.reloginLoop(ctx, gen)
				return
			}
		}
	}()
}

// reloginAt logs in again after d, for tokens that cannot be renewed.
func (b *Backend) reloginAt(ctx context.Context, gen uint64, d time.Duration) {
	if !b.cfg.canLogin() {
		return
	}
	if sdk.Sleep(ctx, d) != nil {
		return
	}
	b.reloginLoop(ctx, gen)
}

// reloginLoop logs in again, retrying with backoff while Vault is away,
// until it succeeds, someone else logged in, or the backend is closed.
func (b *Backend) reloginLoop(ctx context.Context, gen uint64) {
	wait := time.Second
	for ctx.Err() == nil && b.auth.gen.Load() == gen {
		lctx, cancel := context.WithTimeout(ctx, loginTimeout)
		err := b.relogin(lctx, gen)
		cancel()
		if err == nil {
			return
		}
		b.log.Warn("logging in to Vault again failed; will retry", "error", err.Error(), "retry_in", wait.String())
		if sdk.Sleep(ctx, wait) != nil {
			return
		}
		wait = min(wait*2, 30*time.Second)
	}
}
