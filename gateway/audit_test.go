package gateway

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretgate/secretgate/sdk/api"
	"github.com/stretchr/testify/require"
)

// auditLines reads an audit file that must end on a complete line and
// parse line by line.
func auditLines(t *testing.T, path string) []AuditRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	if len(b) == 0 {
		return nil
	}
	require.Equal(t, byte('\n'), b[len(b)-1], "the audit file ends in a partial line: %q", tail(b))
	var recs []AuditRecord
	for line := range bytes.Lines(b) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var r AuditRecord
		require.NoError(t, dec.Decode(&r), "a line of the audit file is not one record: %q", tail(line))
		require.False(t, dec.More(), "a line of the audit file holds more than one record: %q", tail(line))
		recs = append(recs, r)
	}
	return recs
}

func tail(b []byte) []byte { return b[max(0, len(b)-120):] }

func requestIDs(recs []AuditRecord) []string {
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.RequestID)
	}
	return ids
}

func readRecord(id string) AuditRecord {
	return AuditRecord{RequestID: id, Subject: "alice", Project: "p", Action: ActionRead, Secret: "db", Phase: PhaseOutcome, Outcome: "ok"}
}

func openTestAuditor(t *testing.T, path string, policy FsyncPolicy) *FileAuditor {
	t.Helper()
	a, err := OpenFileAuditor(path, policy)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close()) })
	return a
}

func TestAuditFollowsRotation(t *testing.T) {
	tests := []struct {
		name    string
		rotate  func(t *testing.T, a *FileAuditor, path, rotated string)
		kept    bool        // the old records are still in rotated
		newMode os.FileMode // of the file at path after the rotation
	}{
		{"renamed, then Reopen (logrotate)", func(t *testing.T, a *FileAuditor, path, rotated string) {
			require.NoError(t, os.Rename(path, rotated))
			require.NoError(t, a.Reopen())
			st, err := os.Stat(path)
			require.NoError(t, err, "Reopen creates the file at its path")
			require.Zero(t, st.Size())
		}, true, 0o600},
		{"renamed without Reopen", func(t *testing.T, _ *FileAuditor, path, rotated string) {
			require.NoError(t, os.Rename(path, rotated))
		}, true, 0o600},
		{"renamed, new file created by the rotator", func(t *testing.T, _ *FileAuditor, path, rotated string) {
			require.NoError(t, os.Rename(path, rotated))
			require.NoError(t, os.WriteFile(path, nil, 0o640))
			require.NoError(t, os.Chmod(path, 0o640)) // whatever the umask
		}, true, 0o640},
		{"removed", func(t *testing.T, _ *FileAuditor, path, _ string) {
			require.NoError(t, os.Remove(path))
		}, false, 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, rotated := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.1")
			a := openTestAuditor(t, path, FsyncMutations)
			require.NoError(t, a.Write(readRecord("before")))
			tc.rotate(t, a, path, rotated)
			require.NoError(t, a.Write(readRecord("after")))
			require.NoError(t, a.Write(readRecord("after-2")))

			require.Equal(t, []string{"after", "after-2"}, requestIDs(auditLines(t, path)))
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, tc.newMode, st.Mode().Perm())
			if tc.kept {
				require.Equal(t, []string{"before"}, requestIDs(auditLines(t, rotated)))
			}
		})
	}
}

func TestAuditRefusesRecordsWhenItsPathCannotBeOpened(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a := openTestAuditor(t, path, FsyncMutations)
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Mkdir(path, 0o700))
	err := a.Write(readRecord("lost"))
	require.ErrorContains(t, err, "record not written")
	require.ErrorContains(t, a.Reopen(), "audit: reopen")

	require.NoError(t, os.Remove(path))
	require.NoError(t, a.Write(readRecord("kept")))
	require.Equal(t, []string{"kept"}, requestIDs(auditLines(t, path)))
}

func TestAuditReopenAfterClose(t *testing.T) {
	a, err := OpenFileAuditor(filepath.Join(t.TempDir(), "audit.log"), "")
	require.NoError(t, err)
	require.NoError(t, a.Close())
	require.ErrorContains(t, a.Reopen(), "closed")
}

// A partial record left by a crash, or by an older gateway, is removed when
// the file is opened, so the next record does not extend it.
func TestAuditRemovesPartialRecordAtOpen(t *testing.T) {
	whole := `{"time":"t","request_id":"old","subject":"s","action":"secrets.read","phase":"outcome","outcome":"ok"}` + "\n"
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"ends in a partial record", whole + `{"time":"t","request_id":"torn","action":"secrets.cr`, []string{"old", "new"}},
		{"holds a partial record only", `{"time":"t","request_id":"torn"`, []string{"new"}},
		{"partial record longer than a read", whole + strings.Repeat("x", 10000), []string{"old", "new"}},
		{"complete", whole, []string{"old", "new"}},
		{"empty", "", []string{"new"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			a := openTestAuditor(t, path, FsyncMutations)
			require.NoError(t, a.Write(readRecord("new")))
			require.Equal(t, tc.want, requestIDs(auditLines(t, path)))
		})
	}
}

// A request refused for its token changes nothing: under the default
// policy its record is not synced on its own, whatever its route, so a
// flood of them cannot hold the audit lock through an fsync each.
func TestAuditSyncsUnauthenticatedRecordsInTheBackground(t *testing.T) {
	unauth := func(action string) AuditRecord {
		return AuditRecord{RequestID: "r", Action: action, Phase: PhaseOutcome, Outcome: api.CodeUnauthenticated}
	}
	tests := []struct {
		name   string
		policy FsyncPolicy
		rec    AuditRecord
		syncs  int
	}{
		{"unauthenticated create", FsyncMutations, unauth(ActionCreate), 0},
		{"unauthenticated delete", FsyncMutations, unauth(ActionDelete), 0},
		{"unauthenticated migrate", FsyncMutations, unauth(ActionMigrate), 0},
		{"unauthenticated read", FsyncMutations, unauth(ActionRead), 0},
		{"intent of a create", FsyncMutations, AuditRecord{Subject: "s", Action: ActionCreate, Phase: PhaseIntent}, 1},
		{"outcome of a create", FsyncMutations, AuditRecord{Subject: "s", Action: ActionCreate, Phase: PhaseOutcome, Outcome: "ok"}, 1},
		{"denied delete", FsyncMutations, AuditRecord{Subject: "s", Action: ActionDelete, Phase: PhaseOutcome, Outcome: api.CodePermissionDenied}, 1},
		{"read", FsyncMutations, readRecord("r"), 0},
		{"unauthenticated create, policy always", FsyncAlways, unauth(ActionCreate), 1},
		{"intent, policy interval", FsyncInterval, AuditRecord{Subject: "s", Action: ActionCreate, Phase: PhaseIntent}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No background sync during the test: only Write's own count.
			a, err := openFileAuditor(filepath.Join(t.TempDir(), "audit.log"), tc.policy, time.Hour)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, a.Close()) })
			syncs := 0
			a.mu.Lock()
			a.syncFile = func(f *os.File) error { syncs++; return f.Sync() }
			a.mu.Unlock()
			require.NoError(t, a.Write(tc.rec))
			a.mu.Lock()
			defer a.mu.Unlock()
			require.Equal(t, tc.syncs, syncs)
			require.Equal(t, tc.syncs == 0, a.pending.records > 0, "an unsynced record is left to the background sync")
		})
	}
}

// BenchmarkAuditWrite: "read" is the cost of an unsynced record (the
// rotation check included); "unauthenticated create" is what a flood of
// bad tokens on a mutation route costs per request under the default
// policy.
func BenchmarkAuditWrite(b *testing.B) {
	benches := []struct {
		name   string
		policy FsyncPolicy
		rec    AuditRecord
	}{
		{"read", FsyncMutations, readRecord("r")},
		{"unauthenticated create", FsyncMutations, AuditRecord{RequestID: "r", Project: "p", Action: ActionCreate, Secret: "db", Phase: PhaseOutcome, Outcome: api.CodeUnauthenticated}},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			a, err := OpenFileAuditor(filepath.Join(b.TempDir(), "audit.log"), bc.policy)
			require.NoError(b, err)
			b.Cleanup(func() { _ = a.Close() })
			for b.Loop() {
				if err := a.Write(bc.rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
