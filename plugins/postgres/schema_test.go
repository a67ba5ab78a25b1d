package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/plugins/postgres"
)

// A schema migrated by a newer secretgate is refused, with both versions
// named, and left exactly as it was.
func TestNewerSchemaRefused(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	write(t, b, "p", "s", map[string]string{"k": "v"})
	require.NoError(t, b.Close())
	c := f.conn(t)
	ctx := context.Background()
	_, err := c.Exec(ctx, `UPDATE secretgate.schema_version SET version = 7`)
	require.NoError(t, err)

	err = configureErr(t, f.settings())
	require.ErrorIs(t, err, postgres.ErrSchemaNewer)
	require.Contains(t, err.Error(), `schema "secretgate" is at version 7`)
	require.Contains(t, err.Error(), fmt.Sprintf("knows versions up to %d", postgres.SchemaVersion))
	var v int
	require.NoError(t, c.QueryRow(ctx, `SELECT version FROM secretgate.schema_version`).Scan(&v))
	require.Equal(t, 7, v, "an older binary must not touch a newer schema")

	// Put back, the schema serves again: nothing was changed.
	_, err = c.Exec(ctx, fmt.Sprintf(`UPDATE secretgate.schema_version SET version = %d`, postgres.SchemaVersion))
	require.NoError(t, err)
	require.Equal(t, "v", read(t, open(t, f.settings()), "p", "s", 0)["k"])
}

// Configure creates the schema at the current version, once, and a second
// Configure finds it there; a DBA-made empty schema is used as it is.
func TestSchemaCreatedAndVersioned(t *testing.T) {
	f := newFixture(t)
	c := f.conn(t)
	ctx := context.Background()
	_, err := c.Exec(ctx, `CREATE SCHEMA made_by_dba`)
	require.NoError(t, err)
	for range 2 {
		b := open(t, f.settings(postgres.SettingSchema, "made_by_dba"))
		write(t, b, "p", "s", map[string]string{"k": "v"})
	}
	var v, rows int
	require.NoError(t, c.QueryRow(ctx, `SELECT version, (SELECT count(*) FROM made_by_dba.schema_version) FROM made_by_dba.schema_version`).Scan(&v, &rows))
	require.Equal(t, postgres.SchemaVersion, v)
	require.Equal(t, 1, rows)
	var tables []string
	r, err := c.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'made_by_dba' ORDER BY 1`)
	require.NoError(t, err)
	for r.Next() {
		var n string
		require.NoError(t, r.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, r.Err())
	require.Equal(t, []string{"meta", "projects", "schema_version", "secrets", "versions"}, tables)
	var public int
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'secretgate'`).Scan(&public))
	require.Zero(t, public, "the default schema is not touched when another is configured")
}

// Replicas started together on an empty database create the schema and the
// key state once (the advisory lock), and each can read what the others
// write.
func TestConcurrentConfigureOnEmptyDatabase(t *testing.T) {
	f := newFixture(t)
	const replicas = 6
	backends := make([]*postgres.Backend, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		backends[i] = postgres.NewBackend(nil)
		t.Cleanup(func() { _ = backends[i].Close() })
		wg.Go(func() { errs[i] = backends[i].Configure(context.Background(), f.settings()) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "replica %d", i)
	}
	for i, b := range backends {
		write(t, b, "p", fmt.Sprintf("s%d", i), map[string]string{"from": fmt.Sprint(i)})
	}
	for _, b := range backends {
		for i := range replicas {
			require.Equal(t, fmt.Sprint(i), read(t, b, "p", fmt.Sprintf("s%d", i), 0)["from"])
		}
	}
}
