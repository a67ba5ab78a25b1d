package postgres_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/plugins/postgres"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// encodings returns the forms a value could leak in: raw, base64 (standard
// and URL, padded and not), hex (both cases).
func encodings(v string) map[string]string {
	return map[string]string{
		"raw":            v,
		"base64":         base64.StdEncoding.EncodeToString([]byte(v)),
		"base64url":      base64.URLEncoding.EncodeToString([]byte(v)),
		"base64 raw":     base64.RawStdEncoding.EncodeToString([]byte(v)),
		"base64url raw":  base64.RawURLEncoding.EncodeToString([]byte(v)),
		"hex":            hex.EncodeToString([]byte(v)),
		"hex upper-case": strings.ToUpper(hex.EncodeToString([]byte(v))),
	}
}

// dumpTables is every row of every table of the schema as text, the way
// psql would print it (bytea as \x hex).
func dumpTables(t *testing.T, f fixture, schema string) string {
	t.Helper()
	c := f.conn(t)
	ctx := context.Background()
	var out strings.Builder
	for _, table := range []string{"schema_version", "meta", "projects", "secrets", "versions"} {
		rows, err := c.Query(ctx, `SELECT t::text FROM `+schema+`.`+table+` t`)
		require.NoError(t, err)
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			out.WriteString(table + ": " + line + "\n")
		}
		require.NoError(t, rows.Err())
	}
	return out.String()
}

// A dump of the database holds no value: neither pg_dump's output nor the
// tables' rows as text contain the canary in any encoding, nor the KEK.
func TestDumpHoldsNoValue(t *testing.T) {
	f := newFixture(t)
	b := plugintest.Start(t, f.settings())
	canary := "canary-" + randomHex(t, 16)
	// Several versions, several keys, several secrets, some with the canary
	// alone as the whole payload, so that the JSON framing differs.
	write(t, b, "payments", "stripe-key", map[string]string{"api_key": canary})
	write(t, b, "payments", "stripe-key", map[string]string{"api_key": canary, "other": canary + canary})
	write(t, b, "payments", "database-config", map[string]string{"password": canary, "user": "app"})
	write(t, b, "other", "c", map[string]string{"plain_key": "x", "v": canary})
	require.Equal(t, canary, read(t, b, "payments", "stripe-key", 1)["api_key"])

	dump, err := f.srv.Command("pg_dump", "--no-owner", "-d", f.database(t)).Output()
	require.NoError(t, err, "pg_dump")
	rows := dumpTables(t, f, "secretgate")
	payload, err := sdk.EncodeData(map[string]string{"api_key": canary})
	require.NoError(t, err)
	key, err := os.ReadFile(f.key)
	require.NoError(t, err)
	for what, text := range map[string]string{"pg_dump": string(dump), "the rows as text": rows} {
		for _, leak := range []string{canary, string(payload)} {
			for form, enc := range encodings(leak) {
				require.NotContains(t, text, enc, "the canary must not be in %s as %s", what, form)
			}
		}
		require.NotContains(t, text, strings.TrimSpace(string(key)), "the KEK must not be in %s", what)
		// Names and metadata are stored in plain text: the checks above are
		// not blind to the content.
		require.Contains(t, text, "stripe-key", what)
		require.Contains(t, text, "plain_key", what)
	}
	require.Contains(t, string(dump), "COPY secretgate.versions", "pg_dump dumped the versions table")
}

// A ciphertext moved under another secret, or replayed into a re-created
// secret of the same name (a new incarnation), does not decrypt; the error
// names the secret and version, never a value.
func TestMovedCiphertextDoesNotDecrypt(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	c := f.conn(t)
	ctx := context.Background()
	write(t, b, "p", "a", map[string]string{"k": "value-of-a"})
	write(t, b, "p", "b", map[string]string{"k": "value-of-b"})
	ciphertext := func(name string) []byte {
		var ct []byte
		require.NoError(t, c.QueryRow(ctx, `SELECT ciphertext FROM secretgate.versions WHERE project = 'p' AND name = $1 AND version = 1`, name).Scan(&ct))
		return ct
	}
	setCiphertext := func(name string, ct []byte) {
		tag, err := c.Exec(ctx, `UPDATE secretgate.versions SET ciphertext = $2 WHERE project = 'p' AND name = $1 AND version = 1`, name, ct)
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
	}

	oldB := ciphertext("b")
	setCiphertext("b", ciphertext("a"))
	_, err := b.Read(ctx, sdk.Ref{Project: "p", Name: "b"})
	require.ErrorIs(t, err, postgres.ErrDecrypt)
	require.Contains(t, err.Error(), `version 1 of secret "b" in project "p" does not decrypt`)
	require.NotContains(t, err.Error(), "value-of")
	require.Equal(t, "value-of-a", read(t, b, "p", "a", 0)["k"], "the untouched secret still reads")

	require.NoError(t, b.Delete(ctx, sdk.Ref{Project: "p", Name: "b"}))
	write(t, b, "p", "b", map[string]string{"k": "value-of-new-b"})
	setCiphertext("b", oldB) // the deleted secret's version 1, same name, same version
	_, err = b.Read(ctx, sdk.Ref{Project: "p", Name: "b"})
	require.ErrorIs(t, err, postgres.ErrDecrypt, "a ciphertext of a deleted secret must not decrypt in its successor")
}

// Rotating the key-encryption key re-wraps every project's data key and
// leaves the ciphertexts alone; afterwards only the new key opens the
// schema, and a second start with both settings only says it is done.
func TestKeyRotation(t *testing.T) {
	newKeyHex := randomHex(t, 32)
	t.Setenv("POSTGRES_TEST_NEW_KEY", newKeyHex)
	t.Setenv("POSTGRES_TEST_PASS", "correct horse battery staple")
	cases := []struct {
		name     string
		from, to func(f fixture) []string // settings to apply to the fixture's
	}{
		{"key_file to a new key_file", nil, func(f fixture) []string {
			return []string{postgres.SettingPreviousKeyFile, f.key, postgres.SettingKeyFile, filepath.Join(f.dir, "new.key")}
		}},
		{"key_file to key_env", nil, func(f fixture) []string {
			return []string{postgres.SettingPreviousKeyFile, f.key, postgres.SettingKeyFile, "", postgres.SettingKeyEnv, "POSTGRES_TEST_NEW_KEY"}
		}},
		{"passphrase_env to key_file", func(fixture) []string {
			return []string{postgres.SettingKeyFile, "", postgres.SettingPassphraseEnv, "POSTGRES_TEST_PASS"}
		}, func(f fixture) []string {
			return []string{postgres.SettingPreviousPassphraseEnv, "POSTGRES_TEST_PASS", postgres.SettingPassphraseEnv, "",
				postgres.SettingKeyFile, filepath.Join(f.dir, "new.key")}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var from []string
			if tc.from != nil {
				from = tc.from(f)
			}
			old := open(t, f.settings(from...))
			want := map[[2]string]string{}
			for _, p := range []string{"alpha", "beta", "gamma"} {
				for _, n := range []string{"one", "two"} {
					v := "value-" + p + "-" + n
					write(t, old, p, n, map[string]string{"k": v})
					want[[2]string{p, n}] = v
				}
			}
			require.NoError(t, old.Close())
			c := f.conn(t)
			ctx := context.Background()
			snapshot := func(q string) map[string]string {
				rows, err := c.Query(ctx, q)
				require.NoError(t, err)
				out := map[string]string{}
				for rows.Next() {
					var k string
					var v []byte
					require.NoError(t, rows.Scan(&k, &v))
					out[k] = hex.EncodeToString(v)
				}
				require.NoError(t, rows.Err())
				return out
			}
			const cts = `SELECT project || '/' || name || '/' || version, ciphertext FROM secretgate.versions`
			const deks = `SELECT project, dek FROM secretgate.projects`
			ctsBefore, deksBefore := snapshot(cts), snapshot(deks)

			rotating := f.settings(append(append([]string{}, from...), tc.to(f)...)...)
			rotated := plugintest.Start(t, rotating)
			for pn, v := range want {
				require.Equal(t, v, read(t, rotated, pn[0], pn[1], 0)["k"])
			}
			require.Equal(t, ctsBefore, snapshot(cts), "rotation must not rewrite secret ciphertexts")
			deksAfter := snapshot(deks)
			require.Len(t, deksAfter, 3)
			for p, rec := range deksAfter {
				require.NotEqual(t, deksBefore[p], rec, "project %s's data key must be re-wrapped", p)
				require.Equal(t, deksBefore[p][:32], rec[:32], "project %s's data key keeps its id", p)
			}

			// Without the previous setting: the new key opens, the old does not.
			current := map[string]string{}
			for k, v := range rotating {
				if !strings.HasPrefix(k, "previous_") {
					current[k] = v
				}
			}
			b := open(t, current)
			for pn, v := range want {
				require.Equal(t, v, read(t, b, pn[0], pn[1], 0)["k"])
			}
			write(t, b, "delta", "new-project", map[string]string{"k": "after rotation"})
			require.ErrorIs(t, configureErr(t, f.settings(from...)), postgres.ErrKeyMismatch, "the old key alone")
			// Both settings again: already done, nothing changes.
			deksDone := snapshot(deks)
			require.Equal(t, "after rotation", read(t, open(t, rotating), "delta", "new-project", 0)["k"])
			require.Equal(t, deksDone, snapshot(deks), "a rotation already done must not re-wrap again")
		})
	}
}

// A wrong key is refused at Configure, naming the setting, and changes
// nothing in the database.
func TestWrongKeyRefusedChangesNothing(t *testing.T) {
	f := newFixture(t)
	write(t, open(t, f.settings()), "p", "s", map[string]string{"k": "v"})
	before := dumpTables(t, f, "secretgate")
	t.Setenv("POSTGRES_TEST_WRONG_KEY", randomHex(t, 32))
	err := configureErr(t, f.settings(postgres.SettingKeyFile, "", postgres.SettingKeyEnv, "POSTGRES_TEST_WRONG_KEY"))
	require.ErrorIs(t, err, postgres.ErrKeyMismatch)
	require.Contains(t, err.Error(), "key_env: key does not match this database")
	err = configureErr(t, f.settings(postgres.SettingKeyFile, filepath.Join(f.dir, "missing.key")))
	require.ErrorIs(t, err, sdk.ErrInvalid, "an existing schema is never silently re-keyed with a new key file")
	require.Equal(t, before, dumpTables(t, f, "secretgate"))
}

// A replica still running with the key another replica rotated away from
// must not create a project's data key under it (no replica with the new
// key could open it); its existing projects keep working, their data keys
// unchanged.
func TestStaleReplicaRefusesNewProjectAfterRotation(t *testing.T) {
	f := newFixture(t)
	stale := open(t, f.settings())
	write(t, stale, "existing", "s", map[string]string{"k": "v"})
	newKey := filepath.Join(f.dir, "new.key")
	rotated := open(t, f.settings(postgres.SettingPreviousKeyFile, f.key, postgres.SettingKeyFile, newKey))

	_, err := stale.Write(context.Background(), sdk.WriteRequest{Project: "brand-new", Name: "s", Data: map[string]string{"k": "v"}, Mode: sdk.WriteUpsert})
	require.ErrorIs(t, err, postgres.ErrKeyMismatch)
	require.Contains(t, err.Error(), "rotated by another process")
	write(t, stale, "existing", "s", map[string]string{"k": "v2"})

	write(t, rotated, "brand-new", "s", map[string]string{"k": "made by the rotated replica"})
	require.Equal(t, "made by the rotated replica", read(t, rotated, "brand-new", "s", 0)["k"])
	require.Equal(t, "v2", read(t, rotated, "existing", "s", 0)["k"])
}
