package file

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

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
	deks   map[string]*dataKey

	records recordCache
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
	return &Backend{log: logger, deks: map[string]*dataKey{}}
}

// config is the parsed settings.
type config struct {
	path        string
	current     kekSource
	previous    *kekSource
	maxVersions int
}

func parseSettings(settings map[string]string) (*config, error) {
	for k := range settings {
		if !contains(knownSettings, k) {
			return nil, sdk.Invalid(k, "unknown setting of the file backend (known: %s)", strings.Join(knownSettings, ", "))
		}
	}
	cfg := &config{path: settings[SettingPath], maxVersions: DefaultMaxVersions}
	if cfg.path == "" {
		return nil, sdk.Invalid(SettingPath, "is required: the database file")
	}
	cur, err := oneSource(settings, true, SettingKeyFile, SettingKeyEnv, SettingPassphraseEnv)
	if err != nil {
		return nil, err
	}
	cfg.current = *cur
	cfg.previous, err = oneSource(settings, false, SettingPreviousKeyFile, SettingPreviousKeyEnv, SettingPreviousPassphraseEnv)
	if err != nil {
		return nil, err
	}
	if cfg.previous != nil && cfg.previous.kind == cfg.current.kind && cfg.previous.value == cfg.current.value {
		return nil, sdk.Invalid(cfg.previous.setting, "names the same key source as %s", cfg.current.setting)
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

// oneSource picks the one key source among the given settings (file, env,
// passphrase, in that order of kinds).
func oneSource(settings map[string]string, required bool, names ...string) (*kekSource, error) {
	kinds := []kekKind{kindKeyFile, kindKeyEnv, kindPassphraseEnv}
	var found *kekSource
	for i, n := range names {
		v := settings[n]
		if v == "" {
			continue
		}
		if found != nil {
			return nil, sdk.Invalid(n, "conflicts with %s: set exactly one of %s", found.setting, strings.Join(names, ", "))
		}
		found = &kekSource{setting: n, kind: kinds[i], value: v}
	}
	if found == nil && required {
		return nil, sdk.Invalid(names[0], "no key source: set exactly one of %s", strings.Join(names, ", "))
	}
	return found, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
	b.deks = map[string]*dataKey{}
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
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: database %s is locked by another process (another secretgate server or plugin has it open): %w",
			SettingPath, path, sdk.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: opening database %s: %w", SettingPath, path, err)
	}
	return db, nil
}

// keyState is what the meta bucket says about the KEK.
type keyState struct {
	verifier []byte
	kdf      *kdfParams
}

func readKeyState(db *bolt.DB) (keyState, error) {
	var st keyState
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get(keyVerifier); v != nil {
			st.verifier = append([]byte(nil), v...)
		}
		if v := meta.Get(keyKDF); v != nil {
			st.kdf = new(kdfParams)
			if err := json.Unmarshal(v, st.kdf); err != nil {
				return fmt.Errorf("reading the stored key derivation parameters: %w", err)
			}
		}
		return nil
	})
	return st, err
}

// unlock returns the KEK for db: it initialises a new database, checks the
// key of an existing one, or rotates from the previous key.
func (b *Backend) unlock(db *bolt.DB, cfg *config) (cipher.AEAD, error) {
	st, err := readKeyState(db)
	if err != nil {
		return nil, err
	}
	if st.verifier == nil {
		if cfg.previous != nil {
			return nil, sdk.Invalid(cfg.previous.setting, "database %s has no key yet, so there is nothing to rotate from", cfg.path)
		}
		return b.initialise(db, cfg)
	}

	cur, err := b.existingKey(cfg.current, st, cfg.previous != nil)
	if err != nil {
		return nil, err
	}
	if cur != nil && checkVerifier(cur, st.verifier) {
		if cfg.previous != nil {
			b.log.Info("key rotation already done: remove the previous key setting", "setting", cfg.previous.setting, "path", cfg.path)
		}
		return cur, nil
	}
	if cfg.previous == nil {
		return nil, fmt.Errorf("%s: %w %s", cfg.current.setting, ErrKeyMismatch, cfg.path)
	}
	prev, err := b.existingKey(*cfg.previous, st, false)
	if err != nil {
		return nil, err
	}
	if prev == nil || !checkVerifier(prev, st.verifier) {
		return nil, fmt.Errorf("neither %s nor %s: %w %s", cfg.current.setting, cfg.previous.setting, ErrKeyMismatch, cfg.path)
	}
	next, kdf, err := b.newKey(cfg.current)
	if err != nil {
		return nil, err
	}
	n, err := rotate(db, prev, next, kdf)
	if err != nil {
		return nil, err
	}
	b.log.Info("rotated the key-encryption key: re-wrapped every data key; remove the previous key setting",
		"data_keys", n, "from", cfg.previous.setting, "to", cfg.current.setting, "path", cfg.path)
	return next, nil
}

// initialise stores the verifier (and the KDF parameters) of a new database.
func (b *Backend) initialise(db *bolt.DB, cfg *config) (cipher.AEAD, error) {
	kek, kdf, err := b.newKey(cfg.current)
	if err != nil {
		return nil, err
	}
	verifier, err := newVerifier(kek)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketProjects); err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
		if err := putKDF(meta, kdf); err != nil {
			return err
		}
		return meta.Put(keyVerifier, verifier)
	})
	if err != nil {
		return nil, fmt.Errorf("initialising database %s: %w", cfg.path, err)
	}
	return kek, nil
}

// existingKey derives the key of src for a database that has a verifier. It
// returns nil, nil when src cannot be this database's key (a passphrase for
// a database without a salt). A key file that does not exist is an error,
// unless mayCreate: an existing database is never silently re-keyed.
func (b *Backend) existingKey(src kekSource, st keyState, mayCreate bool) (cipher.AEAD, error) {
	var key []byte
	var err error
	switch src.kind {
	case kindKeyFile:
		key, err = loadKeyFile(src.setting, src.value)
		if errors.Is(err, fs.ErrNotExist) {
			if mayCreate {
				return nil, nil // newKey creates it for the rotation
			}
			return nil, sdk.Invalid(src.setting, "%s does not exist, but the database already holds data sealed by a key: "+
				"refusing to make a new key (restore the key file, or rotate with previous_key_file)", src.value)
		}
	case kindKeyEnv:
		key, err = keyFromEnv(src)
	case kindPassphraseEnv:
		if st.kdf == nil {
			return nil, nil
		}
		key, err = passphraseKey(src, st.kdf)
	}
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return newAEAD(key)
}

// newKey derives the key of src for sealing anew: a key file is created if
// missing (and that is logged, once), a passphrase gets a fresh salt.
func (b *Backend) newKey(src kekSource) (cipher.AEAD, *kdfParams, error) {
	var key []byte
	var kdf *kdfParams
	var err error
	switch src.kind {
	case kindKeyFile:
		var created bool
		key, created, err = loadOrCreateKeyFile(src.setting, src.value)
		if created {
			b.createdKey = src.value
			b.log.Info("created new key file", "path", src.value)
		}
	case kindKeyEnv:
		key, err = keyFromEnv(src)
	case kindPassphraseEnv:
		if kdf, err = newKDFParams(); err == nil {
			key, err = passphraseKey(src, kdf)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	defer clear(key)
	aead, err := newAEAD(key)
	return aead, kdf, err
}

func putKDF(meta *bolt.Bucket, kdf *kdfParams) error {
	if kdf == nil {
		return meta.Delete(keyKDF)
	}
	enc, err := json.Marshal(kdf)
	if err != nil {
		return err
	}
	return meta.Put(keyKDF, enc)
}

// rotate re-wraps every data key from oldKEK to newKEK and replaces the
// verifier and KDF parameters, all in one transaction: a crash leaves
// either the old key or the new one in force, never a mix. Secret
// ciphertexts are not touched.
func rotate(db *bolt.DB, oldKEK, newKEK cipher.AEAD, kdf *kdfParams) (int, error) {
	verifier, err := newVerifier(newKEK)
	if err != nil {
		return 0, err
	}
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		projects := tx.Bucket(bucketProjects)
		if meta == nil || projects == nil {
			return errors.New("the database is not initialised")
		}
		if !checkVerifier(oldKEK, meta.Get(keyVerifier)) {
			return fmt.Errorf("the current key: %w", ErrKeyMismatch)
		}
		// Collect names first: writing into nested buckets while a cursor
		// walks their parent is not something to rely on.
		var names []string
		if err := projects.ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		}); err != nil {
			return err
		}
		sort.Strings(names)
		for _, p := range names {
			pb := projects.Bucket([]byte(p))
			rec := pb.Get(keyDEK)
			if rec == nil {
				continue
			}
			wrapped, err := rewrapDEK(oldKEK, newKEK, p, rec)
			if err != nil {
				return err
			}
			if err := pb.Put(keyDEK, wrapped); err != nil {
				return err
			}
			n++
		}
		if err := putKDF(meta, kdf); err != nil {
			return err
		}
		return meta.Put(keyVerifier, verifier)
	})
	if err != nil {
		return 0, fmt.Errorf("rotating the key-encryption key: %w", err)
	}
	return n, nil
}

// RotateKEK re-wraps every data key under newKey (32 bytes), in one
// transaction, while the backend keeps serving: operations wait for the
// transaction, none fails. Secret ciphertexts are not rewritten. Afterwards
// only newKey opens the database (through key_file or key_env); a stored
// passphrase salt is dropped. The caller keeps newKey somewhere safe first.
func (b *Backend) RotateKEK(ctx context.Context, newKey []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	next, err := newAEAD(newKey)
	if err != nil {
		return sdk.Invalid("key", "must be 32 bytes (AES-256)")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.db == nil {
		return errNotConfigured
	}
	n, err := rotate(b.db, b.kek, next, nil)
	if err != nil {
		return err
	}
	b.kek = next
	b.log.Info("rotated the key-encryption key: re-wrapped every data key", "data_keys", n, "path", b.path)
	return nil
}

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
	b.deks = map[string]*dataKey{}
	b.records.forget()
	b.deksMu.Unlock()
	return err
}

var errNotConfigured = fmt.Errorf("file backend is not configured: %w", sdk.ErrUnavailable)

// Capabilities: versions, atomic check-and-set, labels, and the number of
// versions kept.
func (b *Backend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Capabilities{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.db == nil {
		return sdk.Capabilities{}, errNotConfigured
	}
	return sdk.Capabilities{Backend: "file", Versions: true, MaxVersions: b.maxVersions, CAS: true, Labels: true}, nil
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
