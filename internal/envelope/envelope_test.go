package envelope_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

func randomKEK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, envelope.KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// The "file" domain's associated data is byte for byte what plugins/file
// has always sealed with, so the file backend can use this package and
// still open its existing databases.
func TestFileDomainAADUnchanged(t *testing.T) {
	d := envelope.Domain("file")
	inc := []byte("0123456789abcdef")
	require.Equal(t, []byte("secretgate/file/secret/v1\x00proj\x00name\x00\x00\x00\x00\x00\x00\x00\x00\x07"+string(inc)),
		d.SecretAAD("proj", "name", 7, inc))
	id := []byte{0xde, 0xad, 0xbe, 0xef}
	require.Equal(t, []byte("secretgate/file/dek/v1|proj|deadbeef"), d.DEKAAD("proj", id))
}

// A sealed version opens only under its own domain, project, name, version
// and incarnation; the error names the secret, never the value.
func TestVersionBoundToItsPlace(t *testing.T) {
	kek, err := envelope.NewAEAD(randomKEK(t))
	require.NoError(t, err)
	pg := envelope.Domain("postgres")
	dk, rec, err := pg.NewDEK(kek, "p")
	require.NoError(t, err)
	inc := make([]byte, envelope.IDSize)
	other := append([]byte(nil), inc...)
	other[0] = 1
	const value = `{"k":"the-value"}`
	ct, err := pg.SealVersion(dk, "p", "n", 3, inc, []byte(value))
	require.NoError(t, err)
	require.NotContains(t, string(ct), "the-value")
	pt, err := pg.OpenVersion(dk, "p", "n", 3, inc, ct)
	require.NoError(t, err)
	require.Equal(t, value, string(pt))

	unwrapped, err := pg.UnwrapDEK(kek, "p", rec)
	require.NoError(t, err)
	_, err = pg.OpenVersion(unwrapped, "p", "n", 3, inc, ct)
	require.NoError(t, err, "the wrapped record holds the same data key")

	for name, open := range map[string]func() ([]byte, error){
		"other domain":      func() ([]byte, error) { return envelope.Domain("file").OpenVersion(dk, "p", "n", 3, inc, ct) },
		"other project":     func() ([]byte, error) { return pg.OpenVersion(dk, "q", "n", 3, inc, ct) },
		"other name":        func() ([]byte, error) { return pg.OpenVersion(dk, "p", "m", 3, inc, ct) },
		"other version":     func() ([]byte, error) { return pg.OpenVersion(dk, "p", "n", 4, inc, ct) },
		"other incarnation": func() ([]byte, error) { return pg.OpenVersion(dk, "p", "n", 3, other, ct) },
		"altered": func() ([]byte, error) {
			c := append([]byte(nil), ct...)
			c[len(c)-1] ^= 1
			return pg.OpenVersion(dk, "p", "n", 3, inc, c)
		},
		"unknown format": func() ([]byte, error) {
			c := append([]byte{2}, ct[1:]...)
			return pg.OpenVersion(dk, "p", "n", 3, inc, c)
		},
	} {
		_, err := open()
		require.ErrorIs(t, err, envelope.ErrDecrypt, name)
		require.NotContains(t, err.Error(), "the-value", name)
	}
	_, err = envelope.Domain("file").UnwrapDEK(kek, "p", rec)
	require.ErrorIs(t, err, envelope.ErrDecrypt, "a data key record of one domain does not unwrap in another")
	_, err = pg.UnwrapDEK(kek, "q", rec)
	require.ErrorIs(t, err, envelope.ErrDecrypt, "a data key record of one project does not unwrap for another")
}

// Rewrapping keeps the data key and its id; the verifier tells the keys apart.
func TestRewrapAndVerifier(t *testing.T) {
	pg := envelope.Domain("postgres")
	oldKEK, err := envelope.NewAEAD(randomKEK(t))
	require.NoError(t, err)
	newKEK, err := envelope.NewAEAD(randomKEK(t))
	require.NoError(t, err)
	dk, rec, err := pg.NewDEK(oldKEK, "p")
	require.NoError(t, err)
	re, err := pg.RewrapDEK(oldKEK, newKEK, "p", rec)
	require.NoError(t, err)
	require.Equal(t, rec[:envelope.IDSize], re[:envelope.IDSize])
	got, err := pg.UnwrapDEK(newKEK, "p", re)
	require.NoError(t, err)
	ct, err := pg.SealVersion(dk, "p", "n", 1, nil, []byte("{}"))
	require.NoError(t, err)
	_, err = pg.OpenVersion(got, "p", "n", 1, nil, ct)
	require.NoError(t, err)
	_, err = pg.UnwrapDEK(oldKEK, "p", re)
	require.ErrorIs(t, err, envelope.ErrDecrypt)

	v, err := pg.NewVerifier(newKEK)
	require.NoError(t, err)
	require.True(t, pg.CheckVerifier(newKEK, v))
	require.False(t, pg.CheckVerifier(oldKEK, v))
	require.False(t, envelope.Domain("file").CheckVerifier(newKEK, v))
}

func TestParseSources(t *testing.T) {
	tests := []struct {
		name     string
		settings map[string]string
		want     envelope.Sources
		field    string
	}{
		{"key file", map[string]string{"key_file": "k"}, envelope.Sources{Current: envelope.Source{Setting: "key_file", Kind: envelope.KindKeyFile, Value: "k"}}, ""},
		{"rotation", map[string]string{"key_env": "NEW", "previous_passphrase_env": "OLD"}, envelope.Sources{
			Current:  envelope.Source{Setting: "key_env", Kind: envelope.KindKeyEnv, Value: "NEW"},
			Previous: &envelope.Source{Setting: "previous_passphrase_env", Kind: envelope.KindPassphraseEnv, Value: "OLD"},
		}, ""},
		{"none", map[string]string{}, envelope.Sources{}, "key_file"},
		{"two", map[string]string{"key_file": "k", "passphrase_env": "P"}, envelope.Sources{}, "passphrase_env"},
		{"two previous", map[string]string{"key_file": "k", "previous_key_file": "a", "previous_key_env": "B"}, envelope.Sources{}, "previous_key_env"},
		{"same twice", map[string]string{"key_env": "K", "previous_key_env": "K"}, envelope.Sources{}, "previous_key_env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := envelope.ParseSources(tc.settings)
			if tc.field == "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			var fe *sdk.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field)
		})
	}
}

// A missing key file is created 0600 with 64 hex digits; an existing one is
// only read, and refused when group or others may read it.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "master.key")
	key, created, err := envelope.LoadOrCreateKeyFile("key_file", path)
	require.NoError(t, err)
	require.True(t, created)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	text, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, hex.EncodeToString(key), strings.TrimSpace(string(text)))

	again, created, err := envelope.LoadOrCreateKeyFile("key_file", path)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, key, again)

	require.NoError(t, os.Chmod(path, 0o640))
	_, err = envelope.LoadKeyFile("key_file", path)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.Contains(t, err.Error(), "chmod 600")

	raw := filepath.Join(dir, "raw.key")
	require.NoError(t, os.WriteFile(raw, key, 0o600))
	got, err := envelope.LoadKeyFile("key_file", raw)
	require.NoError(t, err)
	require.Equal(t, key, got, "32 raw bytes are a key too")
	require.NoError(t, os.WriteFile(raw, []byte("not a key"), 0o600))
	_, err = envelope.LoadKeyFile("key_file", raw)
	require.ErrorIs(t, err, sdk.ErrInvalid)
}
