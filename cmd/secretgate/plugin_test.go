package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
)

// pluginServeChildEnv marks the re-executed test binary that runs
// `secretgate plugin serve` for TestPluginServeBuiltin.
const pluginServeChildEnv = "SECRETGATE_TEST_PLUGIN_SERVE_CHILD"

// TestPluginServeHelperProcess is not a test: it is the body of the child
// process that TestPluginServeBuiltin starts (the os/exec helper pattern).
func TestPluginServeHelperProcess(t *testing.T) {
	if os.Getenv(pluginServeChildEnv) != "1" {
		t.Skip("helper process for TestPluginServeBuiltin")
	}
	// Registered in the child only, so that the parent's list of built-in
	// plugins stays what the binary really has.
	registerBuiltin("cmdtest", func() sdk.Backend { return pingBackend{} })
	root := newRootCmd()
	root.SetArgs([]string{"plugin", "serve", "cmdtest"})
	if err := root.Execute(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

func TestPluginServeBuiltin(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := plugin.Launch(ctx, plugin.LaunchConfig{
		Path: exe,
		Args: []string{"-test.run=^TestPluginServeHelperProcess$"},
		Env:  []string{pluginServeChildEnv + "=1", "GORACE=atexit_sleep_ms=0"},
	})
	require.NoError(t, err)
	t.Cleanup(p.Kill)
	caps, err := p.Backend().Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, "cmdtest", caps.Backend)
	_, err = p.Backend().Read(ctx, sdk.Ref{Project: "p", Name: "n"})
	require.ErrorIs(t, err, sdk.ErrNotFound)
}

func TestPluginServeUnknownType(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"plugin", "serve", "no-such-backend"})
	err := root.Execute()
	require.ErrorContains(t, err, `unknown built-in plugin "no-such-backend"`)
	require.ErrorContains(t, err, "built-in plugins: ")
	for _, name := range builtinNames() {
		require.ErrorContains(t, err, name)
	}
}

func TestPluginSHA256(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin")
	require.NoError(t, os.WriteFile(path, []byte("abc"), 0o600))
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"plugin", "sha256", path})
	require.NoError(t, root.Execute())
	// SHA-256("abc"), the FIPS 180-2 test vector.
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n", out.String())

	root = newRootCmd()
	root.SetArgs([]string{"plugin", "sha256", filepath.Join(t.TempDir(), "missing")})
	require.Error(t, root.Execute())
}

// pingBackend is the least Backend that proves which plugin answered.
type pingBackend struct{}

func (pingBackend) Configure(context.Context, map[string]string) error { return nil }
func (pingBackend) Capabilities(context.Context) (sdk.Capabilities, error) {
	return sdk.Capabilities{Backend: "cmdtest"}, nil
}
func (pingBackend) List(context.Context, sdk.ListRequest) (sdk.ListPage, error) {
	return sdk.ListPage{}, nil
}
func (pingBackend) Describe(_ context.Context, r sdk.Ref) (sdk.Meta, error) {
	return sdk.Meta{}, sdk.NotFound(r.Project, r.Name)
}
func (pingBackend) Read(_ context.Context, r sdk.Ref) (sdk.Secret, error) {
	return sdk.Secret{}, sdk.NotFound(r.Project, r.Name)
}
func (pingBackend) Write(_ context.Context, w sdk.WriteRequest) (sdk.Meta, error) {
	return sdk.Meta{}, sdk.Invalid("name", "this backend stores nothing")
}
func (pingBackend) Delete(_ context.Context, r sdk.Ref) error { return sdk.NotFound(r.Project, r.Name) }
func (pingBackend) Versions(_ context.Context, r sdk.Ref) ([]sdk.VersionMeta, error) {
	return nil, sdk.NotFound(r.Project, r.Name)
}
func (pingBackend) Ping(context.Context) error { return nil }
