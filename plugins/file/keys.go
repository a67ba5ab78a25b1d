package file

import (
	"bytes"
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

// kekKind says where a key-encryption key comes from.
type kekKind int

const (
	kindKeyFile kekKind = iota + 1
	kindKeyEnv
	kindPassphraseEnv
)

// kekSource is one configured key source: the setting that named it and its
// value (a path or an environment variable's name, never key material).
type kekSource struct {
	setting string // e.g. "key_file" or "previous_passphrase_env"
	kind    kekKind
	value   string
}

// kdfParams are the argon2id parameters of a passphrase-derived KEK. They
// are stored in the meta bucket with the salt: none of them is secret.
type kdfParams struct {
	Alg       string `json:"alg"` // always "argon2id"
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// defaultKDF is RFC 9106's second recommended argon2id option (t=3,
// m=64 MiB, p=4); a var so that tests may lower the cost.
var defaultKDF = kdfParams{Alg: "argon2id", Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// newKDFParams returns defaultKDF with a fresh random 16-byte salt.
func newKDFParams() (*kdfParams, error) {
	p := defaultKDF
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
	key, created, err := loadOrCreateKeyFile("key_file", path)
	clear(key)
	return created, err
}

// loadOrCreateKeyFile reads the key file at path, creating it first when it
// does not exist.
func loadOrCreateKeyFile(setting, path string) (key []byte, created bool, err error) {
	key, err = loadKeyFile(setting, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = createKeyFile(setting, path)
	if errors.Is(err, fs.ErrExist) {
		// Someone else created it between our read and our create: theirs wins.
		key, err = loadKeyFile(setting, path)
		return key, false, err
	}
	return key, err == nil, err
}

// loadKeyFile reads an existing key file. Like ssh with a private key, it
// refuses a file that group or others may access: a key anyone can read
// protects nothing.
func loadKeyFile(setting, path string) ([]byte, error) {
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
	if t := bytes.TrimSpace(raw); len(t) == 2*keySize {
		key := make([]byte, keySize)
		if _, err := hex.Decode(key, t); err == nil {
			return key, nil
		}
		clear(key)
	}
	if len(raw) == keySize {
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
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("%s: reading a random key: %w", setting, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		clear(key)
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	text := make([]byte, 2*keySize+1)
	hex.Encode(text, key)
	text[2*keySize] = '\n'
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

// keyFromEnv reads a hex key from the environment variable named by src.
func keyFromEnv(src kekSource) ([]byte, error) {
	v, ok := os.LookupEnv(src.value)
	if !ok || v == "" {
		return nil, sdk.Invalid(src.setting, "environment variable %q is not set", src.value)
	}
	t := strings.TrimSpace(v)
	if len(t) != 2*keySize {
		return nil, sdk.Invalid(src.setting, "environment variable %q must hold a 256-bit key as 64 hex digits", src.value)
	}
	key, err := hex.DecodeString(t)
	if err != nil {
		return nil, sdk.Invalid(src.setting, "environment variable %q must hold a 256-bit key as 64 hex digits", src.value)
	}
	return key, nil
}

// passphraseKey derives a KEK from the passphrase in the environment
// variable named by src with argon2id and the stored parameters.
func passphraseKey(src kekSource, p *kdfParams) ([]byte, error) {
	v, ok := os.LookupEnv(src.value)
	if !ok || v == "" {
		return nil, sdk.Invalid(src.setting, "environment variable %q is not set", src.value)
	}
	if p.Alg != "argon2id" || len(p.Salt) < 16 || p.Time == 0 || p.MemoryKiB == 0 || p.Threads == 0 {
		return nil, fmt.Errorf("%s: the database's stored key derivation parameters are not usable (alg %q)", src.setting, p.Alg)
	}
	pass := []byte(v)
	defer clear(pass)
	return argon2.IDKey(pass, p.Salt, p.Time, p.MemoryKiB, p.Threads, keySize), nil
}
