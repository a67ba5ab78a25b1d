package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway"
)

func TestDevConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	opts := gateway.LoadOptions{Builtins: []string{"file"}}
	cfg, tok, err := devConfig(serverFlags{dev: true, devDir: dir, devToken: "chosen"}, opts)
	require.NoError(t, err)
	require.Equal(t, "chosen", tok)
	require.Equal(t, gateway.DefaultListen, cfg.Listen)
	require.Equal(t, "default", cfg.Projects[0].Name)
	require.Equal(t, "file", cfg.Backends[0].Plugin)
	require.Equal(t, filepath.Join(dir, "master.key"), cfg.Backends[0].Settings["key_file"])
	sum := sha256.Sum256([]byte("chosen"))
	require.Equal(t, gateway.TokenHashes{hex.EncodeToString(sum[:])}, cfg.Subjects[0].TokenSHA256)
	require.DirExists(t, dir)

	cfg, tok2, err := devConfig(serverFlags{dev: true, devDir: dir, listen: "127.0.0.1:0"}, opts)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", cfg.Listen)
	require.Len(t, tok2, len("sgdev_")+43)
	_, tok3, err := devConfig(serverFlags{dev: true, devDir: dir}, opts)
	require.NoError(t, err)
	require.NotEqual(t, tok2, tok3, "random tokens differ")

	_, _, err = devConfig(serverFlags{dev: true, devDir: dir}, gateway.LoadOptions{})
	require.ErrorContains(t, err, "backends[0].plugin", "a build without the file plugin cannot run --dev")
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
