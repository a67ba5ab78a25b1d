// Package pgconn holds what every PostgreSQL user in secretgate does the
// same way: reading a connection string from a file, checking a schema
// name, and parsing a pool configuration without ever quoting the
// connection string (it may hold a password). The postgres storage
// backend (plugins/postgres) and the gateway's shared state
// (internal/pgstate) both use it.
package pgconn

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// dsnFileMaxBytes bounds what is read from a DSN file: a connection string
// is short, and a wrong path (a log, a device) must not be read whole.
const dsnFileMaxBytes = 16 << 10

// InvalidError is a setting that is wrong as written (as opposed to a file
// that cannot be read); Reason never holds the connection string.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// ErrBadDSN is a connection string that pgx cannot parse. Its message says
// nothing of the string's content: pgx quotes it, and redacts the password
// only on a best-effort basis.
var ErrBadDSN = errors.New("is not a PostgreSQL connection string (a URL such as postgres://user@host:5432/db?sslmode=verify-full, or key=value pairs)")

// ReadDSNFile reads a connection string from a file, refusing one that
// group or others may access, as key files are: it usually holds a
// password.
func ReadDSNFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", invalid("%s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return "", invalid("%s has mode %04o: a file holding database credentials must not be accessible by group or others (run: chmod 600 %s)",
			path, st.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, dsnFileMaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	dsn := strings.TrimSpace(string(raw))
	switch {
	case len(raw) > dsnFileMaxBytes:
		return "", invalid("%s is larger than %d bytes: not a connection string", path, dsnFileMaxBytes)
	case dsn == "":
		return "", invalid("%s is empty", path)
	}
	return dsn, nil
}

// ValidSchema keeps a schema name a plain identifier, so that it needs no
// quoting rules beyond the standard ones and reads the same in psql.
func ValidSchema(s string) bool {
	if len(s) == 0 || len(s) > 63 || strings.HasPrefix(s, "pg_") || s == "information_schema" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ParsePool parses a connection string into a pool configuration named
// after its user in pg_stat_activity, of maxConns connections unless the
// string sets pool_max_conns (0: pgx's default); a parse error is ErrBadDSN.
func ParsePool(dsn, applicationName string, maxConns int32) (*pgxpool.Config, error) {
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, ErrBadDSN
	}
	if maxConns > 0 && !strings.Contains(dsn, "pool_max_conns") {
		pcfg.MaxConns = maxConns
	}
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	return pcfg, nil
}
