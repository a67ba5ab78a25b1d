package gateway

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/policy"
)

// DefaultListen is the address used when the configuration names none.
const DefaultListen = "127.0.0.1:8270"

// Config is the gateway's configuration file (secretgate.yaml). Unknown
// fields are errors.
type Config struct {
	Listen   string          `yaml:"listen"`
	TLS      TLSConfig       `yaml:"tls"`
	Audit    AuditConfig     `yaml:"audit"`
	Backends []BackendConfig `yaml:"backends"`
	Projects []ProjectConfig `yaml:"projects"`
	Subjects []SubjectConfig `yaml:"subjects"`
	Bindings []BindingConfig `yaml:"bindings"`
	Auth     AuthConfig      `yaml:"auth"`
	// UI serves the embedded web UI at /ui/. Off unless set, as in Vault:
	// the API needs no browser-facing surface; --dev turns it on.
	UI bool `yaml:"ui"`
	// VaultAPI serves Vault's KV v2 API (vaultapi_config.go); off unless set.
	VaultAPI VaultAPIConfig `yaml:"vault_api"`
	// State shares routing, migrations and events between replicas
	// (config_state.go); empty = local files, one process.
	State StateConfig `yaml:"state"`
}

// TLSConfig turns on HTTPS when both files are set.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// KeyPair loads the certificate chain and its key. It is checked when the
// configuration is validated, so a server never announces that it listens
// on a TLS setup it cannot serve; the error names the field at fault and
// never quotes the files' contents.
func (t TLSConfig) KeyPair() (tls.Certificate, error) {
	certPEM, err := os.ReadFile(t.CertFile)
	if err != nil {
		return tls.Certificate{}, cfgErr("tls.cert_file", "cannot be read: %v", err)
	}
	if block, _ := pem.Decode(certPEM); block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, cfgErr("tls.cert_file", "%s holds no PEM CERTIFICATE block", t.CertFile)
	}
	keyPEM, err := os.ReadFile(t.KeyFile)
	if err != nil {
		return tls.Certificate{}, cfgErr("tls.key_file", "cannot be read: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, cfgErr("tls.key_file", "does not hold the private key of tls.cert_file: %v", err)
	}
	return cert, nil
}

// AuditConfig is the audit sink.
type AuditConfig struct {
	Path  string      `yaml:"path"`
	Fsync FsyncPolicy `yaml:"fsync"` // always | mutations (default) | interval
	// ReceiptSync: under the mutations policy, a write to a backend that
	// keeps audit receipts (receipts.go) has its records made durable by
	// the backend's commit, and the log is synced at most this long after
	// (a Go duration, 10ms to 1h; empty for DefaultReceiptSync), or "off":
	// the log is synced before the backend is touched and before the answer.
	ReceiptSync string `yaml:"receipt_sync"`
}

// DefaultReceiptSync is how long the audit log may lag the receipts of
// writes when audit.receipt_sync is not set.
const DefaultReceiptSync = 250 * time.Millisecond

// ReceiptSyncInterval is audit.receipt_sync (validated); on is false when
// receipts are off, or not used because the policy is not mutations.
func (a AuditConfig) ReceiptSyncInterval() (every time.Duration, on bool) {
	if a.Fsync != "" && a.Fsync != FsyncMutations {
		return 0, false
	}
	switch a.ReceiptSync {
	case "":
		return DefaultReceiptSync, true
	case "off":
		return 0, false
	}
	d, err := parseReceiptSync(a.ReceiptSync)
	return d, err == nil
}

func parseReceiptSync(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Millisecond || d > time.Hour {
		return 0, errors.New("must be off or a duration from 10ms to 1h, such as 250ms")
	}
	return d, nil
}

// BackendConfig is one storage backend served by a plugin process.
type BackendConfig struct {
	Name string `yaml:"name"`
	// Plugin is a built-in type (file, vault, aws, gcp) or the path of an
	// external executable built with plugin.Serve.
	Plugin   string            `yaml:"plugin"`
	Settings map[string]string `yaml:"settings"`
	// SHA256 is the hex checksum of an external plugin's executable.
	SHA256 string `yaml:"sha256"`
	// WatchPollInterval is how often the secrets someone watches are
	// listed to find writes made behind the gateway's back (watchpoll.go):
	// a Go duration, "0" to turn polling off, empty for the plugin kind's
	// default (DefaultWatchPollInterval).
	WatchPollInterval string `yaml:"watch_poll_interval"`
	// Cache turns on the backend's read cache (readcache.go); nil = off.
	Cache *CacheConfig `yaml:"cache"`
}

// MinWatchPollInterval keeps a typo ("1ms") from turning the poller into a
// load test of the backend.
const MinWatchPollInterval = 100 * time.Millisecond

// DefaultWatchPollInterval is the poll interval of a plugin kind when the
// configuration names none. The file backend's file belongs to its plugin
// process, so nothing writes it behind the gateway's back: no polling.
// Vault costs nothing per call; AWS and GCP charge or meter each listing
// call (docs/configuration.md, "Watching for changes").
func DefaultWatchPollInterval(plugin string) time.Duration {
	switch plugin {
	case "file":
		return 0
	case "vault":
		return 30 * time.Second
	case "postgres":
		// Other replicas write its tables behind this gateway's back, and
		// a listing is one indexed query.
		return 10 * time.Second
	default: // aws, gcp and external plugins
		return 60 * time.Second
	}
}

// PollInterval is the backend's effective watch poll interval; 0 = off.
// Validate has refused a malformed value, which reads as the default here.
func (b BackendConfig) PollInterval() time.Duration {
	if b.WatchPollInterval == "" {
		return DefaultWatchPollInterval(b.Plugin)
	}
	d, err := parsePollInterval(b.WatchPollInterval)
	if err != nil {
		return DefaultWatchPollInterval(b.Plugin)
	}
	return d
}

func parsePollInterval(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("must be a duration such as 30s or 2m, or 0 to turn polling off")
	case d == 0:
		return 0, nil
	case d < MinWatchPollInterval:
		return 0, fmt.Errorf("must be 0 (off) or at least %s", MinWatchPollInterval)
	}
	return d, nil
}

// External reports whether the backend's plugin is an executable path.
func (b BackendConfig) External() bool { return strings.ContainsRune(b.Plugin, '/') }

// ProjectConfig binds a project to a backend.
type ProjectConfig struct {
	Name    string `yaml:"name"`
	Backend string `yaml:"backend"`
}

// SubjectConfig is a principal, the hex SHA-256 of its bearer tokens (one,
// or several while a token is rotated; none for a subject reached only
// through an auth.jwt rule) and an optional expiry of those tokens.
type SubjectConfig struct {
	Name        string      `yaml:"name"`
	TokenSHA256 TokenHashes `yaml:"token_sha256"`
	ExpiresAt   time.Time   `yaml:"expires_at"`
}

// TokenHashes is token_sha256: one hex SHA-256, or a list of them.
type TokenHashes []string

// UnmarshalYAML accepts a scalar as a list of one.
func (t *TokenHashes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var one string
		if err := n.Decode(&one); err != nil {
			return err
		}
		*t = TokenHashes{one}
		return nil
	}
	var many []string
	if err := n.Decode(&many); err != nil {
		return err
	}
	*t = many
	return nil
}

// BindingConfig grants one role to one subject on one project ("*" = all),
// optionally narrowed to secret-name globs.
type BindingConfig struct {
	Subject string   `yaml:"subject"`
	Project string   `yaml:"project"`
	Role    string   `yaml:"role"`
	Secrets []string `yaml:"secrets"`
}

// Roles are the built-in role names.
var Roles = policy.Roles()
