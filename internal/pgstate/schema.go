package pgstate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the layout this package writes. An older binary refuses
// a newer schema rather than guess at it.
const SchemaVersion = 1

// ErrSchemaNewer is a schema migrated by a newer secretgate.
var ErrSchemaNewer = errors.New("the shared state schema is newer than this secretgate")

// layout creates version 1. {s} is the quoted schema.
//
//   - epoch: one counter, bumped by every change of routing or of the
//     paused projects; replicas acknowledge the epoch they apply.
//   - routing: the migrations' switches, project -> backend.
//   - migrations: one row per migration: its report (names and counts,
//     never a value), the projects it pauses, and the lease of the
//     replica that runs it.
//   - replicas: heartbeats and acknowledged epochs.
//   - meta: the page token key.
const layout = `
CREATE TABLE {s}.schema_version (version integer NOT NULL);
CREATE TABLE {s}.meta (key text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE {s}.epoch (id integer PRIMARY KEY CHECK (id = 1), value bigint NOT NULL);
INSERT INTO {s}.epoch VALUES (1, 1);
CREATE TABLE {s}.routing (
	project text PRIMARY KEY,
	backend text NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.migrations (
	id text PRIMARY KEY,
	seq bigserial NOT NULL,
	state text NOT NULL,
	projects text[] NOT NULL,
	paused text[] NOT NULL DEFAULT '{}',
	owner text NOT NULL DEFAULT '',
	lease_until timestamptz NOT NULL DEFAULT now(),
	report jsonb NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON {s}.migrations (state);
CREATE TABLE {s}.replicas (
	id text PRIMARY KEY,
	started_at timestamptz NOT NULL DEFAULT now(),
	heartbeat_at timestamptz NOT NULL DEFAULT now(),
	acked_epoch bigint NOT NULL DEFAULT 0
);
INSERT INTO {s}.schema_version VALUES (1);
`

func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("secretgate/state/migrate\x00" + schema))
	return int64(h.Sum64())
}

// migrate creates the schema on first use, under an advisory lock so that
// replicas starting together do not race on CREATE.
func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(s.schema)); err != nil {
			return fmt.Errorf("locking the state schema: %w", err)
		}
		var has bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.q+".schema_version").Scan(&has); err != nil {
			return fmt.Errorf("reading the state schema version: %w", err)
		}
		if has {
			var v int
			if err := tx.QueryRow(ctx, s.sql(`SELECT version FROM {s}.schema_version`)).Scan(&v); err != nil {
				return fmt.Errorf("reading the state schema version: %w", err)
			}
			if v > SchemaVersion {
				return fmt.Errorf("schema %q is at version %d, and this secretgate knows versions up to %d; upgrade it: %w", s.schema, v, SchemaVersion, ErrSchemaNewer)
			}
			return nil
		}
		var hasSchema bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&hasSchema); err != nil {
			return fmt.Errorf("looking for schema %q: %w", s.schema, err)
		}
		if !hasSchema {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+s.q); err != nil {
				return fmt.Errorf("creating schema %q: %w", s.schema, err)
			}
		}
		if _, err := tx.Exec(ctx, s.sql(layout)); err != nil {
			return fmt.Errorf("creating the state tables in schema %q: %w", s.schema, err)
		}
		return nil
	})
}
