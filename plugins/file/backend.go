package file

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

// DefaultMaxVersions is how many versions of a secret are kept when the
// max_versions setting is absent.
const DefaultMaxVersions = 10

// lockTimeout bounds the wait for bbolt's exclusive file lock, so that a
// second process opening the same database fails clearly instead of hanging.
const lockTimeout = time.Second

// Setting names.
const (
	SettingPath                  = "path"
	SettingKeyFile               = "key_file"
	SettingKeyEnv                = "key_env"
	SettingPassphraseEnv         = "passphrase_env"
	SettingPreviousKeyFile       = "previous_key_file"
	SettingPreviousKeyEnv        = "previous_key_env"
	SettingPreviousPassphraseEnv = "previous_passphrase_env"
	SettingMaxVersions           = "max_versions"
)

var knownSettings = []string{
	SettingPath, SettingKeyFile, SettingKeyEnv, SettingPassphraseEnv,
	SettingPreviousKeyFile, SettingPreviousKeyEnv, SettingPreviousPassphraseEnv, SettingMaxVersions,
}

// Backend is the encrypted bbolt file backend. The zero value is not
// usable: get one from New or NewBackend, then Configure it.
type Backend struct {
	log hclog.Logger

	// mu guards db, kek and the settings. Every operation holds it for
	// reading; Configure, RotateKEK and Close hold it for writing, so that
	// no write can wrap a new data key with a KEK that is being replaced.
	mu          sync.RWMutex
	db          *bolt.DB
	path        string
	kek         cipher.AEAD
	maxVersions int
	createdKey  string

	// deks caches unwrapped data keys by project. A project's data key never
	// changes once created (rotation re-wraps it, keeping its id), and the
	// cached id is checked against the stored record on every use.
	deksMu sync.Mutex
	deks   map[string]*envelope.DataKey

	records recordCache

	// group batches concurrent writes into shared commits.
	group groupCommitter
}

var _ sdk.Backend = (*Backend)(nil)

// New returns an unconfigured file backend that logs to stderr as JSON
// lines (the format a go-plugin host reads back into its own log).
func New() sdk.Backend { return NewBackend(nil) }

// NewBackend is New with a logger of the caller's; nil means the default.
func NewBackend(logger hclog.Logger) *Backend {
	if logger == nil {
		// Made now, not in Configure: go-plugin's Serve later swaps
		// os.Stderr for a pipe whose lines reach the host raw, while the
		// process's own stderr is what the host parses as log lines.
		logger = hclog.New(&hclog.LoggerOptions{Name: "file", Level: hclog.Info, Output: os.Stderr, JSONFormat: true})
	}
	return &Backend{log: logger, deks: map[string]*envelope.DataKey{}}
}

// Configure opens (or creates) the database and unlocks it with the
// configured key. Called again, it closes the database it had open first.
// With a previous_* key source set, it opens with that key and re-wraps
// every data key under the new one in one transaction (see the package
// doc); run again with the same settings, it sees the rotation done.
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
	if b.db != nil {
		_ = b.db.Close()
		b.db, b.kek = nil, nil
	}
	b.createdKey = ""
	b.deksMu.Lock()
	b.deks = map[string]*envelope.DataKey{}
	b.records.forget()
	b.deksMu.Unlock()

	db, err := openDB(cfg.path)
	if err != nil {
		return err
	}
	kek, err := b.unlock(db, cfg)
	if err != nil {
		_ = db.Close()
		return err
	}
	b.db, b.kek, b.path, b.maxVersions = db, kek, cfg.path, cfg.maxVersions
	return nil
}

// openDB creates the parent directory (0700) and opens the bbolt file
// (0600). An existing file that group or others may access is refused.
func openDB(path string) (*bolt.DB, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: creating directory %s: %w", SettingPath, dir, err)
	}
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return nil, sdk.Invalid(SettingPath, "%s is not a regular file", path)
		}
		if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
			return nil, sdk.Invalid(SettingPath, "%s has mode %04o: the database must not be accessible by group or others (run: chmod 600 %s)",
				path, st.Mode().Perm(), path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", SettingPath, err)
	}
	// NoSync stays false: every committed transaction is fsync'd.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, PageSize: newDatabasePageSize})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: database %s is locked by another process (another secretgate server or plugin has it open): %w",
			SettingPath, path, sdk.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: opening database %s: %w", SettingPath, path, err)
	}
	return db, nil
}

// newDatabasePageSize is the page size of a database this backend creates;
// one that exists keeps the page size it was made with (bbolt reads it from
// the file), so nothing needs migrating. bbolt writes each dirty page with
// a call of its own, and with 16 KiB pages instead of the system's 4 KiB a
// commit of a batch of writes touches fewer of them: 1.1 instead of 2.4
// pwrite calls per PUT at 32 clients, and about a tenth less of the
// plugin's processor per PUT (docs/benchmarks.md).
const newDatabasePageSize = 16 << 10

// CreatedKeyFile returns the key file's path when the last Configure
// created it, so that a caller in the same process can say so; "" otherwise.
func (b *Backend) CreatedKeyFile() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.createdKey
}

// Path returns the database file's path ("" before Configure).
func (b *Backend) Path() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.path
}

// Close closes the database and releases its file lock. Later calls fail
// with ErrUnavailable until Configure is called again.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		return nil
	}
	err := b.db.Close()
	b.db, b.kek = nil, nil
	b.deksMu.Lock()
	b.deks = map[string]*envelope.DataKey{}
	b.records.forget()
	b.deksMu.Unlock()
	return err
}

var errNotConfigured = fmt.Errorf("file backend is not configured: %w", sdk.ErrUnavailable)

// Capabilities: versions, atomic check-and-set, labels, the number of
// versions kept, and audit receipts committed with each write.
func (b *Backend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Capabilities{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return sdk.Capabilities{}, errNotConfigured
	}
	return sdk.Capabilities{Backend: "file", Versions: true, MaxVersions: b.maxVersions, CAS: true, Labels: true, Receipts: true}, nil
}

// Ping checks that the database answers a read transaction.
func (b *Backend) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return errNotConfigured
	}
	if err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketProjects) == nil {
			return errors.New("the database is not initialised")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("database %s: %v: %w", b.path, err, sdk.ErrUnavailable)
	}
	return nil
}
