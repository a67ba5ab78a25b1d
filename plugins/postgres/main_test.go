package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/pgtest"
	"github.com/secretgate/secretgate/plugins/postgres"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// One PostgreSQL server for the package's tests; each test has a database
// of its own on it.
func TestMain(m *testing.M) {
	plugintest.ServeIfChild(postgres.New)
	pgtest.Main(m)
}

// fixture is a fresh database and a key file path in a fresh directory.
type fixture struct {
	srv      *pgtest.Server
	dsn, key string
	dir      string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	srv := pgtest.Shared(t)
	dir := t.TempDir()
	return fixture{srv: srv, dsn: srv.NewDatabase(t), dir: dir, key: filepath.Join(dir, "keys", "master.key")}
}

// settings are the fixture's settings with extra name/value pairs applied
// (an empty value removes the setting).
func (f fixture) settings(extra ...string) map[string]string {
	s := map[string]string{postgres.SettingDSN: f.dsn, postgres.SettingKeyFile: f.key}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(s, extra[i])
			continue
		}
		s[extra[i]] = extra[i+1]
	}
	return s
}

// database is the fixture database's name.
func (f fixture) database(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(f.dsn)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

// conn is a direct connection to the fixture's database, closed at the end
// of the test.
func (f fixture) conn(t testing.TB) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), f.dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// open configures a new in-process backend and closes it when the test ends.
func open(t testing.TB, settings map[string]string) *postgres.Backend {
	t.Helper()
	b := postgres.NewBackend(hclog.NewNullLogger())
	require.NoError(t, b.Configure(context.Background(), settings))
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// configureErr configures a new backend that must fail, and returns the error.
func configureErr(t *testing.T, settings map[string]string) error {
	t.Helper()
	b := postgres.NewBackend(hclog.NewNullLogger())
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
