package pgconn

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The pool size a caller asks for applies unless the connection string
// sets its own; 0 leaves pgx's default. The application name is set unless
// the string names one.
func TestParsePool(t *testing.T) {
	pgxDefault, err := pgxpool.ParseConfig("postgres://u@127.0.0.1:5432/db")
	require.NoError(t, err)
	for _, tc := range []struct {
		dsn  string
		max  int32
		want int32
		app  string
	}{
		{"postgres://u@127.0.0.1:5432/db", 16, 16, "sg"},
		{"postgres://u@127.0.0.1:5432/db?pool_max_conns=3", 16, 3, "sg"},
		{"postgres://u@127.0.0.1:5432/db", 0, pgxDefault.MaxConns, "sg"},
		{"host=127.0.0.1 user=u dbname=db pool_max_conns=7 application_name=mine", 4, 7, "mine"},
	} {
		pcfg, err := ParsePool(tc.dsn, "sg", tc.max)
		require.NoError(t, err, tc.dsn)
		require.Equal(t, tc.want, pcfg.MaxConns, tc.dsn)
		require.Equal(t, tc.app, pcfg.ConnConfig.RuntimeParams["application_name"], tc.dsn)
	}
	_, err = ParsePool("postgres://u:secret@[::1", "sg", 4)
	require.ErrorIs(t, err, ErrBadDSN)
	require.NotContains(t, err.Error(), "secret", "the connection string is never quoted")
}
