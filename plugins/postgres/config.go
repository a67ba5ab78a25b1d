package postgres

// Settings: what Configure reads.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/internal/pgconn"
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

// DefaultPoolMaxConns is the connection pool's size when the connection
// string does not set pool_max_conns.
const DefaultPoolMaxConns = 16

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
		if !pgconn.ValidSchema(s) {
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

// readDSNFile reads the dsn_file setting (internal/pgconn checks its mode).
func readDSNFile(path string) (string, error) {
	dsn, err := pgconn.ReadDSNFile(path)
	var bad *pgconn.InvalidError
	switch {
	case errors.As(err, &bad):
		return "", sdk.Invalid(SettingDSNFile, "%s", bad.Reason)
	case err != nil:
		return "", fmt.Errorf("%s: %w", SettingDSNFile, err)
	}
	return dsn, nil
}
