package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/pgtest"
	"github.com/secretgate/secretgate/plugins/postgres"
	"github.com/secretgate/secretgate/sdk"
)

func TestSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "master.key")
	writeFile := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	const dsn = "postgres://u@127.0.0.1:1/db"
	tests := []struct {
		name     string
		settings map[string]string
		field    string
		want     string
	}{
		{"no dsn", map[string]string{"key_file": key}, "dsn", "is required"},
		{"dsn and dsn_file", map[string]string{"dsn": dsn, "dsn_file": writeFile("both", dsn, 0o600), "key_file": key}, "dsn_file", "conflicts with dsn"},
		{"dsn_file readable by others", map[string]string{"dsn_file": writeFile("open", dsn, 0o644), "key_file": key}, "dsn_file", "mode 0644"},
		{"empty dsn_file", map[string]string{"dsn_file": writeFile("empty", "\n", 0o600), "key_file": key}, "dsn_file", "is empty"},
		{"unknown setting", map[string]string{"dsn": dsn, "key_file": key, "path": "x"}, "path", "unknown setting of the postgres backend"},
		{"no key source", map[string]string{"dsn": dsn}, "key_file", "no key source"},
		{"two key sources", map[string]string{"dsn": dsn, "key_file": key, "key_env": "X"}, "key_env", "conflicts with key_file"},
		{"same previous key", map[string]string{"dsn": dsn, "key_file": key, "previous_key_file": key}, "previous_key_file", "same key source"},
		{"negative max_versions", map[string]string{"dsn": dsn, "key_file": key, "max_versions": "-1"}, "max_versions", "whole number"},
		{"schema with a capital", map[string]string{"dsn": dsn, "key_file": key, "schema": "Secrets"}, "schema", "lower-case"},
		{"schema pg_", map[string]string{"dsn": dsn, "key_file": key, "schema": "pg_secrets"}, "schema", "identifier"},
		{"schema quoting", map[string]string{"dsn": dsn, "key_file": key, "schema": `a"; DROP TABLE x; --`}, "schema", "identifier"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := configureErr(t, tc.settings)
			var fe *sdk.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, fe.Reason, tc.want)
		})
	}
}

// The connection string's password appears in no error: not for a string
// pgx cannot parse (whose own message quotes it), not for a server that
// refuses the connection.
func TestDSNPasswordNeverInErrors(t *testing.T) {
	const password = "hunter2-sekrit-pw"
	key := filepath.Join(t.TempDir(), "master.key")
	for _, dsn := range []string{
		"postgres://app:" + password + "@127.0.0.1:notaport/db",
		// pgx redacts the password of a malformed string on a best-effort
		// basis, and misses this valid libpq spelling: its message quotes it.
		"host=127.0.0.1 user=app password = " + password + " port=x",
		"postgres://app:" + password + "@127.0.0.1:1/db?connect_timeout=2",
	} {
		err := configureErr(t, map[string]string{"dsn": dsn, "key_file": key})
		require.NotContains(t, err.Error(), password)
		require.NotContains(t, fmt.Sprintf("%+v", err), password)
	}
	// The refused connection is unavailable, which the gateway reports as
	// such (503), and the error names the user and database.
	err := configureErr(t, map[string]string{"dsn": "postgres://app:" + password + "@127.0.0.1:1/db?connect_timeout=2", "key_file": key})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.Contains(t, err.Error(), "user=app database=db")
}

// A dsn_file is read (surrounding white space dropped) like the dsn setting.
func TestDSNFile(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.dir, "dsn")
	require.NoError(t, os.WriteFile(file, []byte("  "+f.dsn+"\n"), 0o600))
	b := open(t, f.settings(postgres.SettingDSN, "", postgres.SettingDSNFile, file))
	write(t, b, "p", "s", map[string]string{"k": "v"})
}

// With its server gone the backend answers ErrUnavailable (the gateway's
// 503), and once the server is back it serves again without a restart:
// the pool reconnects.
func TestServerOutageIsUnavailableThenRecovers(t *testing.T) {
	srv := pgtest.Start(t)
	f := fixture{srv: srv, dsn: srv.NewDatabase(t), dir: t.TempDir()}
	f.key = filepath.Join(f.dir, "master.key")
	b := open(t, f.settings())
	write(t, b, "p", "s", map[string]string{"k": "v"})

	srv.Halt()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.ErrorIs(t, b.Ping(ctx), sdk.ErrUnavailable)
	_, err := b.Read(ctx, sdk.Ref{Project: "p", Name: "s"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	_, err = b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "s", Data: map[string]string{"k": "lost"}, Mode: sdk.WriteUpsert})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	_, err = b.List(ctx, sdk.ListRequest{Project: "p"})
	require.ErrorIs(t, err, sdk.ErrUnavailable)

	srv.Restart(t)
	require.Eventually(t, func() bool { return b.Ping(ctx) == nil }, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, "v", read(t, b, "p", "s", 0)["k"], "the acknowledged write survived, the refused one is not there")
	write(t, b, "p", "s", map[string]string{"k": "after"})
}

// A write queued behind another transaction's lock on the secret gives up
// when its context ends, with the context's error, and writes nothing.
func TestWriteWaitingForRowLockHonoursContext(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	write(t, b, "p", "locked", map[string]string{"k": "v1"})
	c := f.conn(t)
	bg := context.Background()
	tx, err := c.Begin(bg)
	require.NoError(t, err)
	_, err = tx.Exec(bg, `SELECT 1 FROM secretgate.secrets WHERE project = 'p' AND name = 'locked' FOR UPDATE`)
	require.NoError(t, err)

	// The lock is released after a while in any case, so that a write that
	// ignores its context fails the test instead of hanging it.
	released := make(chan error, 1)
	go func() {
		time.Sleep(3 * time.Second)
		released <- tx.Commit(bg)
	}()
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "locked", Data: map[string]string{"k": "v2"}, Mode: sdk.WriteUpsert})
	require.Less(t, time.Since(start), 2*time.Second, "the write must not wait for the lock past its deadline")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, <-released)

	m, err := b.Describe(bg, sdk.Ref{Project: "p", Name: "locked"})
	require.NoError(t, err)
	require.Equal(t, int64(1), m.Version, "the abandoned write must not land")
	write(t, b, "p", "locked", map[string]string{"k": "v2"})
}

// List pages in byte order through the primary key, bounded by the prefix.
func TestListPrefixBounds(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	names := []string{"a", "a-", "a_", "aZ", "a0", "ab", "abc", "b", "Z", "_x"}
	for _, n := range names {
		if n == "_x" {
			continue // names start with a letter or digit
		}
		write(t, b, "p", n, map[string]string{"k": "v"})
	}
	ctx := context.Background()
	list := func(prefix string, size int) []string {
		var out []string
		req := sdk.ListRequest{Project: "p", Prefix: prefix, PageSize: size}
		for {
			page, err := b.List(ctx, req)
			require.NoError(t, err)
			for _, m := range page.Secrets {
				out = append(out, m.Name)
			}
			if page.NextPageToken == "" {
				return out
			}
			req.PageToken = page.NextPageToken
		}
	}
	require.Equal(t, []string{"Z", "a", "a-", "a0", "aZ", "a_", "ab", "abc", "b"}, list("", 2))
	require.Equal(t, []string{"a", "a-", "a0", "aZ", "a_", "ab", "abc"}, list("a", 3))
	require.Equal(t, []string{"ab", "abc"}, list("ab", 1))
	require.Empty(t, list("c", 5))
	require.Equal(t, []string{"a_"}, list("a_", 5), "'_' is no wildcard")
	require.True(t, strings.HasPrefix(list("Z", 1)[0], "Z"))
}
