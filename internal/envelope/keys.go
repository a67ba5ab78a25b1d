package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/secretgate/secretgate/sdk"
)

// The key settings, the same in every backend that uses this package.
const (
	SettingKeyFile               = "key_file"
	SettingKeyEnv                = "key_env"
	SettingPassphraseEnv         = "passphrase_env"
	SettingPreviousKeyFile       = "previous_key_file"
	SettingPreviousKeyEnv        = "previous_key_env"
	SettingPreviousPassphraseEnv = "previous_passphrase_env"
)

// Settings lists the key settings, for a backend's list of known settings.
var Settings = []string{
	SettingKeyFile, SettingKeyEnv, SettingPassphraseEnv,
	SettingPreviousKeyFile, SettingPreviousKeyEnv, SettingPreviousPassphraseEnv,
}

// Kind says where a key-encryption key comes from.
type Kind int

const (
	KindKeyFile Kind = iota + 1
	KindKeyEnv
	KindPassphraseEnv
)

// Source is one configured key source: the setting that named it and its
// value (a path or an environment variable's name, never key material).
type Source struct {
	Setting string // e.g. "key_file" or "previous_passphrase_env"
	Kind    Kind
	Value   string
}

// Sources are the key sources of a backend's settings: the current one and,
// while rotating, the previous one.
type Sources struct {
	Current  Source
	Previous *Source
}

// ParseSources reads the key settings: exactly one current source, at most
// one previous source, and not the same source twice.
func ParseSources(settings map[string]string) (Sources, error) {
	cur, err := oneSource(settings, true, SettingKeyFile, SettingKeyEnv, SettingPassphraseEnv)
	if err != nil {
		return Sources{}, err
	}
	prev, err := oneSource(settings, false, SettingPreviousKeyFile, SettingPreviousKeyEnv, SettingPreviousPassphraseEnv)
	if err != nil {
		return Sources{}, err
	}
	if prev != nil && prev.Kind == cur.Kind && prev.Value == cur.Value {
		return Sources{}, sdk.Invalid(prev.Setting, "names the same key source as %s", cur.Setting)
	}
	return Sources{Current: *cur, Previous: prev}, nil
}

// oneSource picks the one key source among the given settings (file, env,
// passphrase, in that order of kinds).
func oneSource(settings map[string]string, required bool, names ...string) (*Source, error) {
	kinds := []Kind{KindKeyFile, KindKeyEnv, KindPassphraseEnv}
	var found *Source
	for i, n := range names {
		v := settings[n]
		if v == "" {
			continue
		}
		if found != nil {
			return nil, sdk.Invalid(n, "conflicts with %s: set exactly one of %s", found.Setting, strings.Join(names, ", "))
		}
		found = &Source{Setting: n, Kind: kinds[i], Value: v}
	}
	if found == nil && required {
		return nil, sdk.Invalid(names[0], "no key source: set exactly one of %s", strings.Join(names, ", "))
	}
	return found, nil
}

// KDFParams are the argon2id parameters of a passphrase-derived KEK. A
// backend stores them beside its data with the salt: none of them is secret.
type KDFParams struct {
	Alg       string `json:"alg"` // always "argon2id"
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF is RFC 9106's second recommended argon2id option (t=3,
// m=64 MiB, p=4); a var so that tests may lower the cost.
var DefaultKDF = KDFParams{Alg: "argon2id", Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// NewKDFParams returns DefaultKDF with a fresh random 16-byte salt.
func NewKDFParams() (*KDFParams, error) {
	p := DefaultKDF
	p.Salt = make([]byte, 16)
	if _, err := rand.Read(p.Salt); err != nil {
		return nil, fmt.Errorf("reading a random salt: %w", err)
	}
	return &p, nil
}

// keyFileMaxBytes bounds what is read from a key file: a key file is 65
// bytes; anything much larger is not one.
const keyFileMaxBytes = 4096

// EnsureKeyFile makes sure path holds a key-encryption key: an existing file
// is only read and checked (mode 0600 or stricter, 64 hex digits or 32 raw
// bytes); a missing one is created 0600 (its directory 0700) with a fresh
// random key written as 64 hex digits and a newline. created tells the
// caller to say so, once. The key itself is never returned.
func EnsureKeyFile(path string) (created bool, err error) {
	key, created, err := LoadOrCreateKeyFile(SettingKeyFile, path)
	clear(key)
	return created, err
}

// LoadOrCreateKeyFile reads the key file at path, creating it first when it
// does not exist. The caller clears the key when done.
func LoadOrCreateKeyFile(setting, path string) (key []byte, created bool, err error) {
	key, err = LoadKeyFile(setting, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = createKeyFile(setting, path)
	if errors.Is(err, fs.ErrExist) {
		// Someone else created it between our read and our create: theirs wins.
		key, err = LoadKeyFile(setting, path)
		return key, false, err
	}
	return key, err == nil, err
}

// LoadKeyFile reads an existing key file. Like ssh with a private key, it
// refuses a file that group or others may access: a key anyone can read
// protects nothing. A missing file is an error wrapping fs.ErrNotExist.
func LoadKeyFile(setting, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	if !st.Mode().IsRegular() {
		return nil, sdk.Invalid(setting, "%s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, sdk.Invalid(setting, "%s has mode %04o: a key file must not be accessible by group or others (run: chmod 600 %s)",
			path, st.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, keyFileMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", setting, path, err)
	}
	defer clear(raw)
	key, err := parseKey(raw)
	if err != nil {
		return nil, sdk.Invalid(setting, "%s must hold a 256-bit key as 64 hex digits (or exactly 32 raw bytes)", path)
	}
	return key, nil
}

// parseKey accepts 64 hex digits (surrounding white space ignored) or
// exactly 32 raw bytes. The two never overlap: hex is 64 bytes long.
func parseKey(raw []byte) ([]byte, error) {
	if t := bytes.TrimSpace(raw); len(t) == 2*KeySize {
		key := make([]byte, KeySize)
		if _, err := hex.Decode(key, t); err == nil {
			return key, nil
		}
		clear(key)
	}
	if len(raw) == KeySize {
		return append([]byte(nil), raw...), nil
	}
	return nil, errors.New("not a 256-bit key")
}

// createKeyFile writes a fresh random key to a file that must not exist.
func createKeyFile(setting, path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: creating directory %s: %w", setting, dir, err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("%s: reading a random key: %w", setting, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	text := make([]byte, 2*KeySize+1)
	hex.Encode(text, key)
	text[2*KeySize] = '\n'
	_, werr := f.Write(text)
	clear(text)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		clear(key)
		_ = os.Remove(path) // a half-written key file would be worse than none
		return nil, fmt.Errorf("%s: writing %s: %w", setting, path, werr)
	}
	syncDir(dir)
	return key, nil
}

// syncDir makes a new directory entry durable; best effort, as not every
// platform can fsync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// KeyFromEnv reads a hex key from the environment variable named by src.
func KeyFromEnv(src Source) ([]byte, error) {
	v, ok := os.LookupEnv(src.Value)
	if !ok || v == "" {
		return nil, sdk.Invalid(src.Setting, "environment variable %q is not set", src.Value)
	}
	t := strings.TrimSpace(v)
	if len(t) != 2*KeySize {
		return nil, sdk.Invalid(src.Setting, "environment variable %q must hold a 256-bit key as 64 hex digits", src.Value)
	}
	key, err := hex.DecodeString(t)
	if err != nil {
		return nil, sdk.Invalid(src.Setting, "environment variable %q must hold a 256-bit key as 64 hex digits", src.Value)
	}
	return key, nil
}

// PassphraseKey derives a KEK from the passphrase in the environment
// variable named by src with argon2id and the stored parameters.
func PassphraseKey(src Source, p *KDFParams) ([]byte, error) {
	v, ok := os.LookupEnv(src.Value)
	if !ok || v == "" {
		return nil, sdk.Invalid(src.Setting, "environment variable %q is not set", src.Value)
	}
	if p.Alg != "argon2id" || len(p.Salt) < 16 || p.Time == 0 || p.MemoryKiB == 0 || p.Threads == 0 {
		return nil, fmt.Errorf("%s: the database's stored key derivation parameters are not usable (alg %q)", src.Setting, p.Alg)
	}
	pass := []byte(v)
	defer clear(pass)
	return argon2.IDKey(pass, p.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize), nil
}

// ExistingKey derives the key of src for a store that already has a
// verifier, with the store's KDF parameters (nil when it has none). It
// returns nil, nil when src cannot be the store's key (a passphrase for a
// store without a salt). A key file that does not exist is an error, unless
// mayCreate (the caller rotates to it, and NewKey creates it): an existing
// store is never silently re-keyed.
func ExistingKey(src Source, kdf *KDFParams, mayCreate bool) (cipher.AEAD, error) {
	var key []byte
	var err error
	switch src.Kind {
	case KindKeyFile:
		key, err = LoadKeyFile(src.Setting, src.Value)
		if errors.Is(err, fs.ErrNotExist) {
			if mayCreate {
				return nil, nil
			}
			return nil, sdk.Invalid(src.Setting, "%s does not exist, but the database already holds data sealed by a key: "+
				"refusing to make a new key (restore the key file, or rotate with previous_key_file)", src.Value)
		}
	case KindKeyEnv:
		key, err = KeyFromEnv(src)
	case KindPassphraseEnv:
		if kdf == nil {
			return nil, nil
		}
		key, err = PassphraseKey(src, kdf)
	default:
		return nil, fmt.Errorf("unknown key source kind %d", src.Kind)
	}
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return NewAEAD(key)
}

// NewKey derives the key of src for sealing anew: a key file is created if
// missing (created says so: the caller logs it, once), a passphrase gets a
// fresh salt, returned as kdf for the caller to store (nil otherwise).
func NewKey(src Source) (kek cipher.AEAD, kdf *KDFParams, created bool, err error) {
	var key []byte
	switch src.Kind {
	case KindKeyFile:
		key, created, err = LoadOrCreateKeyFile(src.Setting, src.Value)
	case KindKeyEnv:
		key, err = KeyFromEnv(src)
	case KindPassphraseEnv:
		if kdf, err = NewKDFParams(); err == nil {
			key, err = PassphraseKey(src, kdf)
		}
	default:
		err = fmt.Errorf("unknown key source kind %d", src.Kind)
	}
	if err != nil {
		return nil, nil, created, err
	}
	defer clear(key)
	kek, err = NewAEAD(key)
	return kek, kdf, created, err
}
