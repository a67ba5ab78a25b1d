package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"

	"github.com/secretgate/secretgate/sdk"
)

// requestTimeout bounds one HTTP request to Vault; the caller's context
// bounds the whole operation with its retries.
const requestTimeout = 15 * time.Second

// defaultKVMaxVersions is what KV v2 keeps when neither the mount nor the
// secret sets max_versions.
const defaultKVMaxVersions = 10

// maxWriteTries bounds how often a write without ExpectedVersion starts over
// because another writer got in between its read and its check-and-set.
const maxWriteTries = 8

// Backend is the Vault KV v2 backend. Create it with New and Configure it.
type Backend struct {
	log    hclog.Logger
	getenv func(string) string
	retry  retryPolicy
	// listConcurrency bounds the Describe calls one List page makes at once.
	listConcurrency int

	configureOnce sync.Once
	cfg           *config
	client        *api.Client // carries the token
	loginClient   *api.Client // never carries a token
	auth          authState
	ctx           context.Context // ends with Close; parent of renewals
	cancel        context.CancelFunc

	created createdCache

	mountMu          sync.Mutex
	mountMaxVersions int // from <mount>/config; -1 until read
}

var _ sdk.Backend = (*Backend)(nil)

// New returns an unconfigured Vault backend.
func New() sdk.Backend { return newBackend() }

func newBackend() *Backend {
	ctx, cancel := context.WithCancel(context.Background())
	return &Backend{
		log: hclog.New(&hclog.LoggerOptions{
			Name: "vault", Level: hclog.Info, Output: os.Stderr, JSONFormat: true,
		}),
		getenv:           os.Getenv,
		retry:            defaultRetry,
		listConcurrency:  8,
		ctx:              ctx,
		cancel:           cancel,
		mountMaxVersions: -1,
	}
}

// Close stops token renewal. The plugin process ends without it; tests that
// make many backends in one process call it.
func (b *Backend) Close() {
	b.cancel()
}

// Configure parses the settings, builds the Vault client and logs in. When
// Vault is unreachable it still succeeds, so that the gateway starts and
// answers 503 until Vault is back; the login then happens on first use.
// Wrong credentials and bad settings fail.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	err := errors.New("vault: Configure was already called")
	b.configureOnce.Do(func() { err = b.configure(ctx, settings) })
	return err
}

func (b *Backend) configure(ctx context.Context, settings map[string]string) error {
	cfg, err := parseConfig(settings, b.getenv)
	if err != nil {
		return err
	}
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	loginClient, err := newClient(cfg)
	if err != nil {
		return err
	}
	if cfg.tlsSkipVerify {
		b.log.Warn("tls_skip_verify is set: the Vault server's certificate is NOT verified; anyone on the network path can read and change secrets")
	}
	b.cfg, b.client, b.loginClient = cfg, client, loginClient

	if err := b.relogin(ctx, 0); err != nil {
		if errors.Is(err, sdk.ErrUnavailable) {
			b.log.Warn("Vault is unreachable; logging in on first use", "error", err.Error())
			return nil
		}
		return fmt.Errorf("vault: configure: %w", err)
	}
	return nil
}

// newClient builds an api.Client from the settings alone: unlike
// api.DefaultConfig it does not read VAULT_* variables (VAULT_SKIP_VERIFY,
// VAULT_CACERT...), so that the plugin's environment cannot change its TLS.
func newClient(cfg *config) (*api.Client, error) {
	httpClient := cleanhttp.DefaultPooledClient()
	transport := httpClient.Transport.(*http.Transport)
	transport.TLSHandshakeTimeout = 10 * time.Second
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	// The gateway fans requests out; keep enough idle connections to Vault.
	transport.MaxIdleConnsPerHost = 64
	// A custom TLSClientConfig turns HTTP/2 off unless asked for again.
	transport.ForceAttemptHTTP2 = true
	// Vault's api follows its own redirects (standby to active).
	httpClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c := &api.Config{
		Address:    cfg.address,
		HttpClient: httpClient,
		Timeout:    requestTimeout,
		MaxRetries: 0, // the plugin retries itself, with the caller's context
	}
	if err := c.ConfigureTLS(&api.TLSConfig{
		CACert:        cfg.caCert,
		ClientCert:    cfg.clientCert,
		ClientKey:     cfg.clientKey,
		TLSServerName: cfg.tlsServerName,
		Insecure:      cfg.tlsSkipVerify,
	}); err != nil {
		return nil, sdk.Invalid("settings.ca_cert", "TLS settings: %v", err)
	}
	client, err := api.NewClient(c)
	if err != nil {
		return nil, sdk.Invalid("settings.address", "%v", err)
	}
	// NewClient picks VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the environment; the token comes from login() and the rest from the
	// settings only.
	client.ClearToken()
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	if cfg.namespace != "" {
		client.SetNamespace(cfg.namespace)
	} else {
		client.ClearNamespace()
	}
	return client, nil
}

func (b *Backend) configured() error {
	if b.cfg == nil {
		return errors.New("vault: the backend is not configured")
	}
	return nil
}

// Capabilities reports KV v2's versions and CAS. MaxVersions is what Vault
// actually keeps: the larger of the secret's max_versions (the setting) and
// the mount's, 10 when neither is set (KV v2's rule).
func (b *Backend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	if err := b.configured(); err != nil {
		return sdk.Capabilities{}, err
	}
	keep := max(b.cfg.maxVersions, b.readMountMaxVersions(ctx))
	if keep == 0 {
		keep = defaultKVMaxVersions
	}
	return sdk.Capabilities{Backend: "vault", Versions: true, MaxVersions: keep, CAS: true, Labels: true}, nil
}

// readMountMaxVersions reads the mount's max_versions once. A policy without
// read on <mount>/config gives 0 (the KV default) and a log line.
func (b *Backend) readMountMaxVersions(ctx context.Context) int {
	b.mountMu.Lock()
	defer b.mountMu.Unlock()
	if b.mountMaxVersions >= 0 {
		return b.mountMaxVersions
	}
	path := b.cfg.mountConfigPath()
	sec, err := b.call(ctx, request{capability: capRead, path: path, idempotent: true}, func(ctx context.Context) (*api.Secret, error) {
		return b.client.Logical().ReadWithContext(ctx, path)
	})
	if err != nil {
		b.log.Warn("cannot read the KV mount's config; assuming its max_versions is unset", "path", path, "error", err.Error())
		return 0
	}
	n := int64(0)
	if sec != nil && sec.Data != nil {
		n, _ = toInt(sec.Data["max_versions"])
	}
	b.mountMaxVersions = int(n)
	return b.mountMaxVersions
}

// Ping checks sys/health (initialized, unsealed) and that the plugin holds a
// token.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.configured(); err != nil {
		return err
	}
	var health *api.HealthResponse
	_, err := b.call(ctx, request{capability: capRead, path: "sys/health", idempotent: true, noAuth: true}, func(ctx context.Context) (*api.Secret, error) {
		h, err := b.client.Sys().HealthWithContext(ctx)
		health = h
		return nil, err
	})
	if err != nil {
		return err
	}
	switch {
	case !health.Initialized:
		return fmt.Errorf("vault: the server is not initialized: %w", sdk.ErrUnavailable)
	case health.Sealed:
		return fmt.Errorf("vault: the server is sealed: %w", sdk.ErrUnavailable)
	}
	return b.ensureLogin(ctx)
}

// validateRefName validates project and name, ignoring the version (which
// Describe ignores and Delete uses for check-and-set).
func validateRefName(ref sdk.Ref) error {
	if err := sdk.ValidateProject(ref.Project); err != nil {
		return err
	}
	if err := sdk.ValidateName(ref.Name); err != nil {
		return err
	}
	if ref.Version < 0 {
		return sdk.Invalid("version", "must not be negative")
	}
	return nil
}
