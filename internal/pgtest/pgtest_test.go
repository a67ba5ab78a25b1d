package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var out string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&out))
	return out
}

// The server measures what production has: durable commits, on loopback.
func TestServerSettings(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	for setting, want := range map[string]string{
		"fsync":              "on",
		"synchronous_commit": "on",
		"listen_addresses":   "127.0.0.1",
		"server_version_num": "15",
		"server_encoding":    "UTF8",
	} {
		got := query(t, dsn, "SELECT current_setting('"+setting+"')")
		if setting == "server_version_num" {
			got = got[:2]
		}
		require.Equal(t, want, got, setting)
	}
}

// Halt and Restart keep the data (the state database outage tests need it);
// Stop removes everything and the server is gone.
func TestRestartKeepsDataStopRemoves(t *testing.T) {
	s := pgtest.Start(t)
	dsn := s.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	s.Halt()
	require.False(t, s.Running())
	_, err = pgx.Connect(ctx, dsn)
	require.Error(t, err, "a halted server refuses connections")
	s.Restart(t)
	require.True(t, s.Running())
	require.Equal(t, "kept", query(t, dsn, "SELECT v FROM t"))

	dir := s.Dir()
	s.Stop()
	require.False(t, s.Running())
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "Stop removes the cluster's directory")
}

// Launch is Start for a program that is not a test: the caller owns the
// server, and Stop ends it and removes its directory.
func TestLaunchOutsideTests(t *testing.T) {
	pgtest.BinDir(t) // skips (fails under CI=true) without PostgreSQL
	s, err := pgtest.Launch()
	require.NoError(t, err)
	t.Cleanup(s.Stop) // a no-op once the test has stopped it

	require.True(t, s.Running())
	require.Equal(t, "1", query(t, s.DSN("postgres"), "SELECT '1'"))
	dir := s.Dir()
	s.Stop()
	require.False(t, s.Running())
	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "Stop removes the cluster's directory")
}

// A missing installation is an error the load test can tell from a server
// that failed to start, to skip its PostgreSQL scenarios with the reason.
func TestLaunchNotInstalled(t *testing.T) {
	t.Setenv(pgtest.BinDirEnv, t.TempDir())
	s, err := pgtest.Launch()
	require.Nil(t, s)
	require.True(t, errors.Is(err, pgtest.ErrNotInstalled), "%v", err)
	require.ErrorContains(t, err, "apt-get install -y postgresql")
}
