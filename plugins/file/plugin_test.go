package file_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/secretgate/secretgate/plugins/file"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugin"
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

func TestCanaryNeverInFileThroughPlugin(t *testing.T) {
	f := newFixture(t)
	b := plugintest.Start(t, f.settings())
	canary := "canary-" + randomHex(t, 16)
	ctx := context.Background()
	// Several versions, several keys, several secrets, some with the canary
	// alone as the whole payload, so that the JSON framing differs.
	write(t, b, "payments", "stripe-key", map[string]string{"api_key": canary})
	write(t, b, "payments", "stripe-key", map[string]string{"api_key": canary, "other": canary + canary})
	write(t, b, "payments", "database-config", map[string]string{"password": canary, "user": "app"})
	write(t, b, "other", "c", map[string]string{"plain_key": "x", "v": canary})
	require.Equal(t, canary, read(t, b, "payments", "stripe-key", 1)["api_key"])
	require.NoError(t, b.Ping(ctx))

	raw, err := os.ReadFile(f.db)
	require.NoError(t, err)
	require.NotEmpty(t, raw)
	payload, err := sdk.EncodeData(map[string]string{"api_key": canary})
	require.NoError(t, err)
	for _, leak := range []string{canary, string(payload)} {
		for form, enc := range encodings(leak) {
			require.NotContains(t, string(raw), enc, "the canary must not be in the database file as %s", form)
		}
	}
	key, err := os.ReadFile(f.key)
	require.NoError(t, err)
	require.NotContains(t, string(raw), strings.TrimSpace(string(key)), "the KEK must not be in the database file")
	// Names and metadata are stored in plain text: the check above is not
	// blind to the file's content.
	require.Contains(t, string(raw), "stripe-key")
}

func TestMovedCiphertextErrorThroughPlugin(t *testing.T) {
	f := newFixture(t)
	b := open(t, f.settings())
	write(t, b, "p", "a", map[string]string{"k": "va"})
	write(t, b, "p", "b", map[string]string{"k": "vb"})
	require.NoError(t, b.Close())
	db, err := bolt.Open(f.db, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		secrets := tx.Bucket([]byte("projects")).Bucket([]byte("p")).Bucket([]byte("secrets"))
		vkey := append([]byte{'v'}, 0, 0, 0, 0, 0, 0, 0, 1)
		ct := append([]byte(nil), secrets.Bucket([]byte("a")).Get(vkey)...)
		require.NotEmpty(t, ct, "the documented layout: projects/<p>/secrets/<name>/'v'+uint64be(version)")
		return secrets.Bucket([]byte("b")).Put(vkey, ct)
	}))
	require.NoError(t, db.Close())

	pb := plugintest.Start(t, f.settings())
	_, err = pb.Read(context.Background(), sdk.Ref{Project: "p", Name: "b"})
	require.Error(t, err)
	require.Contains(t, err.Error(), `version 1 of secret "b" in project "p" does not decrypt`)
	require.NotContains(t, err.Error(), "va")
	require.Equal(t, "va", read(t, pb, "p", "a", 0)["k"], "the untouched secret still reads")
}

func TestWrongKeyThroughPlugin(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, open(t, f.settings()).Close())
	before, err := os.ReadFile(f.db)
	require.NoError(t, err)
	t.Setenv("FILE_TEST_PLUGIN_WRONG_KEY", randomHex(t, 32))
	// plugintest.Start fails the test on a Configure error, so launch the
	// plugin by hand and configure it with the wrong key.
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pl, err := plugin.Launch(ctx, plugin.LaunchConfig{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{plugintest.ChildEnv + "=1"}})
	require.NoError(t, err)
	t.Cleanup(pl.Kill)
	err = pl.Backend().Configure(ctx, f.settings(file.SettingKeyFile, "", file.SettingKeyEnv, "FILE_TEST_PLUGIN_WRONG_KEY"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "key does not match this database")
	pl.Kill()
	after, err := os.ReadFile(f.db)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

// ack is one acknowledged write.
type ack struct {
	name    string
	version int64
	digest  [32]byte
	create  bool   // a create-only write
	receipt string // the key of its audit receipt
}

// refusal is a write the backend refused (already exists, version
// mismatch): its data must never be stored.
type refusal struct {
	name    string
	digest  [32]byte
	receipt string
}

// TestCrashMidWriteStorm: 32 writers, as many as a PUT load through the
// gateway, so that writes share bbolt batches (group commit), mixing
// upserts of a writer's own secrets, create-only writes racing for the
// same names and If-Match writes racing on one secret. The plugin is
// SIGKILLed mid-storm. Every acknowledged write must read back after the
// restart, no refused write may have been stored, and each name has one
// create only. The page cache outlives a killed process, so this proves
// what is acknowledged is committed, not that the commit was fsync'd
// (TestDatabaseSyncsEveryCommit covers that). Every write carries an audit
// receipt, which must be kept exactly with the writes that committed.
func TestCrashMidWriteStorm(t *testing.T) {
	f := newFixture(t)
	settings := f.settings(file.SettingMaxVersions, "0") // keep every acknowledged version readable
	p := plugintest.StartPlugin(t, settings)
	b := p.Backend()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var acks []ack
	var refused []refusal
	var wg sync.WaitGroup
	const writers = 32
	for g := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				data := map[string]string{"g": fmt.Sprint(g), "i": fmt.Sprint(i), "pad": strings.Repeat("p", i%300)}
				key := fmt.Sprintf("g%02d-%06d", g, i)
				req := sdk.WriteRequest{Project: "storm", Data: data, Mode: sdk.WriteUpsert,
					Receipt: &sdk.AuditReceipt{Key: key, Record: []byte(`{"phase":"intent","request_id":"` + key + `"}`)}}
				// Mostly writes that succeed, so that the commits can be
				// compared with the acknowledged writes below.
				switch i % 8 {
				default:
					req.Name = fmt.Sprintf("w%d-s%d", g, i%4)
				case 6:
					// Every writer tries to create the same names in turn.
					req.Name, req.Mode = fmt.Sprintf("c-%d", i/8), sdk.WriteCreate
				case 7:
					req.Name = "cas"
					if m, err := b.Describe(ctx, sdk.Ref{Project: "storm", Name: req.Name}); err == nil {
						req.ExpectedVersion = m.Version
					} else if errors.Is(err, sdk.ErrNotFound) {
						req.Mode = sdk.WriteCreate
					} else {
						return // the plugin is gone
					}
				}
				m, err := b.Write(ctx, req)
				enc, _ := sdk.EncodeData(data)
				switch {
				case errors.Is(err, sdk.ErrAlreadyExists) || errors.Is(err, sdk.ErrVersionMismatch):
					mu.Lock()
					refused = append(refused, refusal{name: req.Name, digest: sha256.Sum256(enc), receipt: key})
					mu.Unlock()
					continue
				case err != nil:
					return // the plugin is gone: this write was not acknowledged
				}
				mu.Lock()
				acks = append(acks, ack{name: req.Name, version: m.Version, digest: sha256.Sum256(enc), create: req.Mode == sdk.WriteCreate, receipt: key})
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	deadline := time.Now().Add(60 * time.Second)
	for count() < 400 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGKILL), "SIGKILL the plugin mid-storm")
	wg.Wait()
	require.GreaterOrEqual(t, len(acks), 100, "the storm must have acknowledged writes before the kill")
	require.NotEmpty(t, refused, "the storm must have refused racing writes")
	require.Eventually(t, p.Exited, 10*time.Second, 10*time.Millisecond)

	// bbolt numbers its commits: fewer commits than acknowledged writes
	// means the storm went through shared (batched) transactions.
	db, err := bolt.Open(f.db, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	require.NoError(t, err)
	var commits int
	require.NoError(t, db.View(func(tx *bolt.Tx) error { commits = tx.ID(); return nil }))
	require.NoError(t, db.Close())
	require.Less(t, commits, len(acks), "writes must share commits")

	b2 := plugintest.Start(t, settings) // the file opens, its lock released by the kernel
	latest := map[string]int64{}
	created := map[string]int{}
	for _, a := range acks {
		sec, err := b2.Read(ctx, sdk.Ref{Project: "storm", Name: a.name, Version: a.version})
		require.NoError(t, err, "acknowledged write %s v%d must survive the crash", a.name, a.version)
		enc, err := sdk.EncodeData(sec.Data)
		require.NoError(t, err)
		require.Equal(t, a.digest, sha256.Sum256(enc), "acknowledged write %s v%d must read back the same data", a.name, a.version)
		latest[a.name] = max(latest[a.name], a.version)
		if a.create {
			created[a.name]++
			require.Equal(t, 1, created[a.name], "%s was created twice", a.name)
			require.Equal(t, int64(1), a.version)
		}
	}
	for name, v := range latest {
		m, err := b2.Describe(ctx, sdk.Ref{Project: "storm", Name: name})
		require.NoError(t, err)
		require.GreaterOrEqual(t, m.Version, v, "%s went back in time", name)
	}
	stored := map[string]map[[32]byte]bool{} // every version of every refused write's secret
	for _, r := range refused {
		if stored[r.name] == nil {
			stored[r.name] = map[[32]byte]bool{}
			m, err := b2.Describe(ctx, sdk.Ref{Project: "storm", Name: r.name})
			require.NoError(t, err, "a write to %s was refused: it exists", r.name)
			for v := int64(1); v <= m.Version; v++ {
				sec, err := b2.Read(ctx, sdk.Ref{Project: "storm", Name: r.name, Version: v})
				require.NoError(t, err)
				enc, err := sdk.EncodeData(sec.Data)
				require.NoError(t, err)
				stored[r.name][sha256.Sum256(enc)] = true
			}
		}
		require.False(t, stored[r.name][r.digest], "a refused write to %s was stored", r.name)
	}
	// Every write carried an audit receipt, committed with it or not at
	// all: each acknowledged write's is kept, naming its version; no
	// refused write's is.
	kept, err := b2.(sdk.ReceiptKeeper).Receipts(ctx)
	require.NoError(t, err)
	receipts := map[string]sdk.KeptReceipt{}
	for _, r := range kept {
		receipts[r.Key] = r
	}
	for _, a := range acks {
		r, ok := receipts[a.receipt]
		require.True(t, ok, "acknowledged write %s v%d lost its receipt", a.name, a.version)
		require.Equal(t, a.version, r.Version, "receipt %s", a.receipt)
		require.Contains(t, string(r.Record), a.receipt)
	}
	for _, r := range refused {
		require.NotContains(t, receipts, r.receipt, "a refused write's receipt was kept")
	}
	require.LessOrEqual(t, len(kept)-len(acks), writers, "at most one write per writer committed unacknowledged (in flight at the kill)")

	// And it takes writes again.
	write(t, b2, "storm", "after-crash", map[string]string{"k": "v"})
	t.Logf("%d acknowledged and %d refused writes from %d writers in %d commits; all survived SIGKILL", len(acks), len(refused), writers, commits)
}

// benchData is a typical secret: a handful of keys, about 300 bytes.
var benchData = map[string]string{
	"host": "db.internal.example.com", "port": "5432", "user": "payments_app",
	"password": strings.Repeat("s3cr3t-", 20), "sslmode": "verify-full",
}

func benchBackends(b *testing.B) map[string]func(b *testing.B) sdk.Backend {
	return map[string]func(b *testing.B) sdk.Backend{
		"in-process": func(b *testing.B) sdk.Backend { return open(b, newFixture(b).settings()) },
		"plugin":     func(b *testing.B) sdk.Backend { return plugintest.Start(b, newFixture(b).settings()) },
	}
}

func BenchmarkRead(b *testing.B) {
	for _, mode := range []string{"in-process", "plugin"} {
		b.Run(mode, func(b *testing.B) {
			be := benchBackends(b)[mode](b)
			write(b, be, "bench", "db", benchData)
			ctx := context.Background()
			ref := sdk.Ref{Project: "bench", Name: "db"}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := be.Read(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"in-process", "plugin"} {
		b.Run(mode, func(b *testing.B) {
			be := benchBackends(b)[mode](b)
			ctx := context.Background()
			req := sdk.WriteRequest{Project: "bench", Name: "db", Data: benchData, Mode: sdk.WriteUpsert}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := be.Write(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBoltCommit is the floor a Write stands on: one bare bbolt
// transaction putting a value of the same size, fsync'd on commit.
func BenchmarkBoltCommit(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	val := make([]byte, 400)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return bk.Put(fmt.Appendf(nil, "k%d", i%10), val)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteConcurrent: 32 writers, as a PUT load through the gateway
// makes them, each writing new versions of one of 100 secrets. ns/op is per
// write over all writers.
func BenchmarkWriteConcurrent(b *testing.B) {
	const writers, secrets = 32, 100
	for _, mode := range []string{"in-process", "plugin"} {
		b.Run(mode, func(b *testing.B) {
			be := benchBackends(b)[mode](b)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						req := sdk.WriteRequest{Project: "bench", Name: fmt.Sprintf("db-%d", i%secrets), Data: benchData, Mode: sdk.WriteUpsert}
						if _, err := be.Write(ctx, req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
