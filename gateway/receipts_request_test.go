package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// receiptMem is a memBackend that keeps the receipts of the writes it
// stores, and notes how many audit fsyncs had returned when each delete
// reached it.
type receiptMem struct {
	*memBackend
	gate *syncGate

	onWrite func() // called before each write, when set

	mu            sync.Mutex
	kept          map[string][]byte
	syncsAtDelete []int
}

func (m *receiptMem) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	c, err := m.memBackend.Capabilities(ctx)
	c.Receipts = true
	return c, err
}

func (m *receiptMem) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if m.onWrite != nil {
		m.onWrite()
	}
	meta, err := m.memBackend.Write(ctx, req)
	if err == nil && req.Receipt != nil {
		m.mu.Lock()
		m.kept[req.Receipt.Key] = bytes.Clone(req.Receipt.Record)
		m.mu.Unlock()
	}
	return meta, err
}

func (m *receiptMem) Delete(ctx context.Context, ref sdk.Ref) error {
	m.mu.Lock()
	m.syncsAtDelete = append(m.syncsAtDelete, m.gate.syncs())
	m.mu.Unlock()
	return m.memBackend.Delete(ctx, ref)
}

func (m *receiptMem) Receipts(context.Context) ([]sdk.KeptReceipt, error) { return nil, nil }

func (m *receiptMem) ForgetReceipts(_ context.Context, keys []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.kept, k)
	}
	return nil
}

func (m *receiptMem) keptRecords() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.kept)
}

type oneBackend struct{ b sdk.Backend }

func (o oneBackend) Backend(string) (sdk.Backend, error)                { return o.b, nil }
func (o oneBackend) Suspect(string)                                     {}
func (o oneBackend) Status() map[string]bool                            { return map[string]bool{"mem": true} }
func (o oneBackend) PingAll(ctx context.Context) (out map[string]error) { return nil }

// receiptServer is a server on a with mem as backend "mem" keeping
// receipts, its loop an hour apart (flush is called by hand).
func receiptServer(t *testing.T, a *FileAuditor, mem *receiptMem) *Server {
	t.Helper()
	cfg := &Config{Audit: AuditConfig{ReceiptSync: "1h"}, Projects: []ProjectConfig{{Name: "payments", Backend: "mem"}}}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete}
	srv, err := New(t.Context(), cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		Authorizer: fakeAuthz{tokens: map[string]string{"t-admin": "admin"}, grants: map[string]fakeGrant{"admin/payments": {actions: all}}},
		Auditor:    a, Backends: oneBackend{b: mem},
	})
	require.NoError(t, err)
	srv.receipts.started(t.Context(), "mem", mem) // the host's hook, which Options.Backends skips
	return srv
}

// A receipt is forgotten only if the syncs of both its records
// succeeded: here the intent's sync does (the backend's write waits for
// it), the outcome's fails, and the receipt stays kept.
func TestReceiptKeptWhenTheOutcomesSyncFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, g := gatedAuditor(t, path, nil)
	g.open()
	mem := &receiptMem{memBackend: newMemBackend(), gate: g, kept: map[string][]byte{}}
	mem.onWrite = func() {
		require.NoError(t, a.Sync(), "the intent's sync")
		a.mu.Lock()
		a.syncFile = func(*os.File) error { return errors.New("EIO") }
		a.mu.Unlock()
	}
	srv := receiptServer(t, a, mem)
	h := &harness{srv: srv}
	r := h.do(t, "POST", base, "t-admin", map[string]any{"name": "db", "data": map[string]string{"k": "v"}})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	require.Len(t, mem.keptRecords(), 1)
	srv.receipts.flush() // the outcome's sync fails
	require.Len(t, mem.keptRecords(), 1, "the outcome may be lost from the log: its receipt stays for the next start")
}

// Through the HTTP API, on a backend that keeps receipts: a create's and a
// replace's records reach the log with no fsync on the request's path, and
// the write's receipt holds its intent record as the log has it; a refused
// write keeps no receipt and its outcome is synced; a delete waits for its
// intent's fsync before it reaches the backend; a clean shutdown syncs the
// log and forgets every receipt.
func TestReceiptedRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, g := gatedAuditor(t, path, nil)
	g.open()
	mem := &receiptMem{memBackend: newMemBackend(), gate: g, kept: map[string][]byte{}}
	srv := receiptServer(t, a, mem)
	h := &harness{srv: srv}

	r := h.do(t, "POST", base, "t-admin", map[string]any{"name": "db", "data": map[string]string{"k": canary}})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	r = h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"k": "v2"}})
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, 0, g.syncs(), "a receipted write waits for no audit fsync")
	kept := mem.keptRecords()
	require.Len(t, kept, 2)
	recs := auditLines(t, path)
	require.Len(t, recs, 4, "intent and outcome of both writes are in the log")
	for _, raw := range kept {
		var rec AuditRecord
		require.NoError(t, json.Unmarshal(raw, &rec))
		require.Equal(t, PhaseIntent, rec.Phase)
		require.Contains(t, []AuditRecord{recs[0], recs[2]}, rec, "the receipt is the intent record as logged")
	}
	require.Equal(t, r.hdr.Get("X-Request-Id"), recs[3].RequestID)
	require.Equal(t, int64(2), recs[3].Version)

	r = h.do(t, "POST", base, "t-admin", map[string]any{"name": "db", "data": map[string]string{"k": "again"}})
	require.Equal(t, http.StatusConflict, r.code)
	require.Len(t, mem.keptRecords(), 2, "a refused write keeps no receipt")
	require.True(t, g.coveredBySync(r.hdr.Get("X-Request-Id")), "the outcome of a refused write is synced, as without receipts")

	before := g.syncs()
	r = h.do(t, "DELETE", base+"/db", "t-admin", nil)
	require.Equal(t, http.StatusNoContent, r.code, "%s", r.body)
	require.Len(t, mem.syncsAtDelete, 1)
	require.Greater(t, mem.syncsAtDelete[0], before, "the delete's intent was synced before the backend was called")
	require.True(t, g.coveredBySync(r.hdr.Get("X-Request-Id")))

	require.NoError(t, srv.Shutdown(context.Background()))
	require.Empty(t, mem.keptRecords(), "a clean stop syncs the log and forgets the receipts")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(raw), canary)
}
