package file_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/plugins/file"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

func TestMain(m *testing.M) {
	plugintest.ServeIfChild(func() sdk.Backend { return file.New() })
	os.Exit(m.Run())
}

// fixture is a database path and a key file path in a fresh directory.
type fixture struct {
	dir, db, key string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	return fixture{dir: dir, db: filepath.Join(dir, "data", "secrets.db"), key: filepath.Join(dir, "keys", "master.key")}
}

func (f fixture) settings(extra ...string) map[string]string {
	s := map[string]string{file.SettingPath: f.db, file.SettingKeyFile: f.key}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(s, extra[i])
			continue
		}
		s[extra[i]] = extra[i+1]
	}
	return s
}

// open configures a new in-process backend and closes it when the test ends.
func open(t testing.TB, settings map[string]string) *file.Backend {
	t.Helper()
	b := file.NewBackend(hclog.NewNullLogger())
	require.NoError(t, b.Configure(context.Background(), settings))
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// configureErr configures a new backend that must fail, and returns the error.
func configureErr(t *testing.T, settings map[string]string) error {
	t.Helper()
	b := file.NewBackend(hclog.NewNullLogger())
	err := b.Configure(context.Background(), settings)
	require.Error(t, err, "Configure must fail")
	_ = b.Close()
	return err
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	buf := make([]byte, n)
	_, err := rand.Read(buf)
	require.NoError(t, err)
	return hex.EncodeToString(buf)
}

func write(t testing.TB, b sdk.Backend, project, name string, data map[string]string) sdk.Meta {
	t.Helper()
	m, err := b.Write(context.Background(), sdk.WriteRequest{Project: project, Name: name, Data: data, Mode: sdk.WriteUpsert})
	require.NoError(t, err, "Write %s/%s", project, name)
	return m
}

func read(t testing.TB, b sdk.Backend, project, name string, version int64) map[string]string {
	t.Helper()
	sec, err := b.Read(context.Background(), sdk.Ref{Project: project, Name: name, Version: version})
	require.NoError(t, err, "Read %s/%s v%d", project, name, version)
	return sec.Data
}

func TestConformanceInProcess(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return open(t, newFixture(t).settings())
	})
}

func TestConformanceThroughPlugin(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, newFixture(t).settings())
	})
}

func TestConformancePassphraseMaxVersions(t *testing.T) {
	t.Setenv("FILE_TEST_CONF_PASS", "correct horse battery staple")
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		f := newFixture(t)
		return open(t, f.settings(file.SettingKeyFile, "", file.SettingPassphraseEnv, "FILE_TEST_CONF_PASS", file.SettingMaxVersions, "3"))
	})
}

func TestSettingsErrors(t *testing.T) {
	t.Setenv("FILE_TEST_NOT_HEX", strings.Repeat("zz", 32))
	t.Setenv("FILE_TEST_SHORT", "abcd")
	f := newFixture(t)
	tests := []struct {
		name     string
		settings map[string]string
		field    string
	}{
		{"missing path", f.settings(file.SettingPath, ""), "path"},
		{"no key source", f.settings(file.SettingKeyFile, ""), "key_file"},
		{"two key sources", f.settings(file.SettingKeyEnv, "X"), "key_env"},
		{"three key sources", f.settings(file.SettingKeyEnv, "X", file.SettingPassphraseEnv, "Y"), "key_env"},
		{"two previous sources", f.settings(file.SettingPreviousKeyEnv, "X", file.SettingPreviousKeyFile, "/x"), "previous_key_env"},
		{"previous equals current", f.settings(file.SettingPreviousKeyFile, f.key), "previous_key_file"},
		{"unknown setting", f.settings("keyfile", "/x"), "keyfile"},
		{"bad max_versions", f.settings(file.SettingMaxVersions, "ten"), "max_versions"},
		{"negative max_versions", f.settings(file.SettingMaxVersions, "-1"), "max_versions"},
		{"key_env unset", f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_UNSET_VARIABLE"), "key_env"},
		{"key_env not hex", f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_NOT_HEX"), "key_env"},
		{"key_env short", f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_SHORT"), "key_env"},
		{"passphrase unset", f.settings(file.SettingKeyFile, "", file.SettingPassphraseEnv, "FILE_TEST_UNSET_VARIABLE"), "passphrase_env"},
		{"previous on a new database", f.settings(file.SettingPreviousKeyEnv, "FILE_TEST_SHORT"), "previous_key_env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := configureErr(t, tc.settings)
			require.ErrorIs(t, err, sdk.ErrInvalid)
			var fe *sdk.FieldError
			require.True(t, errors.As(err, &fe), "want a FieldError, got %v", err)
			require.Equal(t, tc.field, fe.Field, "error %q", err)
			require.NotContains(t, err.Error(), strings.Repeat("zz", 32), "an error must not echo a key")
		})
	}
}

func TestFilePermissionsAndKeyFileCreatedOnce(t *testing.T) {
	f := newFixture(t)
	var logs syncbuf.Buffer // Configure logs while the test reads
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	b := file.NewBackend(logger)
	require.NoError(t, b.Configure(context.Background(), f.settings()))
	t.Cleanup(func() { _ = b.Close() })
	require.Equal(t, f.key, b.CreatedKeyFile())
	write(t, b, "perm", "s", map[string]string{"k": "v"})

	for path, want := range map[string]os.FileMode{
		f.db: 0o600, f.key: 0o600, filepath.Dir(f.db): 0o700, filepath.Dir(f.key): 0o700,
	} {
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, want, st.Mode().Perm(), "mode of %s", path)
	}
	raw, err := os.ReadFile(f.key)
	require.NoError(t, err)
	require.Len(t, raw, 65, "a created key file is 64 hex digits and a newline")
	_, err = hex.DecodeString(strings.TrimSpace(string(raw)))
	require.NoError(t, err)

	// A second Configure (a restart) only reads the key file.
	require.NoError(t, b.Configure(context.Background(), f.settings()))
	require.Empty(t, b.CreatedKeyFile())
	require.Equal(t, map[string]string{"k": "v"}, read(t, b, "perm", "s", 0))
	require.Equal(t, 1, strings.Count(logs.String(), "created new key file"), "logs: %s", logs.String())
	after, err := os.ReadFile(f.key)
	require.NoError(t, err)
	require.Equal(t, raw, after, "an existing key file must never be rewritten")
	require.NotContains(t, logs.String(), strings.TrimSpace(string(raw)), "the key must never be logged")
}

func TestEnsureKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "master.key")
	created, err := file.EnsureKeyFile(path)
	require.NoError(t, err)
	require.True(t, created)
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	created, err = file.EnsureKeyFile(path)
	require.NoError(t, err)
	require.False(t, created)
	second, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, first, second)
}

func TestLoosePermissionsRefused(t *testing.T) {
	t.Run("key file", func(t *testing.T) {
		f := newFixture(t)
		require.NoError(t, os.MkdirAll(filepath.Dir(f.key), 0o700))
		require.NoError(t, os.WriteFile(f.key, []byte(randomHex(t, 32)+"\n"), 0o600))
		require.NoError(t, os.Chmod(f.key, 0o644))
		err := configureErr(t, f.settings())
		require.ErrorIs(t, err, sdk.ErrInvalid)
		require.Contains(t, err.Error(), "key_file")
		require.Contains(t, err.Error(), "chmod 600")
	})
	t.Run("database", func(t *testing.T) {
		f := newFixture(t)
		b := open(t, f.settings())
		require.NoError(t, b.Close())
		require.NoError(t, os.Chmod(f.db, 0o644))
		err := configureErr(t, f.settings())
		require.ErrorIs(t, err, sdk.ErrInvalid)
		require.Contains(t, err.Error(), "path")
	})
	t.Run("key file content", func(t *testing.T) {
		f := newFixture(t)
		require.NoError(t, os.MkdirAll(filepath.Dir(f.key), 0o700))
		require.NoError(t, os.WriteFile(f.key, []byte("not a key\n"), 0o600))
		err := configureErr(t, f.settings())
		require.ErrorIs(t, err, sdk.ErrInvalid)
		require.Contains(t, err.Error(), "64 hex digits")
	})
}

func TestRawKeyFileAccepted(t *testing.T) {
	f := newFixture(t)
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(f.key), 0o700))
	require.NoError(t, os.WriteFile(f.key, key, 0o600))
	b := open(t, f.settings())
	write(t, b, "raw", "s", map[string]string{"k": "v"})
	require.NoError(t, b.Close())
	// The same key as hex through key_env opens the same database.
	t.Setenv("FILE_TEST_RAW_AS_HEX", hex.EncodeToString(key))
	b2 := open(t, f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_RAW_AS_HEX"))
	require.Equal(t, map[string]string{"k": "v"}, read(t, b2, "raw", "s", 0))
}

func TestMissingKeyFileForExistingDatabase(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	write(t, b, "p", "s", map[string]string{"k": "v"})
	require.NoError(t, b.Close())
	require.NoError(t, os.Remove(f.key))
	err := configureErr(t, f.settings())
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.Contains(t, err.Error(), "refusing to make a new key")
	_, statErr := os.Stat(f.key)
	require.True(t, errors.Is(statErr, os.ErrNotExist), "no key file may be created for an existing database")
}

func TestWrongKEKOverwritesNothing(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	write(t, b, "p", "s", map[string]string{"k": "v"})
	require.NoError(t, b.Close())
	before, err := os.ReadFile(f.db)
	require.NoError(t, err)
	stBefore, err := os.Stat(f.db)
	require.NoError(t, err)

	t.Setenv("FILE_TEST_WRONG_KEY", randomHex(t, 32))
	t.Setenv("FILE_TEST_WRONG_PASS", "not the passphrase")
	for _, s := range []map[string]string{
		f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_WRONG_KEY"),
		f.settings(file.SettingKeyFile, "", file.SettingPassphraseEnv, "FILE_TEST_WRONG_PASS"),
		f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_WRONG_KEY", file.SettingPreviousPassphraseEnv, "FILE_TEST_WRONG_PASS"),
	} {
		err := configureErr(t, s)
		require.ErrorIs(t, err, file.ErrKeyMismatch)
		require.Contains(t, err.Error(), "key does not match this database")
	}
	after, err := os.ReadFile(f.db)
	require.NoError(t, err)
	require.True(t, bytes.Equal(before, after), "a wrong key must leave the database's bytes as they were")
	stAfter, err := os.Stat(f.db)
	require.NoError(t, err)
	require.Equal(t, stBefore.ModTime(), stAfter.ModTime())

	// And the right key still opens it.
	require.Equal(t, map[string]string{"k": "v"}, read(t, open(t, f.settings()), "p", "s", 0))
}

func TestSecondOpenerFailsClearly(t *testing.T) {
	f := newFixture(t)
	open(t, f.settings())
	start := time.Now()
	err := configureErr(t, f.settings())
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.Contains(t, err.Error(), "locked by another process")
	require.Less(t, time.Since(start), 30*time.Second)
}

func TestPruning(t *testing.T) {
	b := open(t, newFixture(t).settings(file.SettingMaxVersions, "3"))
	caps, err := b.Capabilities(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3, caps.MaxVersions)
	for i := 1; i <= 5; i++ {
		write(t, b, "p", "s", map[string]string{"n": strings.Repeat("x", i)})
	}
	for v := int64(1); v <= 2; v++ {
		_, err := b.Read(context.Background(), sdk.Ref{Project: "p", Name: "s", Version: v})
		require.ErrorIs(t, err, sdk.ErrNotFound, "version %d must be pruned", v)
	}
	for v := int64(3); v <= 5; v++ {
		require.Equal(t, strings.Repeat("x", int(v)), read(t, b, "p", "s", v)["n"])
	}
	vs, err := b.Versions(context.Background(), sdk.Ref{Project: "p", Name: "s"})
	require.NoError(t, err)
	require.Len(t, vs, 3)
	require.Equal(t, []int64{3, 4, 5}, []int64{vs[0].Version, vs[1].Version, vs[2].Version})
}

func TestKeepAllVersions(t *testing.T) {
	b := open(t, newFixture(t).settings(file.SettingMaxVersions, "0"))
	for i := 1; i <= 15; i++ {
		write(t, b, "p", "s", map[string]string{"n": strings.Repeat("x", i)})
	}
	require.Equal(t, "x", read(t, b, "p", "s", 1)["n"])
	caps, err := b.Capabilities(context.Background())
	require.NoError(t, err)
	require.Equal(t, 0, caps.MaxVersions)
}

func TestPageTokens(t *testing.T) {
	b := open(t, newFixture(t).settings())
	for _, n := range []string{"a1", "a2", "b1", "b2", "c1"} {
		write(t, b, "p", n, map[string]string{"k": "v"})
	}
	ctx := context.Background()
	page, err := b.List(ctx, sdk.ListRequest{Project: "p", Prefix: "b", PageSize: 1})
	require.NoError(t, err)
	require.Equal(t, "b1", page.Secrets[0].Name)
	require.NotEmpty(t, page.NextPageToken)
	page, err = b.List(ctx, sdk.ListRequest{Project: "p", Prefix: "b", PageSize: 1, PageToken: page.NextPageToken})
	require.NoError(t, err)
	require.Equal(t, "b2", page.Secrets[0].Name)
	require.Empty(t, page.NextPageToken, "b2 is the last name with prefix b")
	for _, tok := range []string{"garbage", "f1.!!!", "f1.", "f1.AAAA"} {
		_, err = b.List(ctx, sdk.ListRequest{Project: "p", PageToken: tok})
		require.ErrorIs(t, err, sdk.ErrInvalid, "token %q", tok)
	}
	page, err = b.List(ctx, sdk.ListRequest{Project: "empty"})
	require.NoError(t, err)
	require.Empty(t, page.Secrets)
}

func TestNotConfigured(t *testing.T) {
	b := file.New()
	_, err := b.Read(context.Background(), sdk.Ref{Project: "p", Name: "s"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.ErrorIs(t, b.Ping(context.Background()), sdk.ErrUnavailable)
}
