package gateway

import (
	"errors"
	"time"

	"github.com/secretgate/secretgate/internal/pgconn"
	"github.com/secretgate/secretgate/internal/pgstate"
)

// StateConfig says where the gateway keeps the state replicas must share
// (the migrations' routing switches, the migration journal, the page token
// key; docs/replicas.md). Empty: local files beside the audit log, for one
// process.
type StateConfig struct {
	Postgres *PostgresStateConfig `yaml:"postgres"`
}

// PostgresStateConfig is the shared state in PostgreSQL.
type PostgresStateConfig struct {
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"`
	// Schema holds the state tables (default secretgate_state).
	Schema string `yaml:"schema"`
	// Lease bounds how long a replica trusts its view of the state without
	// hearing from the database (then it refuses writes and /readyz fails)
	// and how long a dead replica's migration waits before another
	// replica resumes it. A Go duration, default 15s.
	Lease string `yaml:"lease"`
}

// Lease bounds.
const (
	DefaultStateLease = 15 * time.Second
	MinStateLease     = time.Second
	MaxStateLease     = 5 * time.Minute
)

// Shared reports whether the state is shared through a database.
func (c StateConfig) Shared() bool { return c.Postgres != nil }

// LeaseDuration is the configured lease (validated).
func (p *PostgresStateConfig) LeaseDuration() time.Duration {
	d, err := time.ParseDuration(p.Lease)
	if p.Lease == "" || err != nil {
		return DefaultStateLease
	}
	return d
}

// ConnString returns the connection string, read from dsn_file if set.
func (p *PostgresStateConfig) ConnString() (string, error) {
	if p.DSNFile == "" {
		return p.DSN, nil
	}
	dsn, err := pgconn.ReadDSNFile(p.DSNFile)
	if err != nil {
		return "", cfgErr("state.postgres.dsn_file", "%v", err)
	}
	return dsn, nil
}

func (c StateConfig) validate(add func(field, format string, args ...any)) {
	p := c.Postgres
	if p == nil {
		return
	}
	switch {
	case p.DSN != "" && p.DSNFile != "":
		add("state.postgres.dsn_file", "conflicts with state.postgres.dsn: set exactly one of them")
	case p.DSN == "" && p.DSNFile == "":
		add("state.postgres.dsn", "is required (or state.postgres.dsn_file): the PostgreSQL connection string, e.g. postgres://secretgate@db.internal:5432/secretgate?sslmode=verify-full")
	case p.DSN != "":
		if _, err := pgconn.ParsePool(p.DSN, "secretgate-state", 0); err != nil {
			add("state.postgres.dsn", "%v", err)
		}
	default:
		dsn, err := p.ConnString()
		var ce *ConfigError
		switch {
		case errors.As(err, &ce):
			add(ce.Field, "%s", ce.Reason)
		case err == nil:
			if _, err := pgconn.ParsePool(dsn, "secretgate-state", 0); err != nil {
				add("state.postgres.dsn_file", "holds a string that %v", err)
			}
		}
	}
	if p.Schema != "" && !pgconn.ValidSchema(p.Schema) {
		add("state.postgres.schema", "must be a lower-case PostgreSQL identifier (a-z, 0-9, _; at most 63 characters, not starting with a digit or pg_)")
	}
	if p.Lease != "" {
		d, err := time.ParseDuration(p.Lease)
		switch {
		case err != nil:
			add("state.postgres.lease", "must be a Go duration such as 15s")
		case d < MinStateLease || d > MaxStateLease:
			add("state.postgres.lease", "must be between %s and %s", MinStateLease, MaxStateLease)
		}
	}
}

// stateSchema is the schema of the state tables.
func (p *PostgresStateConfig) stateSchema() string {
	if p.Schema == "" {
		return pgstate.DefaultSchema
	}
	return p.Schema
}
