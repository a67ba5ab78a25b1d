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

// TestStagedWritesWaitForTheIntentRecord: PUT and POST reach a backend
// with staged writes through WriteStaged, whose ready returns only once
// the intent record is synced to the audit file; when that sync fails,
// ready fails, the backend writes nothing and the client gets 503.
func TestStagedWritesWaitForTheIntentRecord(t *testing.T) {
	h := newHarness(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	a := openTestAuditor(t, path, FsyncMutations)
	var mu sync.Mutex
	var synced []byte
	syncErr := errors.New("fsync failed by the test")
	failing := false
	a.mu.Lock()
	a.syncFile = func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return syncErr
		}
		if err := f.Sync(); err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		synced = b
		return err
	}
	a.mu.Unlock()
	backend := &stagedMem{memBackend: h.mem, synced: func() []byte { mu.Lock(); defer mu.Unlock(); return synced }}
	h.srv.audit = a
	h.srv.backends = singleBackend{backend}

	r := h.do(t, "POST", base, "t-admin", map[string]any{"name": "db", "data": map[string]string{"a": "1"}})
	require.Equal(t, 201, r.code, "%s", r.body)
	r = h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"a": "2"}})
	require.Equal(t, 200, r.code, "%s", r.body)
	require.Equal(t, 2, backend.staged)
	require.Equal(t, []bool{true, true}, backend.intentSeen, "ready returned before the intent record was synced")

	mu.Lock()
	failing = true
	mu.Unlock()
	before := h.mem.writes
	r = h.do(t, "PUT", base+"/db", "t-admin", map[string]any{"data": map[string]string{"a": "3"}})
	require.Equal(t, 503, r.code, "%s", r.body)
	require.Equal(t, 3, backend.staged)
	require.Equal(t, before, h.mem.writes, "written although its intent record failed")
}
