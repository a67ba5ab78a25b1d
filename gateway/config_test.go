package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

func goodYAML() string {
	return `listen: 127.0.0.1:8270
audit:
  path: ./audit.log
backends:
  - name: local
    plugin: file
    settings:
      path: ./secrets.db
      key_file: ./master.key
projects:
  - name: payments
    backend: local
subjects:
  - name: alice
    token_sha256: ` + hash + `
bindings:
  - subject: alice
    project: payments
    role: editor
    secrets: ["stripe-*"]
`
}

func env(m map[string]string) LoadOptions {
	return LoadOptions{
		Builtins:  []string{"aws", "file", "gcp", "vault"},
		LookupEnv: func(k string) (string, bool) { v, ok := m[k]; return v, ok },
		Environ: func() []string {
			var out []string
			for k, v := range m {
				out = append(out, k+"="+v)
			}
			return out
		},
	}
}

func TestParseConfigGood(t *testing.T) {
	cfg, err := ParseConfig([]byte(goodYAML()), env(nil))
	require.NoError(t, err)
	// A subject reached only through a JWT rule needs no token; a token
	// list and an expiry parse.
	withJWT := strings.Replace(goodYAML(), "    token_sha256: "+hash+"\n", "    token_sha256: ["+hash+", "+strings.Repeat("ab", 32)+"]\n    expires_at: 2027-06-30T00:00:00Z\n  - name: deploy-api\n", 1) +
		"auth:\n  jwt:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\n      discovery: true\n      audiences: [secretgate]\n      leeway: 30s\n      rules:\n        - subject: deploy-api\n          claims: {repository: acme/api, ref: refs/heads/main}\n"
	jc, err := ParseConfig([]byte(withJWT), env(nil))
	require.NoError(t, err)
	require.Len(t, jc.Subjects[0].TokenSHA256, 2)
	require.Equal(t, time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), jc.Subjects[0].ExpiresAt)
	require.Equal(t, 30*time.Second, jc.Auth.JWT[0].Leeway)
	require.Equal(t, "deploy-api", jc.Auth.JWT[0].Rules[0].Subject)
	require.Equal(t, "127.0.0.1:8270", cfg.Listen)
	require.Equal(t, "./secrets.db", cfg.Backends[0].Settings["path"])
	require.Equal(t, []string{"stripe-*"}, cfg.Bindings[0].Secrets)
	_, err = NewPolicy(cfg)
	require.NoError(t, err)
}

func TestConfigEnvAndExpansion(t *testing.T) {
	y := strings.Replace(goodYAML(), "path: ./secrets.db", "path: ${DATA}/secrets.db", 1)
	y += `  - subject: alice
    project: "*"
    role: viewer
`
	y = strings.Replace(y, "projects:", `  - name: my-vault
    plugin: vault
    settings:
      address: http://x
projects:`, 1)
	cfg, err := ParseConfig([]byte(y), env(map[string]string{
		"DATA":                               "/srv/sg",
		"SECRETGATE_LISTEN":                  "0.0.0.0:9000",
		"SECRETGATE_AUDIT_PATH":              "/var/log/sg.log",
		"SECRETGATE_BACKENDS_MY_VAULT_TOKEN": "${NOT_EXPANDED}",
		"SECRETGATE_BACKENDS_LOCAL_KEY_FILE": "/etc/sg.key",
	}))
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:9000", cfg.Listen)
	require.Equal(t, "/var/log/sg.log", cfg.Audit.Path)
	require.Equal(t, "/srv/sg/secrets.db", cfg.Backends[0].Settings["path"])
	require.Equal(t, "/etc/sg.key", cfg.Backends[0].Settings["key_file"])
	require.Equal(t, "${NOT_EXPANDED}", cfg.Backends[1].Settings["token"])
}

// audit.receipt_sync: a duration, off, or the default; receipts are used
// under the mutations policy only.
func TestReceiptSyncInterval(t *testing.T) {
	for _, tc := range []struct {
		cfg   AuditConfig
		every time.Duration
		on    bool
	}{
		{AuditConfig{}, DefaultReceiptSync, true},
		{AuditConfig{Fsync: FsyncMutations, ReceiptSync: "1s"}, time.Second, true},
		{AuditConfig{ReceiptSync: "off"}, 0, false},
		{AuditConfig{Fsync: FsyncAlways}, 0, false},
		{AuditConfig{Fsync: FsyncInterval, ReceiptSync: "1s"}, 0, false},
	} {
		every, on := tc.cfg.ReceiptSyncInterval()
		require.Equal(t, tc.on, on, "%+v", tc.cfg)
		require.Equal(t, tc.every, every, "%+v", tc.cfg)
	}
}

// watch_poll_interval: a duration, 0 for off, or the plugin kind's default.
func TestWatchPollInterval(t *testing.T) {
	tests := []struct {
		plugin, value string
		want          time.Duration
	}{
		{"file", "", 0},
		{"vault", "", 30 * time.Second},
		{"postgres", "", 10 * time.Second},
		{"aws", "", time.Minute},
		{"gcp", "", time.Minute},
		{"/opt/plugins/x", "", time.Minute},
		{"aws", "5m", 5 * time.Minute},
		{"vault", "0", 0},
		{"vault", "0s", 0},
		{"file", "2s", 2 * time.Second},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, BackendConfig{Plugin: tc.plugin, WatchPollInterval: tc.value}.PollInterval(), "%s %q", tc.plugin, tc.value)
	}
	cfg, err := ParseConfig([]byte(strings.Replace(goodYAML(), "plugin: file\n", "plugin: file\n    watch_poll_interval: 250ms\n", 1)), env(nil))
	require.NoError(t, err)
	require.Equal(t, 250*time.Millisecond, cfg.Backends[0].PollInterval())
}

func TestBadConfigsNameTheField(t *testing.T) {
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "key-is-a-dir")
	require.NoError(t, os.Mkdir(keyDir, 0o700))
	g := goodYAML()
	tests := []struct {
		name, yaml, field string
		env               map[string]string
	}{
		{"unknown field", g + "extra: 1\n", "extra", nil},
		{"unknown plugin", strings.Replace(g, "plugin: file", "plugin: filez", 1), "backends[0].plugin", nil},
		{"project without backend", strings.Replace(g, "    backend: local\n", "", 1), "projects[0].backend", nil},
		{"project unknown backend", strings.Replace(g, "    backend: local", "    backend: nope", 1), "projects[0].backend", nil},
		{"duplicate backend", strings.Replace(g, "projects:", "  - name: local\n    plugin: file\nprojects:", 1), "backends[1].name", nil},
		{"duplicate project", strings.Replace(g, "subjects:", "  - name: payments\n    backend: local\nsubjects:", 1), "projects[1].name", nil},
		{"duplicate subject", strings.Replace(g, "bindings:", "  - name: alice\n    token_sha256: "+hash+"\nbindings:", 1), "subjects[1].name", nil},
		{"bad project name", strings.Replace(g, "name: payments", "name: Pay_ments", 1), "projects[0].name", nil},
		{"unknown role", strings.Replace(g, "role: editor", "role: owner", 1), "bindings[0].role", nil},
		{"unknown subject", strings.Replace(g, "  - subject: alice", "  - subject: bob", 1), "bindings[0].subject", nil},
		{"bad token hash", strings.Replace(g, hash, "abc", 1), "subjects[0].token_sha256", nil},
		{"hash of the empty token", strings.Replace(g, hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 1), "subjects[0].token_sha256: is the SHA-256 of the empty string", nil},
		{"external without sha256", strings.Replace(g, "plugin: file", "plugin: /opt/plugins/x", 1), "backends[0].sha256", nil},
		{"unreadable key file", strings.Replace(g, "key_file: ./master.key", "key_file: "+keyDir, 1), "backends[0].settings.key_file", nil},
		{"unset variable", strings.Replace(g, "path: ./secrets.db", "path: ${NOPE_NOT_SET}", 1), "backends[0].settings.path", nil},
		{"no audit", strings.Replace(g, "  path: ./audit.log\n", "", 1), "audit.path", nil},
		{"receipt sync not a duration", strings.Replace(g, "  path: ./audit.log\n", "  path: ./audit.log\n  receipt_sync: soon\n", 1), "audit.receipt_sync", nil},
		{"receipt sync too short", strings.Replace(g, "  path: ./audit.log\n", "  path: ./audit.log\n  receipt_sync: 1ms\n", 1), "audit.receipt_sync", nil},
		{"receipt sync too long", g, "audit.receipt_sync", map[string]string{"SECRETGATE_AUDIT_RECEIPT_SYNC": "2h"}},
		{"unknown env backend", g, "SECRETGATE_BACKENDS_NOPE_X", map[string]string{"SECRETGATE_BACKENDS_NOPE_X": "1"}},
		{"bad glob", strings.Replace(g, `["stripe-*"]`, `["[x"]`, 1), "bindings[0].secrets[0]", nil},
		{"tls half", g + "tls:\n  cert_file: /x.pem\n", "tls.key_file", nil},
		{"poll interval not a duration", strings.Replace(g, "plugin: file\n", "plugin: file\n    watch_poll_interval: often\n", 1), "backends[0].watch_poll_interval", nil},
		{"poll interval too short", strings.Replace(g, "plugin: file\n", "plugin: file\n    watch_poll_interval: 1ms\n", 1), "backends[0].watch_poll_interval", nil},
		{"subject without token nor rule", strings.Replace(g, "    token_sha256: "+hash+"\n", "", 1), "subjects[0].token_sha256", nil},
		{"jwt unknown field", g + strings.Replace("auth:\n  jwt:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\n      discovery: true\n      audiences: [secretgate]\n      rules:\n        - subject: alice\n          claims: {repository: acme/api}\n", "      discovery: true\n", "      discovery: true\n      audience: [x]\n", 1), "audience", nil},
		{"jwt rule unknown subject", g + strings.Replace("auth:\n  jwt:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\n      discovery: true\n      audiences: [secretgate]\n      rules:\n        - subject: alice\n          claims: {repository: acme/api}\n", "subject: alice", "subject: bob", 1), "auth.jwt[0].rules[0].subject", nil},
		{"jwt plain http issuer", g + strings.Replace("auth:\n  jwt:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\n      discovery: true\n      audiences: [secretgate]\n      rules:\n        - subject: alice\n          claims: {repository: acme/api}\n", "https://token.actions", "http://token.actions", 1), "auth.jwt[0].issuer", nil},
		{"jwt hmac algorithm", g + strings.Replace("auth:\n  jwt:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\n      discovery: true\n      audiences: [secretgate]\n      rules:\n        - subject: alice\n          claims: {repository: acme/api}\n", "      discovery: true\n", "      discovery: true\n      algorithms: [HS256]\n", 1), "auth.jwt[0].algorithms", nil},
		{"jwt no audience", g + strings.Replace("auth:\n  jwt:\n    - name: github\n      issuer: https://token.actions.githubusercontent.com\n      discovery: true\n      audiences: [secretgate]\n      rules:\n        - subject: alice\n          claims: {repository: acme/api}\n", "      audiences: [secretgate]\n", "", 1), "auth.jwt[0].audiences", nil},
		{"token list with a bad entry", strings.Replace(g, "    token_sha256: "+hash, "    token_sha256: ["+hash+", abc]", 1), "subjects[0].token_sha256[1]", nil},
		{"empty", "", "config", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), env(tc.env))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestRoutingSwap(t *testing.T) {
	r := NewRouting(map[string]string{"a": "one"})
	rt, ok := r.Lookup("a")
	require.True(t, ok)
	require.Equal(t, "one", rt.Backend)
	require.NoError(t, r.SetBackend("a", "two"))
	require.NoError(t, r.SetReadOnly("a", true))
	rt, _ = r.Lookup("a")
	require.Equal(t, Route{Project: "a", Backend: "two", ReadOnly: true}, rt)
	require.Error(t, r.SetBackend("nope", "x"))
	_, ok = r.Lookup("nope")
	require.False(t, ok)
}

func TestFileAuditor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	path := filepath.Join(dir, "audit.log")
	a, err := OpenFileAuditor(path, "")
	require.NoError(t, err)
	require.NoError(t, a.Write(AuditRecord{RequestID: "r1", Subject: "s", Action: ActionCreate, Phase: PhaseIntent}))
	require.NoError(t, a.Write(AuditRecord{RequestID: "r1", Subject: "s", Action: ActionCreate, Phase: PhaseOutcome, Outcome: "ok", Version: 1}))
	require.NoError(t, a.Close())
	require.Error(t, a.Write(AuditRecord{}))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[1], `"phase":"outcome","outcome":"ok"`)
	require.Contains(t, lines[0], `"time":"`)

	full, err := OpenFileAuditor("/dev/full", FsyncMutations)
	require.NoError(t, err)
	require.Error(t, full.Write(AuditRecord{Action: ActionRead, Phase: PhaseOutcome}))
	_ = full.Close()
}

func TestCacheConfig(t *testing.T) {
	withCache := func(block string) string {
		return strings.Replace(goodYAML(), "plugin: file\n", "plugin: file\n    cache: "+block+"\n", 1)
	}
	good := []struct {
		name, block string
		want        *cacheSettings // nil: no cache
	}{
		{"absent", "", nil},
		{"empty block takes the defaults", "{}", &cacheSettings{ttl: 30 * time.Second, maxBytes: 64 << 20, staleIfError: time.Hour}},
		{"the issue's example", "{ttl: 30s, max_bytes: 64MiB, stale_if_error: 1h}", &cacheSettings{ttl: 30 * time.Second, maxBytes: 64 << 20, staleIfError: time.Hour}},
		{"decimal units", "{max_bytes: 100MB}", &cacheSettings{ttl: 30 * time.Second, maxBytes: 100_000_000, staleIfError: time.Hour}},
		{"bare bytes, as a YAML integer", "{max_bytes: 2097152}", &cacheSettings{ttl: 30 * time.Second, maxBytes: 2 << 20, staleIfError: time.Hour}},
		{"GiB, ttl 0 and no stale serving", "{ttl: 0, max_bytes: 1GiB, stale_if_error: 0}", &cacheSettings{maxBytes: 1 << 30}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			y := goodYAML()
			if tc.block != "" {
				y = withCache(tc.block)
			}
			cfg, err := ParseConfig([]byte(y), env(nil))
			require.NoError(t, err)
			if tc.want == nil {
				require.Nil(t, cfg.Backends[0].Cache)
				return
			}
			require.NotNil(t, cfg.Backends[0].Cache)
			got, err := cfg.Backends[0].Cache.settings()
			require.NoError(t, err)
			require.Equal(t, *tc.want, got)
		})
	}
	bad := []struct{ name, block, field string }{
		{"ttl not a duration", "{ttl: soon}", "backends[0].cache.ttl"},
		{"ttl negative", "{ttl: -5s}", "backends[0].cache.ttl"},
		{"ttl beyond a day", "{ttl: 30h}", "backends[0].cache.ttl"},
		{"size without a number", "{max_bytes: MiB}", "backends[0].cache.max_bytes"},
		{"unknown unit", "{max_bytes: 64mb}", "backends[0].cache.max_bytes"},
		{"too small", "{max_bytes: 64KiB}", "backends[0].cache.max_bytes"},
		{"overflows", "{max_bytes: 99999999999999999999GiB}", "backends[0].cache.max_bytes"},
		{"stale_if_error not a duration", "{stale_if_error: forever}", "backends[0].cache.stale_if_error"},
		{"stale_if_error beyond a week", "{stale_if_error: 200h}", "backends[0].cache.stale_if_error"},
		{"unknown field", "{tll: 30s}", "tll"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(withCache(tc.block)), env(nil))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field)
		})
	}
	// Every bad field is reported, each under its own name.
	_, err := ParseConfig([]byte(withCache("{ttl: x, max_bytes: y, stale_if_error: z}")), env(nil))
	require.Error(t, err)
	for _, f := range []string{"backends[0].cache.ttl", "backends[0].cache.max_bytes", "backends[0].cache.stale_if_error"} {
		require.Contains(t, err.Error(), f)
	}
}
