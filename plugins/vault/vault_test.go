package vault

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

func TestAppRoleLogin(t *testing.T) {
	s := vaulttest.Start(t)
	roleID, secretIDFile := enableAppRole(t, s.Client(t), "1h", "4h")
	b := plugintest.Start(t, map[string]string{
		"address": s.Addr, "role_id": roleID, "secret_id_file": secretIDFile,
	})
	ctx := t.Context()
	m, err := b.Write(ctx, sampleWrite("approle", "db", sdk.WriteCreate))
	require.NoError(t, err)
	require.Equal(t, int64(1), m.Version)
	sec, err := b.Read(ctx, sdk.Ref{Project: "approle", Name: "db"})
	require.NoError(t, err)
	require.Equal(t, "app", sec.Data["username"])
	require.NoError(t, b.Ping(ctx))
}

func TestAppRoleWrongSecretIDFailsConfigure(t *testing.T) {
	s := vaulttest.Start(t)
	roleID, _ := enableAppRole(t, s.Client(t), "1h", "4h")
	b := newBackend()
	t.Cleanup(b.Close)
	err := b.Configure(t.Context(), map[string]string{"address": s.Addr, "role_id": roleID, "secret_id": "not-the-secret-id"})
	require.ErrorIs(t, err, sdk.ErrPermission)
	require.NotContains(t, err.Error(), "not-the-secret-id")
}

// A token that expires (max TTL 4s) is replaced by a fresh login, and calls
// keep working throughout.
func TestTokenExpiryLogsInAgain(t *testing.T) {
	s := vaulttest.Start(t)
	roleID, secretIDFile := enableAppRole(t, s.Client(t), "2s", "4s")
	settings := map[string]string{"address": s.Addr, "role_id": roleID, "secret_id_file": secretIDFile}

	// Through a plugin process: every call in 10s (2.5 token lifetimes)
	// succeeds.
	p := plugintest.Start(t, settings)
	// In process: the login generation shows the fresh logins.
	b := inProcess(t, settings)
	gen0 := b.auth.gen.Load()

	ctx := t.Context()
	_, err := p.Write(ctx, sampleWrite("expiry", "db", sdk.WriteCreate))
	require.NoError(t, err)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		_, err := p.Read(ctx, sdk.Ref{Project: "expiry", Name: "db"})
		require.NoError(t, err, "plugin read while tokens expire")
		_, err = b.Describe(ctx, sdk.Ref{Project: "expiry", Name: "db"})
		require.NoError(t, err, "in-process describe while tokens expire")
	}
	require.GreaterOrEqual(t, b.auth.gen.Load()-gen0, uint64(2), "the backend must have logged in again as tokens reached their max TTL")
}

// A token revoked under the plugin's feet (403 on the next call) leads to
// one fresh login and a successful retry.
func TestRevokedTokenLogsInAgain(t *testing.T) {
	s := vaulttest.Start(t)
	root := s.Client(t)
	roleID, secretIDFile := enableAppRole(t, root, "1h", "4h")
	b := inProcess(t, map[string]string{"address": s.Addr, "role_id": roleID, "secret_id_file": secretIDFile})
	ctx := t.Context()
	_, err := b.Write(ctx, sampleWrite("revoked", "db", sdk.WriteCreate))
	require.NoError(t, err)

	gen := b.auth.gen.Load()
	require.NoError(t, root.Auth().Token().RevokeTreeWithContext(ctx, b.client.Token()))
	_, err = b.Read(ctx, sdk.Ref{Project: "revoked", Name: "db"})
	require.NoError(t, err)
	require.Equal(t, gen+1, b.auth.gen.Load())
}

// A static token that is revoked cannot be replaced: the error says so and
// wraps ErrPermission.
func TestRevokedStaticToken(t *testing.T) {
	s := vaulttest.Start(t)
	root := s.Client(t)
	putPolicy(t, root)
	tok := policyToken(t, root, "secretgate")
	b := plugintest.Start(t, map[string]string{"address": s.Addr, "token": tok})
	require.NoError(t, root.Auth().Token().RevokeTreeWithContext(t.Context(), tok))
	_, err := b.Read(t.Context(), sdk.Ref{Project: "p", Name: "db"})
	require.ErrorIs(t, err, sdk.ErrPermission)
	require.Contains(t, err.Error(), "expired or revoked")
}

// 403: the error wraps ErrPermission and names the path and the capability.
func TestPermissionDeniedNamesPathAndCapability(t *testing.T) {
	s := vaulttest.Start(t)
	root := s.Client(t)
	require.NoError(t, root.Sys().PutPolicyWithContext(t.Context(), "readonly", `
path "secret/data/secretgate/*" { capabilities = ["read"] }
path "secret/metadata/secretgate/*" { capabilities = ["read", "list"] }
`))
	b := plugintest.Start(t, map[string]string{"address": s.Addr, "token": policyToken(t, root, "readonly")})
	ctx := t.Context()

	_, err := b.Write(ctx, sampleWrite("perm", "db", sdk.WriteCreate))
	require.ErrorIs(t, err, sdk.ErrPermission)
	require.Contains(t, err.Error(), `"create"`)
	require.Contains(t, err.Error(), `"secret/data/secretgate/perm/db"`)
	require.NotContains(t, err.Error(), "s3cr3t")

	// Reads are allowed: a missing secret is still not found.
	_, err = b.Read(ctx, sdk.Ref{Project: "perm", Name: "db"})
	require.ErrorIs(t, err, sdk.ErrNotFound)

	// A secret someone else made cannot be deleted.
	_, err = root.KVv2("secret").Put(ctx, "secretgate/perm/other", map[string]any{"k": "v"})
	require.NoError(t, err)
	err = b.Delete(ctx, sdk.Ref{Project: "perm", Name: "other"})
	require.ErrorIs(t, err, sdk.ErrPermission)
	require.Contains(t, err.Error(), `"delete"`)
	require.Contains(t, err.Error(), `"secret/metadata/secretgate/perm/other"`)
}

// A stopped Vault gives ErrUnavailable within the retry bound; the plugin
// recovers by itself when Vault is back.
func TestUnavailableThenRecovers(t *testing.T) {
	s := vaulttest.Start(t)
	b := plugintest.Start(t, rootSettings(s))
	ctx := t.Context()
	_, err := b.Write(ctx, sampleWrite("outage", "db", sdk.WriteCreate))
	require.NoError(t, err)

	s.Stop()
	start := time.Now()
	_, err = b.Read(ctx, sdk.Ref{Project: "outage", Name: "db"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.Less(t, time.Since(start), 10*time.Second, "an unreachable Vault must not hang a call")
	require.ErrorIs(t, b.Ping(ctx), sdk.ErrUnavailable)
	_, err = b.Write(ctx, sampleWrite("outage", "db2", sdk.WriteCreate))
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	_, err = b.List(ctx, sdk.ListRequest{Project: "outage"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)

	// A caller's deadline shorter than the retries is honoured.
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	start = time.Now()
	_, err = b.Read(short, sdk.Ref{Project: "outage", Name: "db"})
	cancel()
	require.Error(t, err)
	require.Less(t, time.Since(start), 2*time.Second)

	// Back (dev mode is in memory: the new server is empty, same root token).
	s.Restart(t)
	require.NoError(t, b.Ping(ctx))
	_, err = b.Read(ctx, sdk.Ref{Project: "outage", Name: "db"})
	require.ErrorIs(t, err, sdk.ErrNotFound)
	_, err = b.Write(ctx, sampleWrite("outage", "db", sdk.WriteCreate))
	require.NoError(t, err)
}

// Configure succeeds while Vault is down (the gateway must start and answer
// 503); the login happens on first use.
func TestConfigureWhileVaultIsDown(t *testing.T) {
	s := vaulttest.Start(t)
	roleID, secretIDFile := enableAppRole(t, s.Client(t), "1h", "4h")
	s.Stop()
	b := inProcess(t, map[string]string{"address": s.Addr, "role_id": roleID, "secret_id_file": secretIDFile})
	_, err := b.Read(t.Context(), sdk.Ref{Project: "p", Name: "x"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.False(t, b.auth.loggedIn.Load())
}

// Interop with the real vault CLI at the documented path.
func TestInteropWithVaultCLI(t *testing.T) {
	s := vaulttest.Start(t)
	b := plugintest.Start(t, rootSettings(s))
	ctx := t.Context()

	// secretgate -> vault kv get
	_, err := b.Write(ctx, sdk.WriteRequest{Project: "payments", Name: "stripe-key", Mode: sdk.WriteCreate,
		Data: map[string]string{"api_key": "sk_test_123", "note": "ünïcödé"}, Labels: map[string]string{"env": "prod"}})
	require.NoError(t, err)
	out := s.CLI(t, "", "kv", "get", "-mount=secret", "-format=json", "secretgate/payments/stripe-key")
	var got struct {
		Data struct {
			Data     map[string]string `json:"data"`
			Metadata struct {
				Version        int               `json:"version"`
				CustomMetadata map[string]string `json:"custom_metadata"`
			} `json:"metadata"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, map[string]string{"api_key": "sk_test_123", "note": "ünïcödé"}, got.Data.Data)
	require.Equal(t, 1, got.Data.Metadata.Version)
	require.Equal(t, map[string]string{"env": "prod"}, got.Data.Metadata.CustomMetadata)

	// vault kv put -> secretgate list and read, and versions continue.
	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/from-cli", "user=admin", "port=5432")
	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/from-cli", "user=admin2", "port=5432")
	// Entries secretgate cannot name are left out of its list.
	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/sub/deeper", "k=v")
	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/bad.name", "k=v")
	page, err := b.List(ctx, sdk.ListRequest{Project: "payments"})
	require.NoError(t, err)
	var names []string
	for _, m := range page.Secrets {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"from-cli", "stripe-key"}, names)
	require.Equal(t, []string{"port", "user"}, page.Secrets[0].Keys)
	require.Equal(t, int64(2), page.Secrets[0].Version)
	sec, err := b.Read(ctx, sdk.Ref{Project: "payments", Name: "from-cli"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"user": "admin2", "port": "5432"}, sec.Data)
	require.Equal(t, int64(2), sec.Version)
	require.True(t, sec.CreatedAt.Before(sec.UpdatedAt) || sec.CreatedAt.Equal(sec.UpdatedAt))

	// `vault kv delete` soft-deletes the latest version: it no longer reads,
	// the secret still exists (create refuses), and a replace writes on.
	s.CLI(t, "", "kv", "delete", "-mount=secret", "secretgate/payments/from-cli")
	_, err = b.Read(ctx, sdk.Ref{Project: "payments", Name: "from-cli"})
	require.ErrorIs(t, err, sdk.ErrNotFound)
	m, err := b.Describe(ctx, sdk.Ref{Project: "payments", Name: "from-cli"})
	require.NoError(t, err)
	require.Equal(t, int64(2), m.Version)
	require.Empty(t, m.Keys)
	vs, err := b.Versions(ctx, sdk.Ref{Project: "payments", Name: "from-cli"})
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, int64(1), vs[0].Version)
	_, err = b.Write(ctx, sampleWrite("payments", "from-cli", sdk.WriteCreate))
	require.ErrorIs(t, err, sdk.ErrAlreadyExists)
	m, err = b.Write(ctx, sampleWrite("payments", "from-cli", sdk.WriteReplace))
	require.NoError(t, err)
	require.Equal(t, int64(3), m.Version)

	// secretgate's delete removes every version: vault kv get finds nothing.
	require.NoError(t, b.Delete(ctx, sdk.Ref{Project: "payments", Name: "stripe-key"}))
	_, err = s.TryCLI("", "kv", "metadata", "get", "-mount=secret", "secretgate/payments/stripe-key")
	require.Error(t, err)
}

// Labels that Vault's custom_metadata cannot hold as they are (empty,
// unprintable, or looking like the encoding) round-trip.
func TestLabelEncodingRoundTrip(t *testing.T) {
	s := vaulttest.Start(t)
	b := plugintest.Start(t, rootSettings(s))
	labels := map[string]string{"empty": "", "newline": "a\nb", "marker": "b64:abc", "plain": "prod", "uni": "ünï"}
	_, err := b.Write(t.Context(), sdk.WriteRequest{Project: "labels", Name: "x", Mode: sdk.WriteCreate,
		Data: map[string]string{"k": "v"}, Labels: labels})
	require.NoError(t, err)
	m, err := b.Describe(t.Context(), sdk.Ref{Project: "labels", Name: "x"})
	require.NoError(t, err)
	require.Equal(t, labels, m.Labels)
	// Labels set by hand in Vault with keys secretgate cannot name are not labels.
	s.CLI(t, "", "kv", "metadata", "patch", "-mount=secret", "-custom-metadata=Owner=ops", "secretgate/labels/x")
	m, err = b.Describe(t.Context(), sdk.Ref{Project: "labels", Name: "x"})
	require.NoError(t, err)
	require.Equal(t, labels, m.Labels)
}

// max_versions goes to the secret's metadata; Vault prunes older versions.
func TestMaxVersionsPrunes(t *testing.T) {
	s := vaulttest.Start(t)
	st := rootSettings(s)
	st["max_versions"] = "2"
	b := plugintest.Start(t, st)
	ctx := t.Context()
	caps, err := b.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, caps.MaxVersions)
	for i := range 4 {
		mode := sdk.WriteReplace
		if i == 0 {
			mode = sdk.WriteCreate
		}
		_, err := b.Write(ctx, sampleWrite("prune", "x", mode))
		require.NoError(t, err)
	}
	vs, err := b.Versions(ctx, sdk.Ref{Project: "prune", Name: "x"})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4}, []int64{vs[0].Version, vs[1].Version})
	_, err = b.Read(ctx, sdk.Ref{Project: "prune", Name: "x", Version: 1})
	require.ErrorIs(t, err, sdk.ErrNotFound)
	out := s.CLI(t, "", "kv", "metadata", "get", "-mount=secret", "-format=json", "secretgate/prune/x")
	require.Contains(t, out, `"max_versions": 2`)

	// Without the setting, the mount's default (10) is reported.
	b2 := plugintest.Start(t, rootSettings(s))
	caps, err = b2.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, 10, caps.MaxVersions)
}

// Concurrent replaces without ExpectedVersion all land, each as its own
// version (check-and-set with a fresh read on conflict).
func TestConcurrentReplacesAllLand(t *testing.T) {
	s := vaulttest.Start(t)
	b := plugintest.Start(t, rootSettings(s))
	ctx := t.Context()
	_, err := b.Write(ctx, sampleWrite("race", "x", sdk.WriteCreate))
	require.NoError(t, err)
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := b.Write(ctx, sampleWrite("race", "x", sdk.WriteReplace))
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	m, err := b.Describe(ctx, sdk.Ref{Project: "race", Name: "x"})
	require.NoError(t, err)
	require.Equal(t, int64(n+1), m.Version)
}

func TestErrorsAreTyped(t *testing.T) {
	s := vaulttest.Start(t)
	b := plugintest.Start(t, rootSettings(s))
	ctx := t.Context()
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"describe missing", func() error { _, err := b.Describe(ctx, sdk.Ref{Project: "e", Name: "nope"}); return err }, sdk.ErrNotFound},
		{"delete missing", func() error { return b.Delete(ctx, sdk.Ref{Project: "e", Name: "nope"}) }, sdk.ErrNotFound},
		{"versions missing", func() error { _, err := b.Versions(ctx, sdk.Ref{Project: "e", Name: "nope"}); return err }, sdk.ErrNotFound},
		{"replace missing", func() error { _, err := b.Write(ctx, sampleWrite("e", "nope", sdk.WriteReplace)); return err }, sdk.ErrNotFound},
		{"bad page token", func() error { _, err := b.List(ctx, sdk.ListRequest{Project: "e", PageToken: "garbage"}); return err }, sdk.ErrInvalid},
		{"bad name", func() error { _, err := b.Read(ctx, sdk.Ref{Project: "e", Name: "../x"}); return err }, sdk.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.True(t, errors.Is(err, tc.want), "want %v, got %v", tc.want, err)
		})
	}

	_, err := b.Write(ctx, sampleWrite("e", "x", sdk.WriteCreate))
	require.NoError(t, err)
	err = b.Delete(ctx, sdk.Ref{Project: "e", Name: "x", Version: 7})
	require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	require.NoError(t, b.Delete(ctx, sdk.Ref{Project: "e", Name: "x", Version: 1}))
	// The name is free again at once, from version 1.
	m, err := b.Write(ctx, sampleWrite("e", "x", sdk.WriteCreate))
	require.NoError(t, err)
	require.Equal(t, int64(1), m.Version)
}
