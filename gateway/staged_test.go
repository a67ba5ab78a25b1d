package gateway

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// stagedMem is a memBackend with WriteStaged. For each staged write it
// notes whether, when ready returned nil, the audit file's synced content
// held the write's intent record.
type stagedMem struct {
	*memBackend
	synced func() []byte // the audit file as of its last successful fsync

	mu         sync.Mutex
	staged     int
	intentSeen []bool
}

func (s *stagedMem) WriteStaged(ctx context.Context, req sdk.WriteRequest, ready func() error) (sdk.Meta, error) {
	s.mu.Lock()
	s.staged++
	s.mu.Unlock()
	if err := ready(); err != nil {
		return sdk.Meta{}, err
	}
	intent := []byte(`"secret":"` + req.Name + `","phase":"intent"`)
	s.mu.Lock()
	s.intentSeen = append(s.intentSeen, bytes.Contains(s.synced(), intent))
	s.mu.Unlock()
	return s.Write(ctx, req)
}

// stageOn gives srv a real audit log and mem with WriteStaged as its only
// backend; fail makes the audit log's fsyncs fail from then on.
func stageOn(t *testing.T, srv *Server, mem *memBackend) (backend *stagedMem, fail func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	a := openTestAuditor(t, path, FsyncMutations)
	var mu sync.Mutex
	var synced []byte
	failing := false
	a.mu.Lock()
	a.syncFile = func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("fsync failed by the test")
		}
		if err := f.Sync(); err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		synced = b
		return err
	}
	a.mu.Unlock()
	backend = &stagedMem{memBackend: mem, synced: func() []byte { mu.Lock(); defer mu.Unlock(); return synced }}
	srv.audit = a
	srv.backends = singleBackend{backend}
	return backend, func() { mu.Lock(); failing = true; mu.Unlock() }
}

// TestStagedWritesWaitForTheIntentRecord: creates and replaces, through
// the secrets API and the Vault API, reach a backend with staged writes
// through WriteStaged, whose ready returns only once the intent record is
// synced to the audit file; when that sync fails, ready fails, the backend
// writes nothing and the client gets 503.
func TestStagedWritesWaitForTheIntentRecord(t *testing.T) {
	t.Run("secrets API", func(t *testing.T) {
		h := newHarness(t)
		backend, fail := stageOn(t, h.srv, h.mem)
		r := h.do(t, "POST", base, "t-admin", map[string]any{"name": "db", "data": map[string]string{"a": "1"}})
		require.Equal(t, 201, r.code, "%s", r.body)
		r = h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"a": "2"}})
		require.Equal(t, 200, r.code, "%s", r.body)
		require.Equal(t, 2, backend.staged)
		require.Equal(t, []bool{true, true}, backend.intentSeen, "ready returned before the intent record was synced")

		fail()
		before := h.mem.writes
		r = h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"a": "3"}})
		require.Equal(t, 503, r.code, "%s", r.body)
		require.Equal(t, 3, backend.staged)
		require.Equal(t, before, h.mem.writes, "written although its intent record failed")
	})
	t.Run("Vault API", func(t *testing.T) {
		e := newVaultEnv(t)
		backend, fail := stageOn(t, e.srv, e.mem)
		r := e.do(t, "PUT", "/v1/secret/data/payments/db", "t-alice", map[string]any{"data": map[string]string{"a": "1"}})
		require.Equal(t, 200, r.code, "%s", r.body)
		// check-and-set on a secret that does not exist: Vault's answer,
		// through the staged path too.
		r = e.do(t, "PUT", "/v1/secret/data/payments/missing", "t-alice", map[string]any{"data": map[string]string{"a": "1"}, "options": map[string]any{"cas": 3}})
		require.Equal(t, 400, r.code, "%s", r.body)
		require.Contains(t, string(r.body), "check-and-set")
		require.Equal(t, 2, backend.staged)
		require.Equal(t, []bool{true, true}, backend.intentSeen)

		fail()
		before := e.mem.writes
		r = e.do(t, "PUT", "/v1/secret/data/payments/db", "t-alice", map[string]any{"data": map[string]string{"a": "2"}})
		require.Equal(t, 503, r.code, "%s", r.body)
		require.Equal(t, before, e.mem.writes)
	})
}
