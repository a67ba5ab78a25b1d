package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// keeperBackend keeps receipts in memory (the file backend's own are
// tested by the conformance suite and internal/e2e); only the calls
// receipts.go makes are implemented.
type keeperBackend struct {
	sdk.Backend
	caps sdk.Capabilities

	mu        sync.Mutex
	kept      []sdk.KeptReceipt
	forgotten [][]string
	forgetErr error
}

func (k *keeperBackend) Capabilities(context.Context) (sdk.Capabilities, error) { return k.caps, nil }

func (k *keeperBackend) Receipts(context.Context) ([]sdk.KeptReceipt, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.kept), nil
}

func (k *keeperBackend) ForgetReceipts(_ context.Context, keys []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.forgetErr != nil {
		return k.forgetErr
	}
	k.forgotten = append(k.forgotten, keys)
	k.kept = slices.DeleteFunc(k.kept, func(r sdk.KeptReceipt) bool { return slices.Contains(keys, r.Key) })
	return nil
}

func (k *keeperBackend) forgottenKeys() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Concat(k.forgotten...)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func intentJSON(t *testing.T, id string) []byte {
	t.Helper()
	rec := intentRecord(id)
	rec.Time = "2026-12-02T10:00:00Z"
	raw, err := json.Marshal(rec)
	require.NoError(t, err)
	return raw
}

// A plugin that starts with receipts kept gets them moved into the log
// (intent and outcome, with the version, marked recovered) and forgotten;
// a receipt that is not an intent record stays kept; one this process
// still holds in its ledger is not recovered twice. Receipts are recovered
// even when they are off, and only a backend that declares them gets a
// ledger.
func TestReceiptsRecoverAtStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        AuditConfig
		caps       bool
		wantLedger bool
	}{
		{"on", AuditConfig{}, true, true},
		{"off", AuditConfig{ReceiptSync: "off"}, true, false},
		{"interval policy", AuditConfig{Fsync: FsyncInterval}, true, false},
		{"backend without receipts", AuditConfig{}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			a, err := openFileAuditor(path, cmpPolicy(tc.cfg.Fsync), time.Hour)
			require.NoError(t, err)
			t.Cleanup(func() { _ = a.Close() })
			k := &keeperBackend{caps: sdk.Capabilities{Backend: "file", Receipts: tc.caps}, kept: []sdk.KeptReceipt{
				{Key: "k1", Record: intentJSON(t, "r1"), Version: 7},
				{Key: "k2", Record: []byte("not json"), Version: 1},
				{Key: "k3", Record: intentJSON(t, "r3"), Version: 2},
			}}
			r := newReceipts(a, tc.cfg, quietLog(), func(string) (sdk.Backend, error) { return k, nil })
			if tc.wantLedger {
				// k3's records are written by this process, waiting for the loop.
				r.ledgers["local"] = &receiptLedger{written: []writtenReceipt{{key: "k3"}}}
			}
			r.started(t.Context(), "local", k)
			require.Equal(t, tc.wantLedger, r.ledger("local") != nil)
			if !tc.caps {
				require.Empty(t, k.forgottenKeys(), "a backend without receipts is not asked")
				return
			}
			recs := auditLines(t, path)
			wantRecovered := []string{"r1", "r3"}
			if tc.wantLedger {
				wantRecovered = []string{"r1"}
			}
			var got []string
			for i := 0; i < len(recs); i += 2 {
				in, out := recs[i], recs[i+1]
				require.Equal(t, PhaseIntent, in.Phase)
				require.Equal(t, "2026-12-02T10:00:00Z", in.Time, "the intent as the receipt holds it")
				require.Equal(t, PhaseOutcome, out.Phase)
				require.Equal(t, "ok", out.Outcome)
				require.True(t, in.Recovered && out.Recovered, "marked recovered")
				require.Equal(t, in.RequestID, out.RequestID)
				got = append(got, in.RequestID)
			}
			require.Equal(t, wantRecovered, got)
			require.Equal(t, int64(7), recs[1].Version, "the outcome names the version the write created")
			forgot := k.forgottenKeys()
			require.Contains(t, forgot, "k1")
			require.NotContains(t, forgot, "k2", "a receipt that does not decode stays kept")
			require.Equal(t, !tc.wantLedger, slices.Contains(forgot, "k3"))
			var m strings.Builder
			r.writeMetrics(&m)
			require.Contains(t, m.String(), fmt.Sprintf("secretgate_audit_receipts_recovered_total{backend=\"local\"} %d\n", len(wantRecovered)))
			if tc.wantLedger {
				require.Contains(t, m.String(), "secretgate_audit_receipts_waiting{backend=\"local\"} 1\n", "k3 waits for the loop")
			}
		})
	}
}

// Recovery syncs the log once for every receipt it moves, and forgets
// none of them when that sync fails.
func TestReceiptsRecoverSyncsOnce(t *testing.T) {
	for _, syncErr := range []error{nil, errors.New("EIO")} {
		a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), syncErr)
		g.open()
		k := &keeperBackend{caps: sdk.Capabilities{Backend: "file", Receipts: true}}
		for _, id := range []string{"r1", "r2", "r3"} {
			k.kept = append(k.kept, sdk.KeptReceipt{Key: "k-" + id, Record: intentJSON(t, id), Version: 1})
		}
		r := newReceipts(a, AuditConfig{}, quietLog(), func(string) (sdk.Backend, error) { return k, nil })
		r.started(t.Context(), "local", k)
		require.Equal(t, 1, g.syncs(), "six records, one fsync")
		if syncErr == nil {
			require.Equal(t, []string{"k-r1", "k-r2", "k-r3"}, k.forgottenKeys())
		} else {
			require.Empty(t, k.forgottenKeys(), "a failed sync forgets nothing: the next start recovers them again")
		}
	}
}

func cmpPolicy(p FsyncPolicy) FsyncPolicy {
	if p == "" {
		return FsyncMutations
	}
	return p
}

// flush forgets a receipt only after the syncs of its records succeeded;
// one whose records a failed sync may have lost is dropped, never
// forgotten (the plugin's next start recovers it); one the backend cannot
// forget yet is kept for the next round.
func TestReceiptsFlush(t *testing.T) {
	boom := errors.New("EIO")
	a, g := gatedAuditor(t, filepath.Join(t.TempDir(), "audit.log"), boom)
	g.open()
	k := &keeperBackend{caps: sdk.Capabilities{Backend: "file", Receipts: true}}
	r := newReceipts(a, AuditConfig{}, quietLog(), func(string) (sdk.Backend, error) { return k, nil })
	r.started(t.Context(), "local", k)
	l := r.ledger("local")
	require.NotNil(t, l)
	written := func(key, id string) writtenReceipt {
		b, err := a.WriteDeferred(intentRecord(id))
		require.NoError(t, err)
		return writtenReceipt{key: key, batches: [2]*syncBatch{b, b}}
	}

	l.add(written("k1", "w1"))
	r.flush() // the first sync fails
	require.Empty(t, k.forgottenKeys(), "nothing forgotten after a failed sync")
	require.Empty(t, l.written, "k1 is left to the next start's recovery")

	k.forgetErr = errors.New("plugin restarting")
	l.add(written("k2", "w2"))
	r.flush()
	require.True(t, g.coveredBySync("w2"))
	require.Len(t, l.written, 1, "kept when the backend cannot forget yet")

	k.forgetErr = nil
	l.add(written("k3", "w3"))
	r.flush()
	require.Equal(t, []string{"k2", "k3"}, k.forgottenKeys())
	require.Empty(t, l.written)
	syncs := g.syncs()
	r.flush()
	require.Equal(t, syncs, g.syncs(), "an empty ledger costs no sync")

	// A reload removed the backend: its ledger goes, its receipts stay.
	r.backend = func(string) (sdk.Backend, error) { return nil, sdk.NotFound("", "local") }
	l.add(written("k4", "w4"))
	r.flush()
	require.Nil(t, r.ledger("local"))
	require.NotContains(t, k.forgottenKeys(), "k4")
}

func TestReceiptsCovered(t *testing.T) {
	ok, failed, open := newSyncBatch(), newSyncBatch(), newSyncBatch()
	ok.finish(nil)
	failed.finish(errors.New("EIO"))
	synced, waiting, lost := covered([]writtenReceipt{
		{key: "a", batches: [2]*syncBatch{ok, ok}},
		{key: "b", batches: [2]*syncBatch{failed, ok}},
		{key: "c", batches: [2]*syncBatch{ok, open}},
		{key: "d", batches: [2]*syncBatch{open, failed}},
		{key: "e"},
	})
	require.Equal(t, []string{"a", "e"}, synced)
	require.Len(t, waiting, 1)
	require.Equal(t, "c", waiting[0].key)
	require.Equal(t, 2, lost, "a failed sync of either record loses the receipt's forgetting")
}

func TestReceiptKeysSortByTime(t *testing.T) {
	r := newReceipts(nil, AuditConfig{}, quietLog(), nil)
	prev := r.nextKey()
	require.Len(t, prev, 32)
	for range 300 {
		k := r.nextKey()
		require.Less(t, prev, k)
		prev = k
	}
	later := newReceipts(nil, AuditConfig{}, quietLog(), nil)
	require.Less(t, prev, later.nextKey(), "a later process's keys sort after")
}
