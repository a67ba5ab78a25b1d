package postgres

// Settings: what Configure reads.

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

// Setting names. The key settings are the file backend's, with the same
// meaning (docs/backends/file.md).
const (
	SettingDSN                   = "dsn"
	SettingDSNFile               = "dsn_file"
	SettingSchema                = "schema"
	SettingMaxVersions           = "max_versions"
	SettingKeyFile               = envelope.SettingKeyFile
	SettingKeyEnv                = envelope.SettingKeyEnv
	SettingPassphraseEnv         = envelope.SettingPassphraseEnv
	SettingPreviousKeyFile       = envelope.SettingPreviousKeyFile
	SettingPreviousKeyEnv        = envelope.SettingPreviousKeyEnv
	SettingPreviousPassphraseEnv = envelope.SettingPreviousPassphraseEnv
)

// DefaultSchema is the PostgreSQL schema the tables live in when the schema
// setting is absent.
const DefaultSchema = "secretgate"

// DefaultMaxVersions is how many versions of a secret are kept when the
// max_versions setting is absent, as in the file backend.
const DefaultMaxVersions = 10

// dsnFileMaxBytes bounds what is read from a dsn_file: a connection string
// is a line, not a document.
const dsnFileMaxBytes = 16 << 10

var knownSettings = append([]string{SettingDSN, SettingDSNFile, SettingSchema, SettingMaxVersions}, envelope.Settings...)

// config is the parsed settings. dsn may hold a password: it is never
// logged nor put in an error.
type config struct {
	dsn         string
	schema      string
	keys        envelope.Sources
	maxVersions int
}

func parseSettings(settings map[string]string) (*config, error) {
	for k := range settings {
		if !slices.Contains(knownSettings, k) {
			return nil, sdk.Invalid(k, "unknown setting of the postgres backend (known: %s)", strings.Join(knownSettings, ", "))
		}
	}
	cfg := &config{schema: DefaultSchema, maxVersions: DefaultMaxVersions}
	switch dsn, file := settings[SettingDSN], settings[SettingDSNFile]; {
	case dsn != "" && file != "":
		return nil, sdk.Invalid(SettingDSNFile, "conflicts with %s: set exactly one of them", SettingDSN)
	case dsn != "":
		cfg.dsn = dsn
	case file != "":
		var err error
		if cfg.dsn, err = readDSNFile(file); err != nil {
			return nil, err
		}
	default:
		return nil, sdk.Invalid(SettingDSN, "is required (or %s): the PostgreSQL connection string, e.g. postgres://secretgate@db.internal:5432/secretgate?sslmode=verify-full", SettingDSNFile)
	}
	if s, ok := settings[SettingSchema]; ok && s != "" {
		if !validSchema(s) {
			return nil, sdk.Invalid(SettingSchema, "must be a lower-case PostgreSQL identifier (a-z, 0-9, _; at most 63 characters, not starting with a digit or pg_)")
		}
		cfg.schema = s
	}
	var err error
	if cfg.keys, err = envelope.ParseSources(settings); err != nil {
		return nil, err
	}
	if s, ok := settings[SettingMaxVersions]; ok && s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, sdk.Invalid(SettingMaxVersions, "must be a whole number of versions to keep, 0 for all")
		}
		cfg.maxVersions = n
	}
	return cfg, nil
}

// readDSNFile reads a connection string from a file, refusing one that
// group or others may access, as key files are: it usually holds a
// password.
func readDSNFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", SettingDSNFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", SettingDSNFile, err)
	}
	if !st.Mode().IsRegular() {
		return "", sdk.Invalid(SettingDSNFile, "%s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return "", sdk.Invalid(SettingDSNFile, "%s has mode %04o: a file holding database credentials must not be accessible by group or others (run: chmod 600 %s)",
			path, st.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, dsnFileMaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: reading %s: %w", SettingDSNFile, path, err)
	}
	dsn := strings.TrimSpace(string(raw))
	switch {
	case len(raw) > dsnFileMaxBytes:
		return "", sdk.Invalid(SettingDSNFile, "%s is larger than %d bytes: not a connection string", path, dsnFileMaxBytes)
	case dsn == "":
		return "", sdk.Invalid(SettingDSNFile, "%s is empty", path)
	}
	return dsn, nil
}

// validSchema keeps the schema name a plain identifier, so that it needs
// no quoting rules beyond the standard ones and reads the same in psql.
func validSchema(s string) bool {
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
