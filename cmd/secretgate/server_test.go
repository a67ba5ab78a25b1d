package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway"
)

func TestDevConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	opts := gateway.LoadOptions{Builtins: []string{"file"}}
	cfg, tok, err := devConfig(serverFlags{dev: true, devDir: dir, devToken: "chosen"}, opts)
	require.NoError(t, err)
	require.Equal(t, "chosen", tok.value)
	require.Equal(t, "from --dev-token, not saved", tok.origin())
	require.NoFileExists(t, filepath.Join(dir, devTokenFile), "--dev-token is not saved")
	require.Equal(t, gateway.DefaultListen, cfg.Listen)
	require.Equal(t, "default", cfg.Projects[0].Name)
	require.Equal(t, "file", cfg.Backends[0].Plugin)
	require.Equal(t, filepath.Join(dir, "master.key"), cfg.Backends[0].Settings["key_file"])
	sum := sha256.Sum256([]byte("chosen"))
	require.Equal(t, gateway.TokenHashes{hex.EncodeToString(sum[:])}, cfg.Subjects[0].TokenSHA256)
	require.DirExists(t, dir)

	// The first start without --dev-token makes a token and keeps it, 0600.
	cfg, tok2, err := devConfig(serverFlags{dev: true, devDir: dir, listen: "127.0.0.1:0"}, opts)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", cfg.Listen)
	require.Len(t, tok2.value, len("sgdev_")+43)
	path := filepath.Join(dir, devTokenFile)
	require.Equal(t, "new, kept in "+path+" for the next start", tok2.origin())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, tok2.value+"\n", string(b))

	// The next start reuses it; another directory gets another token.
	cfg, tok3, err := devConfig(serverFlags{dev: true, devDir: dir}, opts)
	require.NoError(t, err)
	require.Equal(t, tok2.value, tok3.value)
	require.Equal(t, "reused from "+path, tok3.origin())
	sum = sha256.Sum256([]byte(tok2.value))
	require.Equal(t, gateway.TokenHashes{hex.EncodeToString(sum[:])}, cfg.Subjects[0].TokenSHA256)
	_, tok4, err := devConfig(serverFlags{dev: true, devDir: filepath.Join(t.TempDir(), "other")}, opts)
	require.NoError(t, err)
	require.NotEqual(t, tok2.value, tok4.value, "random tokens differ")

	// --dev-token still wins over the saved token, which it leaves alone.
	_, tok5, err := devConfig(serverFlags{dev: true, devDir: dir, devToken: "chosen"}, opts)
	require.NoError(t, err)
	require.Equal(t, "chosen", tok5.value)
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, tok2.value+"\n", string(b))

	other := filepath.Join(t.TempDir(), "nofile")
	_, _, err = devConfig(serverFlags{dev: true, devDir: other}, gateway.LoadOptions{})
	require.ErrorContains(t, err, "backends[0].plugin", "a build without the file plugin cannot run --dev")
	require.NoFileExists(t, filepath.Join(other, devTokenFile), "a refused start saves no token")
}

// --dev puts the read cache, with its defaults, in front of its file
// backend unless --dev-cache=false; the flag means nothing without --dev.
func TestDevConfigReadCache(t *testing.T) {
	opts := gateway.LoadOptions{Builtins: []string{"file"}}
	for _, tc := range []struct {
		args  []string
		cache bool
	}{
		{[]string{"--dev"}, true},
		{[]string{"--dev", "--dev-cache=true"}, true},
		{[]string{"--dev", "--dev-cache=false"}, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := newServerCmd()
			require.NoError(t, cmd.ParseFlags(tc.args))
			f := serverFlagsOf(t, cmd)
			f.devDir, f.devToken = t.TempDir(), "chosen"
			cfg, _, err := devConfig(f, opts)
			require.NoError(t, err)
			if tc.cache {
				require.Equal(t, &gateway.CacheConfig{}, cfg.Backends[0].Cache, "the defaults of docs/configuration.md")
			} else {
				require.Nil(t, cfg.Backends[0].Cache)
			}
		})
	}

	cmd := newServerCmd()
	cmd.SetArgs([]string{"--config", "x.yaml", "--dev-cache=false"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	require.ErrorContains(t, err, "--dev-cache needs --dev")
	require.Equal(t, exitConfig, exitCode(err))
}

// serverFlagsOf reads back the flags cmd parsed, as RunE would see them.
func serverFlagsOf(t *testing.T, cmd *cobra.Command) serverFlags {
	t.Helper()
	fl := cmd.Flags()
	var f serverFlags
	var err error
	f.dev, err = fl.GetBool("dev")
	require.NoError(t, err)
	f.devCache, err = fl.GetBool("dev-cache")
	require.NoError(t, err)
	return f
}

func TestDevTokenFileRefused(t *testing.T) {
	opts := gateway.LoadOptions{Builtins: []string{"file"}}
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"readable by others", "sgdev_abc\n", 0o644, "has mode 0644"},
		{"empty", "", 0o600, "does not hold one token"},
		{"two words", "sgdev_abc sgdev_def\n", 0o600, "does not hold one token"},
		{"too long", strings.Repeat("a", devTokenMaxBytes+1), 0o600, "does not hold one token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, devTokenFile)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			require.NoError(t, os.Chmod(path, tc.mode))
			_, _, err := devConfig(serverFlags{dev: true, devDir: dir}, opts)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, path)
			require.NotContains(t, err.Error(), "sgdev_abc", "the file's content is not repeated")
		})
	}
}

func TestServerFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags serverFlags
		want  string
	}{
		{"nothing", serverFlags{}, "--config"},
		{"both", serverFlags{dev: true, config: "x.yaml"}, "exclude"},
		{"missing file", serverFlags{config: filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := runServer(context.Background(), &out, &errb, tc.flags)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, exitConfig, exitCode(err))
			require.Empty(t, out.String())
		})
	}
}
