package pgtest_test

import (
	"context"
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
