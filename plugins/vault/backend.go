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

// Describe reads the latest version for its keys, and the metadata for the
// creation time unless the latest version is version 1.
func (b *Backend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := b.configured(); err != nil {
		return sdk.Meta{}, err
	}
	if err := validateRefName(ref); err != nil {
		return sdk.Meta{}, err
	}
	v, err := b.readData(ctx, ref.Project, ref.Name, 0)
	if err != nil {
		return sdk.Meta{}, err
	}
	if v == nil {
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	return b.metaOf(ctx, ref, v)
}

// metaOf builds the Meta of a version read from the data endpoint.
func (b *Backend) metaOf(ctx context.Context, ref sdk.Ref, v *kvVersion) (sdk.Meta, error) {
	m := sdk.Meta{
		Project:   ref.Project,
		Name:      ref.Name,
		Keys:      sdk.SortedKeys(v.data),
		Version:   v.version,
		Labels:    v.labels,
		UpdatedAt: v.created,
	}
	if v.version == 1 {
		m.CreatedAt = v.created
		return m, nil
	}
	if created, ok := b.created.get(ref.Project, ref.Name, v.version, v.created); ok {
		m.CreatedAt = created
		return m, nil
	}
	km, err := b.readMeta(ctx, ref.Project, ref.Name)
	if err != nil {
		return sdk.Meta{}, err
	}
	if km == nil { // deleted since the data read
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	m.CreatedAt = km.created
	if km.current == v.version {
		b.created.put(ref.Project, ref.Name, createdEntry{version: v.version, versionCreated: v.created, createdAt: km.created})
	}
	return m, nil
}

// Read reads one version. A version deleted in Vault but not destroyed
// (`vault kv delete`) reads as not found, like a pruned one.
func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := b.configured(); err != nil {
		return sdk.Secret{}, err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	v, err := b.readData(ctx, ref.Project, ref.Name, ref.Version)
	if err != nil {
		return sdk.Secret{}, err
	}
	if v == nil {
		if ref.Version == 0 {
			return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
		}
		km, err := b.readMeta(ctx, ref.Project, ref.Name)
		if err != nil {
			return sdk.Secret{}, err
		}
		if km == nil {
			return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
		}
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, ref.Version)
	}
	if v.deleted {
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, v.version)
	}
	m, err := b.metaOf(ctx, ref, v)
	if err != nil {
		return sdk.Secret{}, err
	}
	return sdk.Secret{Meta: m, Data: v.data}, nil
}

// Write stores a new version. It reads the metadata first (existence, the
// current version), then writes with KV v2's check-and-set, so that a
// concurrent writer can never be overwritten unseen: cas=0 for a creation,
// cas=ExpectedVersion when given, else cas=<current version just read> and
// a fresh start when someone wrote in between. Labels and max_versions go to
// the metadata in a second request, after the data.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.configured(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	p, n := req.Project, req.Name
	for try := 0; try < maxWriteTries; try++ {
		km, err := b.readMeta(ctx, p, n)
		if err != nil {
			return sdk.Meta{}, err
		}
		exists := km != nil
		switch {
		case req.Mode == sdk.WriteCreate && exists:
			return sdk.Meta{}, sdk.AlreadyExists(p, n)
		case req.Mode == sdk.WriteReplace && !exists:
			return sdk.Meta{}, sdk.NotFound(p, n)
		case req.ExpectedVersion > 0 && !exists:
			return sdk.Meta{}, sdk.NotFound(p, n)
		case req.ExpectedVersion > 0 && km.current != req.ExpectedVersion:
			return sdk.Meta{}, sdk.VersionMismatch(p, n, req.ExpectedVersion, km.current)
		}
		cas, capability := int64(0), capCreate
		if exists {
			cas, capability = km.current, capUpdate
		}
		version, created, labels, err := b.writeData(ctx, p, n, req.Data, cas, capability)
		if errors.Is(err, errCASMismatch) {
			switch {
			case req.Mode == sdk.WriteCreate:
				return sdk.Meta{}, sdk.AlreadyExists(p, n)
			case req.ExpectedVersion > 0:
				return sdk.Meta{}, sdk.VersionMismatch(p, n, req.ExpectedVersion, 0)
			}
			continue // another writer got in between: read again
		}
		if err != nil {
			return sdk.Meta{}, err
		}

		metaBody := map[string]any{}
		if req.Labels != nil {
			metaBody["custom_metadata"] = encodeLabels(req.Labels)
			labels = sdk.CloneData(req.Labels)
		}
		if b.cfg.maxVersions > 0 && (km == nil || km.maxVersions != b.cfg.maxVersions) {
			metaBody["max_versions"] = b.cfg.maxVersions
		}
		if len(metaBody) > 0 {
			if err := b.writeMeta(ctx, p, n, metaBody); err != nil {
				return sdk.Meta{}, fmt.Errorf("vault: version %d of %q in project %q is written but its labels or max_versions are not: %w", version, n, p, err)
			}
		}
		m := sdk.Meta{
			Project: p, Name: n, Keys: sdk.SortedKeys(req.Data), Version: version,
			Labels: labels, CreatedAt: created, UpdatedAt: created,
		}
		if version > 1 && km != nil {
			m.CreatedAt = km.created
			b.created.put(p, n, createdEntry{version: version, versionCreated: created, createdAt: km.created})
		}
		return m, nil
	}
	return sdk.Meta{}, fmt.Errorf("vault: secret %q in project %q: %d writers in a row got in first; try again: %w", n, p, maxWriteTries, sdk.ErrUnavailable)
}

// Delete removes the metadata path: every version goes and the name is free
// again. KV v2 has no conditional delete, so with ref.Version > 0 the
// version is checked just before the delete; a write landing in between is
// deleted with the rest.
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.configured(); err != nil {
		return err
	}
	if err := validateRefName(ref); err != nil {
		return err
	}
	km, err := b.readMeta(ctx, ref.Project, ref.Name)
	if err != nil {
		return err
	}
	if km == nil {
		return sdk.NotFound(ref.Project, ref.Name)
	}
	if ref.Version > 0 && km.current != ref.Version {
		return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, km.current)
	}
	b.created.forget(ref.Project, ref.Name)
	return b.deleteMeta(ctx, ref.Project, ref.Name)
}

// Versions lists the versions whose data can still be read, oldest first:
// not pruned by max_versions, not deleted or destroyed in Vault.
func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.configured(); err != nil {
		return nil, err
	}
	if err := validateRefName(ref); err != nil {
		return nil, err
	}
	km, err := b.readMeta(ctx, ref.Project, ref.Name)
	if err != nil {
		return nil, err
	}
	if km == nil {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	if km.live == nil {
		return []sdk.VersionMeta{}, nil
	}
	return km.live, nil
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
