// Package pgstate keeps the state that gateway replicas share in
// PostgreSQL: the routing switches made by migrations, the migration
// journal with each running migration's lease, the projects paused by
// migrations, the replicas' heartbeats, the key that seals page tokens, and
// a LISTEN/NOTIFY channel for change events. It knows nothing of HTTP or of
// the gateway's types: reports travel as JSON, bindings as strings. What
// the gateway builds on it is described in docs/replicas.md.
package pgstate

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secretgate/secretgate/internal/pgconn"
)

// DefaultSchema holds the tables when the configuration names no schema.
const DefaultSchema = "secretgate_state"

// Migration states, as the gateway's reports spell them.
const StateRunning = "running"

// Store is one replica's handle on the shared state.
type Store struct {
	pool    *pgxpool.Pool
	schema  string
	q       string // quoted schema
	channel string
}

// Open connects, and creates or checks the schema.
func Open(ctx context.Context, dsn, schema string) (*Store, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !pgconn.ValidSchema(schema) {
		return nil, fmt.Errorf("schema %q is not a lower-case PostgreSQL identifier", schema)
	}
	// One connection listens; heartbeats, saves and migration reads share
	// the rest, a handful at most.
	pcfg, err := pgconn.ParsePool(dsn, "secretgate-state", 4)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = max(pcfg.MaxConns, 2)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the state database: %w", err)
	}
	s := &Store{pool: pool, schema: schema, q: pgx.Identifier{schema}.Sanitize(), channel: schema}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

func (s *Store) sql(q string) string { return strings.ReplaceAll(q, "{s}", s.q) }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// PageKey returns the 32-byte key every replica seals page tokens with,
// drawing it on first use. Page tokens hold backend cursors and names,
// never values; the key lives in the state database so that any replica
// can continue a listing another one began.
func (s *Store) PageKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	var key []byte
	err := s.pool.QueryRow(ctx, s.sql(`WITH i AS (
		INSERT INTO {s}.meta (key, value) VALUES ('page_token_key', $1) ON CONFLICT (key) DO NOTHING RETURNING value
	) SELECT value FROM i UNION ALL SELECT value FROM {s}.meta WHERE key = 'page_token_key'`), fresh).Scan(&key)
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("page token key: %d bytes in %s.meta, want 32", len(key), s.schema)
	}
	return key, nil
}

// Snapshot is the shared routing state at one epoch.
type Snapshot struct {
	Epoch int64
	// Routing is project -> backend, as migrations switched them.
	Routing map[string]string
	// Paused is project -> the migration that pauses its writes.
	Paused map[string]string
}

// Snapshot reads the routing state in one transaction.
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Routing: map[string]string{}, Paused: map[string]string{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, s.sql(`SELECT value FROM {s}.epoch WHERE id = 1`)).Scan(&snap.Epoch); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, s.sql(`SELECT project, backend FROM {s}.routing`))
		if err != nil {
			return err
		}
		for rows.Next() {
			var p, b string
			if err := rows.Scan(&p, &b); err != nil {
				return err
			}
			snap.Routing[p] = b
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, s.sql(`SELECT id, paused FROM {s}.migrations WHERE state = 'running' AND cardinality(paused) > 0`))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var paused []string
			if err := rows.Scan(&id, &paused); err != nil {
				return err
			}
			for _, p := range paused {
				snap.Paused[p] = id
			}
		}
		return rows.Err()
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading the shared state: %w", err)
	}
	return snap, nil
}

// upsertReplica records a replica's heartbeat and the epoch it applied (an
// acknowledgement never goes back).
const upsertReplica = `INSERT INTO {s}.replicas (id, acked_epoch) VALUES ($1, $2)
	ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), acked_epoch = GREATEST({s}.replicas.acked_epoch, $2)`

// Heartbeat records that replica is alive and has applied epoch acked,
// renews the leases of the migrations it runs, and returns the current
// epoch and the migrations it still owns (a lease another replica took
// over is missing from the list).
func (s *Store) Heartbeat(ctx context.Context, replica string, acked int64, lease time.Duration) (int64, []string, error) {
	var epoch int64
	var owned []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.sql(upsertReplica), replica, acked); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, s.sql(`UPDATE {s}.migrations SET lease_until = now() + make_interval(secs => $2::float8)
			WHERE owner = $1 AND state = 'running' RETURNING id`), replica, lease.Seconds())
		if err != nil {
			return err
		}
		if owned, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		// Replicas silent for an hour are gone for good: forget them.
		if _, err := tx.Exec(ctx, s.sql(`DELETE FROM {s}.replicas WHERE heartbeat_at < now() - interval '1 hour'`)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, s.sql(`SELECT value FROM {s}.epoch WHERE id = 1`)).Scan(&epoch)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("heartbeat: %w", err)
	}
	return epoch, owned, nil
}

// Ack records that replica applied epoch (and drained the writes it paused).
func (s *Store) Ack(ctx context.Context, replica string, epoch int64) error {
	_, err := s.pool.Exec(ctx, s.sql(upsertReplica), replica, epoch)
	if err != nil {
		return fmt.Errorf("acknowledging epoch %d: %w", epoch, err)
	}
	return nil
}

// Leave removes replica from the heartbeat table and gives up its leases
// at once, so another replica resumes its migrations without waiting for
// them to expire (a clean shutdown).
func (s *Store) Leave(ctx context.Context, replica string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.sql(`UPDATE {s}.migrations SET lease_until = now() WHERE owner = $1 AND state = 'running'`), replica); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.sql(`DELETE FROM {s}.replicas WHERE id = $1`), replica)
		return err
	})
}

// Laggards names the replicas other than self that have neither
// acknowledged epoch nor been silent for longer than stale: a replica
// silent that long refuses writes by itself (its view is too old), so it
// needs no acknowledgement.
func (s *Store) Laggards(ctx context.Context, self string, epoch int64, stale time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, s.sql(`SELECT id FROM {s}.replicas
		WHERE id <> $1 AND acked_epoch < $2 AND heartbeat_at > now() - make_interval(secs => $3::float8) ORDER BY id`), self, epoch, stale.Seconds())
	if err != nil {
		return nil, fmt.Errorf("reading replicas: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading replicas: %w", err)
	}
	return ids, nil
}

// bump increments the epoch inside tx and tells every replica to reload.
func (s *Store) bump(ctx context.Context, tx pgx.Tx) (int64, error) {
	var epoch int64
	if err := tx.QueryRow(ctx, s.sql(`UPDATE {s}.epoch SET value = value + 1 WHERE id = 1 RETURNING value`)).Scan(&epoch); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, fmt.Sprintf("s%d", epoch)); err != nil {
		return 0, err
	}
	return epoch, nil
}

// ErrNotOwner is a change to a migration whose lease this replica lost.
var ErrNotOwner = errors.New("the migration is now run by another replica")

// BusyError is a project claimed by another running migration.
type BusyError struct{ Project, Migration string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("project %q is being migrated by %s", e.Project, e.Migration)
}

// StartMigration records a new running migration owned by replica and,
// when pause is set, pauses writes to its projects (a new epoch, returned).
// A project claimed by another running migration is a *BusyError.
func (s *Store) StartMigration(ctx context.Context, id, replica string, projects []string, pause bool, report json.RawMessage, lease time.Duration) (int64, error) {
	var epoch int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One claim at a time, so two replicas cannot both see a project free.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(s.schema)+1); err != nil {
			return err
		}
		var busyID, busyProject string
		err := tx.QueryRow(ctx, s.sql(`SELECT m.id, p FROM {s}.migrations m, unnest(m.projects) p
			WHERE m.state = 'running' AND p = ANY($1) LIMIT 1`), projects).Scan(&busyID, &busyProject)
		switch {
		case err == nil:
			return &BusyError{Project: busyProject, Migration: busyID}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		paused := []string{}
		if pause {
			paused = projects
		}
		if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {s}.migrations (id, state, projects, paused, owner, lease_until, report)
			VALUES ($1, 'running', $2, $3, $4, now() + make_interval(secs => $5::float8), $6)`), id, projects, paused, replica, lease.Seconds(), report); err != nil {
			return err
		}
		if pause {
			if epoch, err = s.bump(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		var busy *BusyError
		if errors.As(err, &busy) {
			return 0, err
		}
		return 0, fmt.Errorf("recording migration %s: %w", id, err)
	}
	return epoch, nil
}

// Update is a change a migration's owner makes to its row.
type Update struct {
	State  string
	Report json.RawMessage
	// Paused replaces the paused projects when not nil; a change bumps
	// the epoch. A migration that is no longer running pauses nothing.
	Paused []string
	// Routing, when not nil, switches projects to backends in the same
	// transaction (and bumps the epoch).
	Routing map[string]string
}

// SaveMigration applies u to migration id if replica still owns it
// (ErrNotOwner otherwise). It returns the new epoch, or 0 if none.
func (s *Store) SaveMigration(ctx context.Context, id, replica string, u Update, keep int) (int64, error) {
	var epoch int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var old []string
		err := tx.QueryRow(ctx, s.sql(`SELECT paused FROM {s}.migrations WHERE id = $1 AND owner = $2 AND state = 'running' FOR UPDATE`), id, replica).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotOwner
		}
		if err != nil {
			return err
		}
		paused := old
		if u.Paused != nil {
			paused = u.Paused
		}
		if u.State != StateRunning {
			paused = []string{}
		}
		if _, err := tx.Exec(ctx, s.sql(`UPDATE {s}.migrations SET state = $2, report = $3, paused = $4, updated_at = now() WHERE id = $1`),
			id, u.State, u.Report, paused); err != nil {
			return err
		}
		for p, b := range u.Routing {
			if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {s}.routing (project, backend) VALUES ($1, $2)
				ON CONFLICT (project) DO UPDATE SET backend = $2, updated_at = now()`), p, b); err != nil {
				return err
			}
		}
		if u.Routing != nil || !sameSet(old, paused) {
			if epoch, err = s.bump(ctx, tx); err != nil {
				return err
			}
		}
		if u.State != StateRunning && keep > 0 {
			_, err = tx.Exec(ctx, s.sql(`DELETE FROM {s}.migrations WHERE state <> 'running' AND seq <
				(SELECT min(seq) FROM (SELECT seq FROM {s}.migrations WHERE state <> 'running' ORDER BY seq DESC LIMIT $1) k)`), keep)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotOwner) {
			return 0, err
		}
		return 0, fmt.Errorf("saving migration %s: %w", id, err)
	}
	return epoch, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	in := make(map[string]bool, len(a))
	for _, x := range a {
		in[x] = true
	}
	for _, x := range b {
		if !in[x] {
			return false
		}
	}
	return true
}

// Reports returns every journalled migration's report, oldest first.
func (s *Store) Reports(ctx context.Context) ([]json.RawMessage, error) {
	rows, err := s.pool.Query(ctx, s.sql(`SELECT report FROM {s}.migrations ORDER BY seq`))
	if err != nil {
		return nil, fmt.Errorf("reading the migration journal: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
	if err != nil {
		return nil, fmt.Errorf("reading the migration journal: %w", err)
	}
	return out, nil
}

// Report returns one migration's report.
func (s *Store) Report(ctx context.Context, id string) (json.RawMessage, bool, error) {
	var rep json.RawMessage
	err := s.pool.QueryRow(ctx, s.sql(`SELECT report FROM {s}.migrations WHERE id = $1`), id).Scan(&rep)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading migration %s: %w", id, err)
	}
	return rep, true, nil
}

// TakeOver gives replica the oldest running migration whose lease expired
// (its owner died or lost the database), if any.
func (s *Store) TakeOver(ctx context.Context, replica string, lease time.Duration) (string, json.RawMessage, bool, error) {
	var id string
	var rep json.RawMessage
	err := s.pool.QueryRow(ctx, s.sql(`UPDATE {s}.migrations SET owner = $1, lease_until = now() + make_interval(secs => $2::float8)
		WHERE id = (SELECT id FROM {s}.migrations WHERE state = 'running' AND lease_until < now() ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id, report`), replica, lease.Seconds()).Scan(&id, &rep)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("taking over a migration: %w", err)
	}
	return id, rep, true, nil
}

// Publish sends a change event to every replica (payloads over PostgreSQL's
// 8000-byte limit are the caller's to avoid).
func (s *Store) Publish(ctx context.Context, payload []byte) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, "e"+string(payload)); err != nil {
		return fmt.Errorf("publishing an event: %w", err)
	}
	return nil
}

// MaxEventPayload is the largest payload Publish can carry.
const MaxEventPayload = 7900

// Listen holds one connection on the channel until ctx ends or the
// connection fails. onEpoch gets each new epoch announced, onEvent each
// event payload; ready is called once the connection listens (a caller
// reloads then, since notifications sent before were missed).
func (s *Store) Listen(ctx context.Context, ready func(), onEpoch func(int64), onEvent func([]byte)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	// A listening connection must not go back to the pool.
	defer conn.Release()
	defer conn.Conn().Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	ready()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listening: %w", err)
		}
		switch {
		case strings.HasPrefix(n.Payload, "s"):
			var e int64
			if _, err := fmt.Sscan(n.Payload[1:], &e); err == nil {
				onEpoch(e)
			}
		case strings.HasPrefix(n.Payload, "e"):
			onEvent([]byte(n.Payload[1:]))
		}
	}
}
