package postgres

// The tables, their migrations, and the statements on them.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the version of the tables this code reads and writes.
// Configure migrates an older schema up to it and refuses a newer one.
const SchemaVersion = 1

// ErrSchemaNewer is wrapped by Configure's error when the database's schema
// was migrated by a newer secretgate than this one.
var ErrSchemaNewer = errors.New("the database schema is newer than this secretgate")

// migrations[i] takes the schema from version i to i+1; "%[1]s" is the
// quoted schema name. Each runs in Configure's transaction, with the
// version bump, so a schema is never half-migrated.
var migrations = []string{
	// 0 -> 1: the first layout (see the package doc).
	`CREATE TABLE %[1]s.meta (
		key   text PRIMARY KEY,
		value bytea NOT NULL
	);
	CREATE TABLE %[1]s.projects (
		project text COLLATE "C" PRIMARY KEY,
		dek     bytea NOT NULL
	);
	CREATE TABLE %[1]s.secrets (
		project     text COLLATE "C" NOT NULL REFERENCES %[1]s.projects (project),
		name        text COLLATE "C" NOT NULL,
		incarnation bytea NOT NULL,
		version     bigint NOT NULL CHECK (version > 0),
		keys        text[] NOT NULL,
		labels      jsonb,
		created_at  timestamptz NOT NULL,
		updated_at  timestamptz NOT NULL,
		PRIMARY KEY (project, name)
	);
	CREATE TABLE %[1]s.versions (
		project    text COLLATE "C" NOT NULL,
		name       text COLLATE "C" NOT NULL,
		version    bigint NOT NULL,
		created_at timestamptz NOT NULL,
		ciphertext bytea NOT NULL,
		PRIMARY KEY (project, name, version),
		FOREIGN KEY (project, name) REFERENCES %[1]s.secrets (project, name) ON DELETE CASCADE
	);`,
}

// The meta table's keys.
const (
	metaVerifier = "kek_verifier"
	metaKDF      = "kdf"
)

// queries are the statements of one schema, built once at Configure.
type queries struct {
	schema string // quoted

	readVersionTable, createVersionTable, upsertVersion string

	keyState, insertMeta, upsertMeta, deleteMeta, shareVerifier string
	allDEKs, updateDEK, selectDEK, insertDEK                    string

	describe, read, versions, list string

	lockSecret, insertSecret, updateSecret, insertVersion, prune, delete string
}

func newQueries(schema string) *queries {
	s := pgx.Identifier{schema}.Sanitize()
	f := func(q string) string { return strings.ReplaceAll(q, "{s}", s) }
	return &queries{
		schema:             s,
		readVersionTable:   f(`SELECT version FROM {s}.schema_version`),
		createVersionTable: f(`CREATE TABLE {s}.schema_version (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())`),
		upsertVersion:      f(`INSERT INTO {s}.schema_version (version) VALUES ($1) ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, migrated_at = now()`),

		keyState:      f(`SELECT key, value FROM {s}.meta WHERE key IN ('kek_verifier', 'kdf') FOR UPDATE`),
		insertMeta:    f(`INSERT INTO {s}.meta (key, value) VALUES ($1, $2)`),
		upsertMeta:    f(`INSERT INTO {s}.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`),
		deleteMeta:    f(`DELETE FROM {s}.meta WHERE key = $1`),
		shareVerifier: f(`SELECT value FROM {s}.meta WHERE key = 'kek_verifier' FOR SHARE`),
		allDEKs:       f(`SELECT project, dek FROM {s}.projects ORDER BY project FOR UPDATE`),
		updateDEK:     f(`UPDATE {s}.projects SET dek = $2 WHERE project = $1`),
		selectDEK:     f(`SELECT dek FROM {s}.projects WHERE project = $1`),
		insertDEK:     f(`INSERT INTO {s}.projects (project, dek) VALUES ($1, $2) ON CONFLICT (project) DO NOTHING`),

		describe: f(`SELECT version, keys, labels, created_at, updated_at FROM {s}.secrets WHERE project = $1 AND name = $2`),
		read: f(`SELECT s.incarnation, s.version, s.keys, s.labels, s.created_at, s.updated_at, p.dek, v.ciphertext
			FROM {s}.secrets s
			JOIN {s}.projects p ON p.project = s.project
			LEFT JOIN {s}.versions v ON v.project = s.project AND v.name = s.name
				AND v.version = CASE WHEN $3::bigint > 0 THEN $3::bigint ELSE s.version END
			WHERE s.project = $1 AND s.name = $2`),
		versions: f(`SELECT version, created_at FROM {s}.versions WHERE project = $1 AND name = $2 ORDER BY version`),
		// Every bound is on the primary key's (project, name), so the scan
		// reads only the page: lower bound the prefix and the token's name,
		// upper bound the first name past the prefix.
		list: f(`SELECT name, version, keys, labels, created_at, updated_at FROM {s}.secrets
			WHERE project = $1 AND name >= $2 AND name > $3 AND name < $4
			ORDER BY name LIMIT $5`),

		lockSecret: f(`SELECT s.incarnation, s.version, s.labels, s.created_at, p.dek
			FROM {s}.secrets s JOIN {s}.projects p ON p.project = s.project
			WHERE s.project = $1 AND s.name = $2
			FOR UPDATE OF s`),
		insertSecret: f(`INSERT INTO {s}.secrets (project, name, incarnation, version, keys, labels, created_at, updated_at)
			VALUES ($1, $2, $3, 1, $4, $5, $6, $6) ON CONFLICT (project, name) DO NOTHING`),
		updateSecret:  f(`UPDATE {s}.secrets SET version = $3, keys = $4, labels = $5, updated_at = $6 WHERE project = $1 AND name = $2`),
		insertVersion: f(`INSERT INTO {s}.versions (project, name, version, created_at, ciphertext) VALUES ($1, $2, $3, $4, $5)`),
		prune:         f(`DELETE FROM {s}.versions WHERE project = $1 AND name = $2 AND version <= $3`),
		// One statement, one snapshot: the DELETE's own result says whether
		// it deleted, the outer SELECT what the version was if it did not.
		delete: f(`WITH d AS (
				DELETE FROM {s}.secrets WHERE project = $1 AND name = $2 AND ($3::bigint = 0 OR version = $3::bigint) RETURNING version
			) SELECT (SELECT version FROM d), (SELECT version FROM {s}.secrets WHERE project = $1 AND name = $2)`),
	}
}

// lockKey is the advisory lock that serialises Configure (migration, key
// initialisation and rotation) across every process using the schema.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("secretgate/postgres/configure\x00" + schema))
	return int64(h.Sum64())
}

// migrate brings the schema to SchemaVersion inside tx (which holds the
// advisory lock), creating it on first use. It returns the version found.
// A schema newer than SchemaVersion is refused before anything is changed.
func migrate(ctx context.Context, tx pgx.Tx, q *queries, schema string) (int, error) {
	var hasTable bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, q.schema+".schema_version").Scan(&hasTable); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	from := 0
	if hasTable {
		err := tx.QueryRow(ctx, q.readVersionTable).Scan(&from)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("reading the schema version: %w", err)
		}
	}
	if from > SchemaVersion {
		return from, fmt.Errorf("schema %q is at version %d, and this secretgate knows versions up to %d: "+
			"a newer secretgate migrated it; upgrade this one (it changes nothing in a newer schema): %w",
			schema, from, SchemaVersion, ErrSchemaNewer)
	}
	if from == SchemaVersion {
		return from, nil
	}
	if !hasTable {
		// CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
		// database even when the schema exists; a schema made by a DBA
		// beforehand should be enough.
		var hasSchema bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&hasSchema); err != nil {
			return from, fmt.Errorf("looking for schema %q: %w", schema, err)
		}
		if !hasSchema {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+q.schema); err != nil {
				return from, fmt.Errorf("creating schema %q: %w", schema, err)
			}
		}
		if _, err := tx.Exec(ctx, q.createVersionTable); err != nil {
			return from, fmt.Errorf("creating %s.schema_version: %w", schema, err)
		}
	}
	for v := from; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v], q.schema)); err != nil {
			return from, fmt.Errorf("migrating schema %q from version %d to %d: %w", schema, v, v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, q.upsertVersion, SchemaVersion); err != nil {
		return from, fmt.Errorf("recording schema version %d: %w", SchemaVersion, err)
	}
	return from, nil
}
