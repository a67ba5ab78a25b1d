package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

type ifixture struct{ db, key string }

func newIFixture(t *testing.T) ifixture {
	t.Helper()
	dir := t.TempDir()
	return ifixture{db: filepath.Join(dir, "secrets.db"), key: filepath.Join(dir, "master.key")}
}

func (f ifixture) settings(kv ...string) map[string]string {
	s := map[string]string{SettingPath: f.db, SettingKeyFile: f.key}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(s, kv[i])
		} else {
			s[kv[i]] = kv[i+1]
		}
	}
	return s
}

func iopen(t *testing.T, settings map[string]string) *Backend {
	t.Helper()
	b := NewBackend(hclog.NewNullLogger())
	require.NoError(t, b.Configure(context.Background(), settings))
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func iwrite(t *testing.T, b *Backend, project, name string, data map[string]string) {
	t.Helper()
	_, err := b.Write(context.Background(), sdk.WriteRequest{Project: project, Name: name, Data: data, Mode: sdk.WriteUpsert})
	require.NoError(t, err)
}

// withBolt opens the closed database file directly, for surgery.
func withBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(fn))
}

func secretBucket(tx *bolt.Tx, project, name string) *bolt.Bucket {
	return tx.Bucket(bucketProjects).Bucket([]byte(project)).Bucket(bucketSecrets).Bucket([]byte(name))
}

// copyCiphertext puts the ciphertext of one version under another slot.
func copyCiphertext(t *testing.T, path, fromP, fromN string, fromV int64, toP, toN string, toV int64) {
	t.Helper()
	withBolt(t, path, func(tx *bolt.Tx) error {
		ct := append([]byte(nil), secretBucket(tx, fromP, fromN).Get(versionKey(fromV))...)
		require.NotEmpty(t, ct)
		return secretBucket(tx, toP, toN).Put(versionKey(toV), ct)
	})
}

// copyIncarnation gives secret toN the incarnation id of secret fromN. The id
// sits in plain JSON in the metadata record, so whoever can write the file
// can copy it: then only the project and the name in the AAD stop a
// ciphertext moved between the two secrets from decrypting. The record is
// edited as raw JSON, as such a person would.
func copyIncarnation(t *testing.T, path, fromP, fromN, toP, toN string) {
	t.Helper()
	withBolt(t, path, func(tx *bolt.Tx) error {
		var from, to map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(secretBucket(tx, fromP, fromN).Get(keyRecord), &from))
		require.NoError(t, json.Unmarshal(secretBucket(tx, toP, toN).Get(keyRecord), &to))
		require.NotEmpty(t, from["incarnation"], "the metadata record holds the incarnation id")
		require.NotEqual(t, from["incarnation"], to["incarnation"])
		to["incarnation"] = from["incarnation"]
		enc, err := json.Marshal(to)
		require.NoError(t, err)
		return secretBucket(tx, toP, toN).Put(keyRecord, enc)
	})
}

func TestMovedCiphertextFailsToDecrypt(t *testing.T) {
	const value = "value-that-must-not-leak"
	tests := []struct {
		name    string
		setup   func(t *testing.T, b *Backend)
		move    func(t *testing.T, path string)
		victimP string
		victimN string
		victimV int64
	}{
		{
			name: "another name",
			setup: func(t *testing.T, b *Backend) {
				iwrite(t, b, "p", "a", map[string]string{"k": value})
				iwrite(t, b, "p", "b", map[string]string{"k": "other"})
			},
			// With the incarnation copied too, only the name in the AAD
			// tells the two secrets apart.
			move: func(t *testing.T, path string) {
				copyCiphertext(t, path, "p", "a", 1, "p", "b", 1)
				copyIncarnation(t, path, "p", "a", "p", "b")
			},
			victimP: "p", victimN: "b", victimV: 1,
		},
		{
			name: "another version",
			setup: func(t *testing.T, b *Backend) {
				iwrite(t, b, "p", "a", map[string]string{"k": value})
				iwrite(t, b, "p", "a", map[string]string{"k": "other"})
			},
			move:    func(t *testing.T, path string) { copyCiphertext(t, path, "p", "a", 1, "p", "a", 2) },
			victimP: "p", victimN: "a", victimV: 2,
		},
		{
			name: "another project",
			setup: func(t *testing.T, b *Backend) {
				iwrite(t, b, "p", "a", map[string]string{"k": value})
				iwrite(t, b, "q", "a", map[string]string{"k": "other"})
			},
			move: func(t *testing.T, path string) {
				copyCiphertext(t, path, "p", "a", 1, "q", "a", 1)
				copyIncarnation(t, path, "p", "a", "q", "a")
			},
			victimP: "q", victimN: "a", victimV: 1,
		},
		{
			name: "a deleted secret of the same name",
			setup: func(t *testing.T, b *Backend) {
				iwrite(t, b, "p", "a", map[string]string{"k": value})
				iwrite(t, b, "p", "keep", map[string]string{"k": value})
				// Save the old ciphertext in a third secret's v9 slot, then
				// delete and re-create "a".
				require.NoError(t, b.Close())
				withBolt(t, b.path, func(tx *bolt.Tx) error {
					ct := append([]byte(nil), secretBucket(tx, "p", "a").Get(versionKey(1))...)
					return secretBucket(tx, "p", "keep").Put(versionKey(9), ct)
				})
				require.NoError(t, b.Configure(context.Background(), map[string]string{SettingPath: b.path, SettingKeyFile: filepath.Join(filepath.Dir(b.path), "master.key")}))
				require.NoError(t, b.Delete(context.Background(), sdk.Ref{Project: "p", Name: "a"}))
				iwrite(t, b, "p", "a", map[string]string{"k": "other"})
			},
			move:    func(t *testing.T, path string) { copyCiphertext(t, path, "p", "keep", 9, "p", "a", 1) },
			victimP: "p", victimN: "a", victimV: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIFixture(t)
			b := iopen(t, f.settings())
			tc.setup(t, b)
			require.NoError(t, b.Close())
			tc.move(t, f.db)
			require.NoError(t, b.Configure(context.Background(), f.settings()))
			for _, v := range []int64{tc.victimV, 0} {
				_, err := b.Read(context.Background(), sdk.Ref{Project: tc.victimP, Name: tc.victimN, Version: v})
				require.ErrorIs(t, err, ErrDecrypt)
				msg := err.Error()
				require.Contains(t, msg, fmt.Sprintf("version %d of secret %q in project %q does not decrypt", tc.victimV, tc.victimN, tc.victimP))
				require.NotContains(t, msg, value)
			}
		})
	}
}

// snapshot returns every stored version ciphertext and data key record.
func snapshot(t *testing.T, path string) (versions, deks map[string][]byte) {
	t.Helper()
	versions, deks = map[string][]byte{}, map[string][]byte{}
	withBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProjects).ForEachBucket(func(p []byte) error {
			pb := tx.Bucket(bucketProjects).Bucket(p)
			deks[string(p)] = append([]byte(nil), pb.Get(keyDEK)...)
			secrets := pb.Bucket(bucketSecrets)
			return secrets.ForEachBucket(func(n []byte) error {
				return secrets.Bucket(n).ForEach(func(k, v []byte) error {
					if k[0] == versionKeyPrefix {
						versions[fmt.Sprintf("%s/%s/%x", p, n, k)] = append([]byte(nil), v...)
					}
					return nil
				})
			})
		})
	})
	return versions, deks
}

// populate writes a few projects, secrets and versions and returns what
// each latest version holds.
func populate(t *testing.T, b *Backend) map[string]map[string]string {
	t.Helper()
	want := map[string]map[string]string{}
	for _, p := range []string{"alpha", "beta", "gamma"} {
		for i := range 3 {
			n := fmt.Sprintf("s%d", i)
			for v := range 3 {
				data := map[string]string{"k": fmt.Sprintf("%s-%s-%d", p, n, v), "other": "x"}
				iwrite(t, b, p, n, data)
				want[p+"/"+n] = data
			}
		}
	}
	return want
}

func requireAll(t *testing.T, b *Backend, want map[string]map[string]string) {
	t.Helper()
	for pn, data := range want {
		var p, n string
		for i := range pn {
			if pn[i] == '/' {
				p, n = pn[:i], pn[i+1:]
			}
		}
		sec, err := b.Read(context.Background(), sdk.Ref{Project: p, Name: n})
		require.NoError(t, err, "%s after rotation", pn)
		require.Equal(t, data, sec.Data, "%s after rotation", pn)
		old, err := b.Read(context.Background(), sdk.Ref{Project: p, Name: n, Version: 1})
		require.NoError(t, err, "%s v1 after rotation", pn)
		require.Equal(t, p+"-"+n+"-0", old.Data["k"])
	}
}

func TestRotationThroughSettings(t *testing.T) {
	f := newIFixture(t)
	newKey := filepath.Join(filepath.Dir(f.db), "new", "master.key") // does not exist: created
	b := iopen(t, f.settings())
	want := populate(t, b)
	require.NoError(t, b.Close())
	beforeV, beforeD := snapshot(t, f.db)

	rotated := f.settings(SettingKeyFile, newKey, SettingPreviousKeyFile, f.key)
	require.NoError(t, b.Configure(context.Background(), rotated))
	require.Equal(t, newKey, b.CreatedKeyFile())
	requireAll(t, b, want)
	require.NoError(t, b.Close())

	afterV, afterD := snapshot(t, f.db)
	require.Equal(t, beforeV, afterV, "rotation must not rewrite any secret ciphertext")
	require.Len(t, afterD, 3)
	for p, rec := range afterD {
		require.Equal(t, beforeD[p][:envelope.IDSize], rec[:envelope.IDSize], "project %s keeps its data key id", p)
		require.NotEqual(t, beforeD[p], rec, "project %s's data key must be re-wrapped", p)
	}

	// The old key no longer opens the database; the new one does, and so
	// do the rotation settings again (rotation already done).
	err := NewBackend(hclog.NewNullLogger()).Configure(context.Background(), f.settings())
	require.ErrorIs(t, err, ErrKeyMismatch)
	withNew := iopen(t, f.settings(SettingKeyFile, newKey))
	requireAll(t, withNew, want)
	require.NoError(t, withNew.Close())
	var logs bytes.Buffer
	again := NewBackend(hclog.New(&hclog.LoggerOptions{Output: &logs}))
	require.NoError(t, again.Configure(context.Background(), rotated))
	require.Contains(t, logs.String(), "key rotation already done")
	requireAll(t, again, want)
	require.NoError(t, again.Close())
}

func TestRotateKEKOnline(t *testing.T) {
	f := newIFixture(t)
	b := iopen(t, f.settings())
	want := populate(t, b)
	newKey := make([]byte, envelope.KeySize)
	_, err := rand.Read(newKey)
	require.NoError(t, err)

	// Readers and writers keep going while the key rotates under them.
	ctx, cancel := context.WithCancel(context.Background())
	var wg, started sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			defer once.Do(started.Done) // also when failing before the first write
			for i := 0; ctx.Err() == nil; i++ {
				if i == 1 {
					once.Do(started.Done) // one write is in: the project exists
				}
				p := fmt.Sprintf("online%d", g)
				if _, err := b.Write(ctx, sdk.WriteRequest{Project: p, Name: "n", Data: map[string]string{"i": fmt.Sprint(i)}, Mode: sdk.WriteUpsert}); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
				if _, err := b.Read(ctx, sdk.Ref{Project: "alpha", Name: "s1"}); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		}()
	}
	started.Wait()
	require.NoError(t, b.RotateKEK(context.Background(), newKey))
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireAll(t, b, want)
	require.NoError(t, b.Close())

	require.ErrorIs(t, NewBackend(hclog.NewNullLogger()).Configure(context.Background(), f.settings()), ErrKeyMismatch)
	t.Setenv("FILE_TEST_ROTATED_KEY", hex.EncodeToString(newKey))
	b2 := iopen(t, f.settings(SettingKeyFile, "", SettingKeyEnv, "FILE_TEST_ROTATED_KEY"))
	requireAll(t, b2, want)
	for g := range 4 {
		_, err := b2.Read(context.Background(), sdk.Ref{Project: fmt.Sprintf("online%d", g), Name: "n"})
		require.NoError(t, err)
	}
}

func storedKDF(t *testing.T, path string) envelope.KDFParams {
	t.Helper()
	var p envelope.KDFParams
	withBolt(t, path, func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketMeta).Get(keyKDF)
		require.NotNil(t, raw, "a passphrase database stores its KDF parameters")
		return json.Unmarshal(raw, &p)
	})
	return p
}

func TestPassphrase(t *testing.T) {
	f := newIFixture(t)
	t.Setenv("FILE_TEST_PASS", "correct horse battery staple")
	t.Setenv("FILE_TEST_PASS2", "a different passphrase entirely")
	settings := f.settings(SettingKeyFile, "", SettingPassphraseEnv, "FILE_TEST_PASS")
	b := iopen(t, settings)
	iwrite(t, b, "p", "s", map[string]string{"k": "v"})
	require.NoError(t, b.Close())
	kdf := storedKDF(t, f.db)
	require.Equal(t, "argon2id", kdf.Alg)
	require.Len(t, kdf.Salt, 16)
	require.Equal(t, envelope.DefaultKDF.MemoryKiB, kdf.MemoryKiB)
	_, err := os.Stat(f.key)
	require.True(t, os.IsNotExist(err), "a passphrase database makes no key file")

	// Reopened, the same passphrase and the stored salt give the same key.
	require.NoError(t, b.Configure(context.Background(), settings))
	sec, err := b.Read(context.Background(), sdk.Ref{Project: "p", Name: "s"})
	require.NoError(t, err)
	require.Equal(t, "v", sec.Data["k"])
	require.NoError(t, b.Close())
	require.Equal(t, kdf, storedKDF(t, f.db), "the salt persists")

	wrong := f.settings(SettingKeyFile, "", SettingPassphraseEnv, "FILE_TEST_PASS2")
	require.ErrorIs(t, NewBackend(hclog.NewNullLogger()).Configure(context.Background(), wrong), ErrKeyMismatch)

	// Passphrase rotation: a new salt for the new passphrase.
	rot := f.settings(SettingKeyFile, "", SettingPassphraseEnv, "FILE_TEST_PASS2", SettingPreviousPassphraseEnv, "FILE_TEST_PASS")
	require.NoError(t, b.Configure(context.Background(), rot))
	require.NoError(t, b.Close())
	kdf2 := storedKDF(t, f.db)
	require.NotEqual(t, kdf.Salt, kdf2.Salt)
	require.ErrorIs(t, NewBackend(hclog.NewNullLogger()).Configure(context.Background(), settings), ErrKeyMismatch)
	b2 := iopen(t, wrong)
	sec, err = b2.Read(context.Background(), sdk.Ref{Project: "p", Name: "s"})
	require.NoError(t, err)
	require.Equal(t, "v", sec.Data["k"])
}

func TestPrunedCiphertextIsGone(t *testing.T) {
	f := newIFixture(t)
	b := iopen(t, f.settings(SettingMaxVersions, "2"))
	for i := range 4 {
		iwrite(t, b, "p", "s", map[string]string{"i": fmt.Sprint(i)})
	}
	require.NoError(t, b.Close())
	versions, _ := snapshot(t, f.db)
	require.Len(t, versions, 2, "only the last two version ciphertexts stay in the file")
}

func TestAADIsUnambiguous(t *testing.T) {
	a := domain.SecretAAD("ab", "c", 1, make([]byte, envelope.IDSize))
	b := domain.SecretAAD("a", "bc", 1, make([]byte, envelope.IDSize))
	require.NotEqual(t, a, b)
	require.NotEqual(t, domain.SecretAAD("p", "n", 1, make([]byte, envelope.IDSize)), domain.SecretAAD("p", "n", 256, make([]byte, envelope.IDSize)))
}

// storedVersion returns a version's ciphertext as stored, from the open
// backend's database.
func storedVersion(t *testing.T, b *Backend, project, name string, v int64) []byte {
	t.Helper()
	var ct []byte
	require.NoError(t, b.db.View(func(tx *bolt.Tx) error {
		ct = append([]byte(nil), secretBucket(tx, project, name).Get(versionKey(v))...)
		return nil
	}))
	require.NotEmpty(t, ct)
	return ct
}

// AES-GCM under one key must never see a nonce twice: two ciphertexts under
// the same nonce XOR to the XOR of their plaintexts, and the tags then give
// away the authentication key. Every seal draws a fresh random nonce, so no
// two sealed objects in a database (versions, data keys, the verifier), nor
// two seals of the same value, share one.
func TestNoncesNeverRepeat(t *testing.T) {
	t.Run("seal", func(t *testing.T) {
		key := make([]byte, envelope.KeySize)
		_, err := rand.Read(key)
		require.NoError(t, err)
		aead, err := envelope.NewAEAD(key)
		require.NoError(t, err)
		seen := map[string]bool{}
		var first []byte
		for i := range 1000 {
			out, err := envelope.Seal(aead, []byte{envelope.VersionFormat1}, []byte("the same value"), []byte("the same aad"))
			require.NoError(t, err)
			nonce := string(out[1 : 1+envelope.NonceSize])
			require.False(t, seen[nonce], "seal %d reused a nonce", i)
			seen[nonce] = true
			if first == nil {
				first = out
				continue
			}
			require.False(t, bytes.Equal(first[1+envelope.NonceSize:], out[1+envelope.NonceSize:]), "seal %d: two seals of the same value must differ", i)
		}
	})

	t.Run("stored", func(t *testing.T) {
		f := newIFixture(t)
		b := iopen(t, f.settings())
		same := map[string]string{"k": "the same value everywhere"}
		for range 3 {
			iwrite(t, b, "p", "a", same)
		}
		iwrite(t, b, "p", "b", same)
		iwrite(t, b, "q", "a", same)
		// Version 1 of "c" twice, in the same slot under the same data key:
		// only the incarnation differs.
		iwrite(t, b, "p", "c", same)
		gone := storedVersion(t, b, "p", "c", 1)
		require.NoError(t, b.Delete(context.Background(), sdk.Ref{Project: "p", Name: "c"}))
		iwrite(t, b, "p", "c", same)
		again := storedVersion(t, b, "p", "c", 1)
		require.False(t, bytes.Equal(gone[1+envelope.NonceSize:], again[1+envelope.NonceSize:]), "a re-created secret's ciphertext of the same value must differ")
		require.NoError(t, b.Close())

		versions, deks := snapshot(t, f.db)
		require.Equal(t, 6, len(versions), "p/a 1-3, p/b 1, p/c 1, q/a 1")
		require.Equal(t, 2, len(deks))
		var verifier []byte
		withBolt(t, f.db, func(tx *bolt.Tx) error {
			verifier = append([]byte(nil), tx.Bucket(bucketMeta).Get(keyVerifier)...)
			return nil
		})
		where := map[string]string{} // nonce -> what it sealed
		add := func(what string, nonce []byte) {
			t.Helper()
			require.Len(t, nonce, envelope.NonceSize)
			if prev, dup := where[string(nonce)]; dup {
				t.Fatalf("%s reuses the nonce of %s", what, prev)
			}
			where[string(nonce)] = what
		}
		add("deleted version p/c/1", gone[1:1+envelope.NonceSize])
		for k, ct := range versions {
			add("version "+k, ct[1:1+envelope.NonceSize])
		}
		for p, rec := range deks {
			add("data key of "+p, rec[envelope.IDSize:envelope.IDSize+envelope.NonceSize])
		}
		add("verifier", verifier[:envelope.NonceSize])
	})
}
