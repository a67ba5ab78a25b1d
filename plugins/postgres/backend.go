package postgres

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"os"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/internal/pgconn"
	"github.com/secretgate/secretgate/sdk"
)

// domain separates this backend's ciphertexts from the file backend's.
const domain = envelope.Domain("postgres")

// ErrDecrypt is wrapped by every error about a ciphertext that does not
// authenticate (altered, or moved under another project, name or version).
var ErrDecrypt = envelope.ErrDecrypt

// ErrKeyMismatch is wrapped by Configure's error when the key-encryption
// key is not the one the schema was created (or last rotated) with.
var ErrKeyMismatch = envelope.ErrKeyMismatch

// Backend is the PostgreSQL backend. The zero value is not usable: get one
// from New or NewBackend, then Configure it.
type Backend struct {
	log hclog.Logger

	// mu guards the pool, the KEK and the settings. Every operation holds
	// it for reading; Configure and Close hold it for writing.
	mu          sync.RWMutex
	pool        *pgxpool.Pool
	q           *queries
	schema      string
	kek         cipher.AEAD
	verifier    []byte // of kek, as stored when Configure ran
	maxVersions int
	createdKey  string

	// deks caches unwrapped data keys by project. A data key never changes
	// once created (rotation re-wraps it, keeping its id), and the cached id
	// is checked against the stored record on every use.
	deksMu sync.Mutex
	deks   map[string]*envelope.DataKey
}

var _ sdk.Backend = (*Backend)(nil)

// New returns an unconfigured backend that logs to stderr as JSON lines
// (the format a go-plugin host reads back into its own log).
func New() sdk.Backend { return NewBackend(nil) }

// NewBackend is New with a logger of the caller's; nil means the default.
func NewBackend(logger hclog.Logger) *Backend {
	if logger == nil {
		// Made now, not in Configure: go-plugin's Serve later swaps
		// os.Stderr for a pipe whose lines reach the host raw.
		logger = hclog.New(&hclog.LoggerOptions{Name: "postgres", Level: hclog.Info, Output: os.Stderr, JSONFormat: true})
	}
	return &Backend{log: logger, deks: map[string]*envelope.DataKey{}}
}

// Configure connects, creates or migrates the schema, and unlocks it with
// the configured key; with a previous_* key source set, it re-wraps every
// data key under the new key first. All of that is one transaction under
// an advisory lock, so replicas starting together do it once. Called again,
// it closes the pool it had first.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	cfg, err := parseSettings(settings)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeLocked()
	b.createdKey = ""

	// pgx's default (4 on a small machine) queues concurrent writers
	// behind each other's commit fsync; PostgreSQL commits concurrent
	// transactions in one flush, so more connections write faster
	// (docs/benchmarks.md: PUT 303-517 -> 559-652 req/s with 12).
	pcfg, err := pgconn.ParsePool(cfg.dsn, "secretgate", DefaultPoolMaxConns)
	if err != nil {
		return sdk.Invalid(SettingDSN, "%v", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return mapErr(ctx, "connecting", err)
	}
	q := newQueries(cfg.schema)
	u, from, err := setUp(ctx, pool, q, cfg)
	if err != nil {
		pool.Close()
		return err
	}
	if from < SchemaVersion {
		b.log.Info("migrated the database schema", "schema", cfg.schema, "from", from, "to", SchemaVersion)
	}
	if u.createdKey != "" {
		b.createdKey = u.createdKey
		b.log.Info("created new key file", "path", u.createdKey)
	}
	switch {
	case u.rotated >= 0:
		b.log.Info("rotated the key-encryption key: re-wrapped every data key; remove the previous key setting",
			"data_keys", u.rotated, "from", cfg.keys.Previous.Setting, "to", cfg.keys.Current.Setting, "schema", cfg.schema)
	case u.doneBefore:
		b.log.Info("key rotation already done: remove the previous key setting", "setting", cfg.keys.Previous.Setting, "schema", cfg.schema)
	}
	b.pool, b.q, b.schema, b.kek, b.verifier, b.maxVersions = pool, q, cfg.schema, u.kek, u.verifier, cfg.maxVersions
	return nil
}

// setUp is Configure's transaction: migrate, then unlock.
func setUp(ctx context.Context, pool *pgxpool.Pool, q *queries, cfg *config) (*unlocked, int, error) {
	var u *unlocked
	from := 0
	err := retry(ctx, func() error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(cfg.schema)); err != nil {
			return fmt.Errorf("waiting for other replicas' configuration: %w", err)
		}
		if from, err = migrate(ctx, tx, q, cfg.schema); err != nil {
			return err
		}
		if u, err = unlock(ctx, tx, q, cfg); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, from, mapErr(ctx, "configuring schema "+fmt.Sprintf("%q", cfg.schema), err)
	}
	return u, from, nil
}

// CreatedKeyFile returns the key file's path when the last Configure
// created it; "" otherwise.
func (b *Backend) CreatedKeyFile() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.createdKey
}

// Close closes the connection pool. Later calls fail with ErrUnavailable
// until Configure is called again.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeLocked()
	return nil
}

func (b *Backend) closeLocked() {
	if b.pool != nil {
		b.pool.Close()
	}
	b.pool, b.kek, b.verifier = nil, nil, nil
	b.deksMu.Lock()
	b.deks = map[string]*envelope.DataKey{}
	b.deksMu.Unlock()
}

var errNotConfigured = fmt.Errorf("postgres backend is not configured: %w", sdk.ErrUnavailable)

// Capabilities: versions, atomic check-and-set, labels, and the number of
// versions kept.
func (b *Backend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	unlock, err := b.begin(ctx)
	if err != nil {
		return sdk.Capabilities{}, err
	}
	defer unlock()
	return sdk.Capabilities{Backend: "postgres", Versions: true, MaxVersions: b.maxVersions, CAS: true, Labels: true}, nil
}

// Ping checks that the database answers.
func (b *Backend) Ping(ctx context.Context) error {
	unlock, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.pool.Ping(ctx); err != nil {
		return mapErr(ctx, "ping", err)
	}
	return nil
}

// begin checks the context and the configuration and takes the read lock;
// the caller defers the returned unlock.
func (b *Backend) begin(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	if b.pool == nil {
		b.mu.RUnlock()
		return nil, errNotConfigured
	}
	return b.mu.RUnlock, nil
}

// dataKeyOf returns the project's unwrapped data key for its stored record,
// from the cache when the ids match.
func (b *Backend) dataKeyOf(project string, rec []byte) (*envelope.DataKey, error) {
	b.deksMu.Lock()
	dk := b.deks[project]
	b.deksMu.Unlock()
	if dk != nil && len(rec) >= envelope.IDSize && bytes.Equal(dk.ID, rec[:envelope.IDSize]) {
		return dk, nil
	}
	dk, err := domain.UnwrapDEK(b.kek, project, rec)
	if err != nil {
		return nil, err
	}
	b.cacheDataKey(project, dk)
	return dk, nil
}

func (b *Backend) cacheDataKey(project string, dk *envelope.DataKey) {
	b.deksMu.Lock()
	b.deks[project] = dk
	b.deksMu.Unlock()
}

// inTx runs fn in a read-committed transaction, again on a serialization
// failure or a deadlock (retry), and commits.
func (b *Backend) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return retry(ctx, func() error {
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
}

// errNoRows tells a missing row from a failure.
func errNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
