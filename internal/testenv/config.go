package testenv

// The configuration a test server starts with: the Options a test writes,
// and the YAML they become.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// Backend is one configured backend.
type Backend struct {
	Name     string
	Plugin   string
	Settings map[string]string
	SHA256   string
	// WatchPollInterval is the backend's watch_poll_interval; "" = default.
	WatchPollInterval string
}

// Project binds a project to a backend.
type Project struct{ Name, Backend string }

// Grant is one binding of a subject.
type Grant struct {
	Project string // a project or "*"
	Role    string
	Secrets []string
}

// Subject is a principal; Start makes a random token for it.
type Subject struct {
	Name   string
	Grants []Grant
}

// Options describe the server to start. Zero values give one file backend
// "local" in the test's temp dir, project "default" on it, and a subject
// "admin" with role admin on every project.
type Options struct {
	// UI turns on the embedded web UI (config `ui: true`).
	UI       bool
	Backends []Backend
	Projects []Project
	Subjects []Subject
	// AuditPath defaults to <Dir>/audit.log.
	AuditPath string
	// AuditReceiptSync is audit.receipt_sync; the gateway's default when "".
	AuditReceiptSync string
	// Env is added to the server's environment (SECRETGATE_* of the test
	// process are never inherited).
	Env []string
	// Args are extra arguments of `secretgate server`.
	Args []string
	// Dir holds the config, logs and the file backend; t.TempDir() when "".
	Dir string
	// TLS, when set, turns on HTTPS (the config's tls section).
	TLS *TLSFiles
}

// TLSFiles are the PEM files of an HTTPS server.
type TLSFiles struct {
	CertFile, KeyFile string
	// CAFile, when set, is the CA that Server.Do, Try and CLI trust.
	CAFile string
}

// FileBackend is a file backend whose database and key file live in dir.
func FileBackend(name, dir string) Backend {
	return Backend{Name: name, Plugin: "file", Settings: map[string]string{
		"path":     filepath.Join(dir, name+".db"),
		"key_file": filepath.Join(dir, name+".key"),
	}}
}

// NewToken returns a random bearer token.
func NewToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "sgt_" + hex.EncodeToString(b[:])
}

// TokenSHA256 is the config's token_sha256 of a token.
func TokenSHA256(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

type yamlConfig struct {
	Listen   string        `yaml:"listen"`
	TLS      *yamlTLS      `yaml:"tls,omitempty"`
	Audit    yamlAudit     `yaml:"audit"`
	Backends []yamlBackend `yaml:"backends"`
	Projects []yamlProject `yaml:"projects"`
	Subjects []yamlSubject `yaml:"subjects"`
	Bindings []yamlBinding `yaml:"bindings"`
	UI       bool          `yaml:"ui,omitempty"`
}

type yamlTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type yamlAudit struct {
	Path        string `yaml:"path"`
	ReceiptSync string `yaml:"receipt_sync,omitempty"`
}

type yamlBackend struct {
	Name     string            `yaml:"name"`
	Plugin   string            `yaml:"plugin"`
	Settings map[string]string `yaml:"settings,omitempty"`
	SHA256   string            `yaml:"sha256,omitempty"`
	// WatchPollInterval, as Backend's.
	WatchPollInterval string `yaml:"watch_poll_interval,omitempty"`
}

type yamlProject struct {
	Name    string `yaml:"name"`
	Backend string `yaml:"backend"`
}

type yamlSubject struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
}

type yamlBinding struct {
	Subject string   `yaml:"subject"`
	Project string   `yaml:"project"`
	Role    string   `yaml:"role"`
	Secrets []string `yaml:"secrets,omitempty"`
}

// WriteConfig writes the YAML configuration of opts into opts.Dir (which
// must be set) and returns its path and each subject's token.
func WriteConfig(t testing.TB, opts Options) (string, map[string]string) {
	t.Helper()
	require.NotEmpty(t, opts.Dir, "WriteConfig needs Options.Dir")
	if len(opts.Backends) == 0 {
		opts.Backends = []Backend{FileBackend("local", opts.Dir)}
	}
	if len(opts.Projects) == 0 {
		opts.Projects = []Project{{Name: "default", Backend: opts.Backends[0].Name}}
	}
	if len(opts.Subjects) == 0 {
		opts.Subjects = []Subject{{Name: "admin", Grants: []Grant{{Project: "*", Role: "admin"}}}}
	}
	if opts.AuditPath == "" {
		opts.AuditPath = filepath.Join(opts.Dir, "audit.log")
	}
	cfg := yamlConfig{Listen: "127.0.0.1:0", Audit: yamlAudit{Path: opts.AuditPath, ReceiptSync: opts.AuditReceiptSync}, UI: opts.UI}
	if opts.TLS != nil {
		cfg.TLS = &yamlTLS{CertFile: opts.TLS.CertFile, KeyFile: opts.TLS.KeyFile}
	}
	for _, b := range opts.Backends {
		cfg.Backends = append(cfg.Backends, yamlBackend(b))
	}
	for _, p := range opts.Projects {
		cfg.Projects = append(cfg.Projects, yamlProject(p))
	}
	tokens := map[string]string{}
	for _, s := range opts.Subjects {
		tok := NewToken()
		tokens[s.Name] = tok
		cfg.Subjects = append(cfg.Subjects, yamlSubject{Name: s.Name, TokenSHA256: TokenSHA256(tok)})
		for _, g := range s.Grants {
			cfg.Bindings = append(cfg.Bindings, yamlBinding{Subject: s.Name, Project: g.Project, Role: g.Role, Secrets: g.Secrets})
		}
	}
	data, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(opts.Dir, "secretgate.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path, tokens
}
