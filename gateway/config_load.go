package gateway

// Reading the configuration: the file, the SECRETGATE_* overrides from the
// environment, ${VAR} expansion, and the checks that name the wrong field.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/policy"
	"github.com/secretgate/secretgate/sdk"
)

// LoadOptions tells the loader what the binary provides.
type LoadOptions struct {
	// Builtins are the built-in plugin types of the binary (from cmd, since
	// the gateway never imports a plugin package).
	Builtins []string
	// LookupEnv and Environ read the environment; os's when nil.
	LookupEnv func(string) (string, bool)
	Environ   func() []string
}

func (o LoadOptions) lookup(k string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv(k)
	}
	return os.LookupEnv(k)
}

func (o LoadOptions) environ() []string {
	if o.Environ != nil {
		return o.Environ()
	}
	return os.Environ()
}

// checkName reports a name that is missing, malformed (valid is false;
// rule says what it must be) or already used by another entry of its kind,
// and records it in seen.
func checkName(add func(field, format string, args ...any), field, kind, name string, valid bool, rule string, seen map[string]bool) {
	switch {
	case name == "":
		add(field, "is required")
	case !valid:
		add(field, "%q must be %s", name, rule)
	case seen[name]:
		add(field, "duplicate %s name %q", kind, name)
	}
	seen[name] = true
}

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string // e.g. "backends[1].plugin"
	Reason string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Reason }

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// LoadConfig reads, overrides from the environment, expands and validates a
// configuration file.
func LoadConfig(file string, opts LoadOptions) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data, opts)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML strictly, then applies ${VAR} expansion in
// backend settings, SECRETGATE_* overrides, defaults and validation.
func ParseConfig(data []byte, opts LoadOptions) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, cfgErr("config", "the file is empty")
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	// Expansion first: values from SECRETGATE_* variables are literal.
	if err := cfg.expand(opts); err != nil {
		return nil, err
	}
	if err := cfg.applyEnv(opts); err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if err := cfg.Validate(opts); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// EnvName is how a backend or setting name appears in a SECRETGATE_BACKENDS_
// variable: upper case, '-' and '.' become '_'.
func EnvName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == '.':
			return '_'
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// applyEnv applies SECRETGATE_LISTEN, SECRETGATE_AUDIT_PATH,
// SECRETGATE_AUDIT_FSYNC, SECRETGATE_AUDIT_RECEIPT_SYNC,
// SECRETGATE_TLS_CERT_FILE, SECRETGATE_TLS_KEY_FILE,
// SECRETGATE_UI
// and SECRETGATE_BACKENDS_<BACKEND>_<SETTING>. Environment values are taken
// literally (no ${VAR} expansion).
func (c *Config) applyEnv(opts LoadOptions) error {
	for _, o := range []struct {
		env string
		dst *string
	}{
		{"SECRETGATE_LISTEN", &c.Listen},
		{"SECRETGATE_AUDIT_PATH", &c.Audit.Path},
		{"SECRETGATE_AUDIT_RECEIPT_SYNC", &c.Audit.ReceiptSync},
		{"SECRETGATE_TLS_CERT_FILE", &c.TLS.CertFile},
		{"SECRETGATE_TLS_KEY_FILE", &c.TLS.KeyFile},
	} {
		if v, ok := opts.lookup(o.env); ok && v != "" {
			*o.dst = v
		}
	}
	if v, ok := opts.lookup("SECRETGATE_AUDIT_FSYNC"); ok && v != "" {
		c.Audit.Fsync = FsyncPolicy(v)
	}
	if v, ok := opts.lookup("SECRETGATE_UI"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return cfgErr("SECRETGATE_UI", "must be true or false")
		}
		c.UI = b
	}
	const prefix = "SECRETGATE_BACKENDS_"
	for _, kv := range opts.environ() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		// The longest backend name that matches wins, so that "my-vault"
		// and "my" can coexist.
		best := -1
		for i, b := range c.Backends {
			p := EnvName(b.Name) + "_"
			if strings.HasPrefix(rest, p) && len(rest) > len(p) && (best < 0 || len(p) > len(EnvName(c.Backends[best].Name))+1) {
				best = i
			}
		}
		if best < 0 {
			return cfgErr(k, "names no configured backend (use SECRETGATE_BACKENDS_<BACKEND>_<SETTING>)")
		}
		setting := strings.ToLower(rest[len(EnvName(c.Backends[best].Name))+1:])
		if c.Backends[best].Settings == nil {
			c.Backends[best].Settings = map[string]string{}
		}
		c.Backends[best].Settings[setting] = v
	}
	return nil
}

var varRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${VAR} in backend settings; an unset variable is an error
// naming the setting (silently empty credentials are worse than no start).
func (c *Config) expand(opts LoadOptions) error {
	for i := range c.Backends {
		for _, k := range sortedKeys(c.Backends[i].Settings) {
			v := c.Backends[i].Settings[k]
			var missing string
			out := varRe.ReplaceAllStringFunc(v, func(m string) string {
				name := m[2 : len(m)-1]
				val, ok := opts.lookup(name)
				if !ok && missing == "" {
					missing = name
				}
				return val
			})
			if missing != "" {
				return cfgErr(fmt.Sprintf("backends[%d].settings.%s", i, k), "environment variable %s is not set", missing)
			}
			c.Backends[i].Settings[k] = out
		}
	}
	return nil
}

var (
	backendNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	subjectNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$`)
	hexSHA256Re   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// Validate checks every field and reports every problem, each naming its field.
func (c *Config) Validate(opts LoadOptions) error {
	var errs []error
	add := func(field, format string, args ...any) { errs = append(errs, cfgErr(field, format, args...)) }

	if c.Audit.Path == "" {
		add("audit.path", "is required (audit fails closed, so it needs a file)")
	}
	switch c.Audit.Fsync {
	case "", FsyncAlways, FsyncMutations, FsyncInterval:
	default:
		add("audit.fsync", "must be always, mutations or interval")
	}
	if v := c.Audit.ReceiptSync; v != "" && v != "off" {
		if _, err := parseReceiptSync(v); err != nil {
			add("audit.receipt_sync", "%v", err)
		}
	}
	if c.TLS.Enabled() {
		if c.TLS.CertFile == "" {
			add("tls.cert_file", "is required when tls.key_file is set")
		}
		if c.TLS.KeyFile == "" {
			add("tls.key_file", "is required when tls.cert_file is set")
		}
		if c.TLS.CertFile != "" && c.TLS.KeyFile != "" {
			if _, err := c.TLS.KeyPair(); err != nil {
				errs = append(errs, err)
			}
		}
	}

	builtins := map[string]bool{}
	for _, b := range opts.Builtins {
		builtins[b] = true
	}
	backends := map[string]bool{}
	if len(c.Backends) == 0 {
		add("backends", "at least one backend is required")
	}
	for i, b := range c.Backends {
		f := fmt.Sprintf("backends[%d]", i)
		checkName(add, f+".name", "backend", b.Name, backendNameRe.MatchString(b.Name), "1-63 characters of a-z, 0-9 and '-'", backends)
		switch {
		case b.Plugin == "":
			add(f+".plugin", "is required: a built-in type (%s) or the path of an executable", strings.Join(sortedCopy(opts.Builtins), ", "))
		case b.External():
			if b.SHA256 == "" {
				add(f+".sha256", "is required for the external plugin %s", b.Plugin)
			} else if !hexSHA256Re.MatchString(b.SHA256) {
				add(f+".sha256", "must be 64 hex digits")
			}
		case !builtins[b.Plugin]:
			add(f+".plugin", "unknown plugin %q: built-in ones are %s; an external plugin is given by path", b.Plugin, strings.Join(sortedCopy(opts.Builtins), ", "))
		default:
			if b.SHA256 != "" {
				add(f+".sha256", "applies only to external plugins, %q is built in", b.Plugin)
			}
		}
		if b.WatchPollInterval != "" {
			if _, err := parsePollInterval(b.WatchPollInterval); err != nil {
				add(f+".watch_poll_interval", "%q %v", b.WatchPollInterval, err)
			}
		}
		if b.Cache != nil {
			b.Cache.validate(add, f+".cache")
		}
		if b.Plugin == "file" {
			if kf := b.Settings["key_file"]; kf != "" {
				if err := checkReadableIfExists(kf); err != nil {
					add(f+".settings.key_file", "%v", err)
				}
			}
		}
	}

	projects := map[string]bool{}
	if len(c.Projects) == 0 {
		add("projects", "at least one project is required")
	}
	for i, p := range c.Projects {
		f := fmt.Sprintf("projects[%d]", i)
		checkName(add, f+".name", "project", p.Name, sdk.ValidateProject(p.Name) == nil,
			"1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit", projects)
		switch {
		case p.Backend == "":
			add(f+".backend", "is required")
		case !backends[p.Backend]:
			add(f+".backend", "unknown backend %q", p.Backend)
		}
	}

	subjects := map[string]bool{}
	for i, s := range c.Subjects {
		f := fmt.Sprintf("subjects[%d]", i)
		checkName(add, f+".name", "subject", s.Name, subjectNameRe.MatchString(s.Name), "1-128 characters of A-Z, a-z, 0-9, '_', '.', '@' and '-'", subjects)
		for j, th := range s.TokenSHA256 {
			tf := f + ".token_sha256"
			if len(s.TokenSHA256) > 1 {
				tf = fmt.Sprintf("%s[%d]", tf, j)
			}
			if !hexSHA256Re.MatchString(th) {
				add(tf, "must be the 64 hex digits of the token's SHA-256 (see `secretgate token new`)")
			} else if h, err := policy.ParseTokenHash(th); err == nil && h == policy.HashToken("") {
				add(tf, "is the SHA-256 of the empty string: an empty token never authenticates (see `secretgate token new`)")
			}
		}
		if len(s.TokenSHA256) == 0 && !c.reachedByJWT(s.Name) {
			add(f+".token_sha256", "is required: subject %q has no token and no auth.jwt rule names it, so nobody could act as it", s.Name)
		}
	}
	c.validateAuth(add, subjects)
	c.VaultAPI.validate(add)
	c.State.validate(add)

	for i, b := range c.Bindings {
		f := fmt.Sprintf("bindings[%d]", i)
		switch {
		case b.Subject == "":
			add(f+".subject", "is required")
		case !subjects[b.Subject]:
			add(f+".subject", "unknown subject %q", b.Subject)
		}
		switch {
		case b.Project == "":
			add(f+".project", "is required (a project name or \"*\")")
		case b.Project != "*" && !projects[b.Project]:
			add(f+".project", "unknown project %q", b.Project)
		}
		if !contains(Roles, b.Role) {
			add(f+".role", "unknown role %q: must be one of %s", b.Role, strings.Join(Roles, ", "))
		}
		for j, g := range b.Secrets {
			if g == "" {
				add(fmt.Sprintf("%s.secrets[%d]", f, j), "must not be empty")
			} else if _, err := path.Match(g, ""); err != nil {
				add(fmt.Sprintf("%s.secrets[%d]", f, j), "%q is not a valid glob", g)
			}
		}
	}
	return errors.Join(errs...)
}

// checkReadableIfExists reports a key file that exists but cannot be read;
// a missing one is fine (the file plugin creates it).
func checkReadableIfExists(file string) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", file, unwrapPath(err))
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read %s: %w", file, unwrapPath(err))
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
