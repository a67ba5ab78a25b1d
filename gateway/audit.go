package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk/api"
)

// Audit phases. A mutation writes an intent record before the backend is
// touched and an outcome record after; reads and denials write one outcome.
const (
	PhaseIntent  = "intent"
	PhaseOutcome = "outcome"
)

// AuditRecord is one JSON line of the audit log. It holds names, never a
// value and never a token.
type AuditRecord struct {
	Time      string `json:"time"` // RFC 3339, nanoseconds, UTC
	RequestID string `json:"request_id"`
	// ClientRequestID is the X-Request-Id the client sent, kept apart:
	// RequestID is always the gateway's own.
	ClientRequestID string `json:"client_request_id,omitempty"`
	Subject         string `json:"subject"`
	// Issuer and Claims: for a workload identity token, the auth.jwt
	// issuer that vouched for it and its audit_claims (never the token).
	Issuer  string            `json:"issuer,omitempty"`
	Claims  map[string]string `json:"claims,omitempty"`
	Project string            `json:"project,omitempty"`
	Action  string            `json:"action"`
	Secret  string            `json:"secret,omitempty"`
	Phase   string            `json:"phase"`
	// Outcome is "ok", or the API error code (not_found, permission_denied,
	// version_mismatch, backend_unavailable, ...). Empty on intent records.
	Outcome string `json:"outcome,omitempty"`
	Backend string `json:"backend,omitempty"`
	Version int64  `json:"version,omitempty"`
	// Recovered: moved into the log from a backend's audit receipt when
	// its plugin started (receipts.go); the log may hold it already.
	Recovered bool `json:"recovered,omitempty"`
}

// Auditor writes audit records. Write must not return before the record is
// in the sink (or the write failed): the gateway fails the request on error.
type Auditor interface {
	Write(rec AuditRecord) error
	Close() error
}

// FsyncPolicy says when the audit file is flushed to stable storage.
type FsyncPolicy string

const (
	// FsyncAlways syncs after every record.
	FsyncAlways FsyncPolicy = "always"
	// FsyncMutations syncs after every record of a mutation (intent and
	// outcome), so the trail of every change is on disk before the backend
	// is touched and before the client hears of success; the records of a
	// write whose receipt the backend commits with it are written with
	// WriteDeferred instead (receipts.go). Read records, and
	// records of requests refused for their token (on any route: they
	// change nothing), reach the kernel before the response but are synced
	// by the next mutation, by a background sync every second, or at Close.
	// This is the default.
	FsyncMutations FsyncPolicy = "mutations"
	// FsyncInterval syncs once a second and at Close only.
	FsyncInterval FsyncPolicy = "interval"
)

// FileAuditor appends JSON lines to a file opened O_APPEND with mode 0600.
// Records are written in the order they are handed in, each as a whole
// line in one write(2) call.
//
// Group commit (audit_group.go): fsyncs are not made under the write lock.
// A record that must be synced waits until an fsync that started after its
// write has returned; one fsync serves every record handed in while the
// previous one ran, so concurrent mutations share their syncs instead of
// queueing for one each, and a writer alone syncs at once. Records handed
// in while a sync runs are held in memory and written together, in one
// write(2) with one check of the path, just before the next sync starts
// (or sooner, ahead of any other record): their Write has not returned, so
// no request has gone on on their strength. A record that is not synced at
// once (a read) is written before its Write returns, so before the answer.
//
// The file never ends in a partial record, so the trail always parses line
// by line. A write that fails or is short (a full filesystem) is undone by
// truncating the file back to just after its last '\n', and Write says the
// record was not written. Should that truncate fail too, the auditor refuses
// every record (each Write tries the repair again first) rather than append
// to the fragment; opening the file removes a fragment left by a crash in
// the same way. A fragment is never an acknowledged record: the request it
// belongs to was answered 503, or never answered.
//
// Rotation: Reopen (SIGHUP, logrotate's convention) opens the configured
// path again. Before every record the path is also checked (one stat): when
// it no longer names the open file, because it was removed or renamed away,
// the file is recreated at the path (0600) and the record goes there, so a
// rotation without SIGHUP, or an rm, loses nothing to a renamed or deleted
// inode. If the path cannot be opened again the record is refused (fail
// closed). A file renamed between that check and the write still gets the
// record, as a complete line. Repair and rotation apply to regular files
// only; a device or pipe (audit.path: /dev/stdout) is written as is.
type FileAuditor struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	info    os.FileInfo // of f, to see whether path still names it
	regular bool
	// torn: f may end in a partial record that could not be removed yet.
	torn   bool
	policy FsyncPolicy
	closed bool
	// pending holds the records written to f since the last sync started.
	pending *syncBatch
	// queue holds the records to be synced that were handed in while a
	// sync ran, not yet written; queued is their lines.
	queue  *syncBatch
	queued []byte
	// syncBusy: a writer leads a sync (of a batch that is no longer pending);
	// running is that batch.
	syncBusy bool
	running  *syncBatch
	// syncing is held through every fsync, so that a file is not closed
	// under one that is still running. Lock order: mu, then syncing.
	syncing sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	now     func() time.Time
	// Seams for tests: how f is synced and truncated (set under mu).
	syncFile func(*os.File) error
	truncate func(*os.File, int64) error
}

// OpenFileAuditor opens (or creates) path for appending. A missing parent
// directory is created with mode 0700.
func OpenFileAuditor(path string, policy FsyncPolicy) (*FileAuditor, error) {
	return openFileAuditor(path, policy, time.Second)
}

// openFileAuditor is OpenFileAuditor with the period of the background
// sync, which tests lengthen to count syncs.
func openFileAuditor(path string, policy FsyncPolicy, syncEvery time.Duration) (*FileAuditor, error) {
	if policy == "" {
		policy = FsyncMutations
	}
	switch policy {
	case FsyncAlways, FsyncMutations, FsyncInterval:
	default:
		return nil, fmt.Errorf("audit.fsync: unknown policy %q (always, mutations, interval)", policy)
	}
	a := &FileAuditor{
		path: path, policy: policy, stop: make(chan struct{}), done: make(chan struct{}), now: time.Now,
		syncFile: (*os.File).Sync, truncate: (*os.File).Truncate, queue: newSyncBatch(),
	}
	if err := a.open(); err != nil {
		return nil, fmt.Errorf("audit.path: %w", err)
	}
	go a.syncLoop(syncEvery)
	return a, nil
}

// open opens a.path and makes it the current file. The caller has
// retired the previous one, if any.
func (a *FileAuditor) open() error {
	dir := filepath.Dir(a.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	// Read access is needed to find the last complete line of a regular
	// file; a device or pipe is opened write-only, as it may allow no more.
	flags, created := os.O_RDWR, false
	switch st, err := os.Stat(a.path); {
	case errors.Is(err, fs.ErrNotExist):
		created = true
	case err == nil && !st.Mode().IsRegular():
		flags = os.O_WRONLY
	}
	f, err := os.OpenFile(a.path, flags|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", a.path, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat %s: %w", a.path, err)
	}
	if info.Mode().IsRegular() {
		if err := trimPartial(f, a.truncate); err != nil {
			_ = f.Close()
			return fmt.Errorf("remove the partial record at the end of %s: %w", a.path, err)
		}
	}
	if created {
		// The records synced into a new file must not vanish with its
		// directory entry on power loss. Some filesystems refuse to sync a
		// directory; the file itself is still synced, so that is not fatal.
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	a.f, a.info, a.regular, a.torn = f, info, info.Mode().IsRegular(), false
	a.pending = newSyncBatch()
	return nil
}

// reopen replaces the current file with the one now at a.path. When the
// path cannot be opened the current file is kept and err says why; retired
// reports a failure to flush or close the previous file, which no longer
// affects new records.
//
// Records of the previous file still waiting for their sync get it here,
// before the file is closed: they were written before the rotation, and
// their writers hear whether this sync succeeded.
func (a *FileAuditor) reopen() (retired, err error) {
	old, oldRegular, oldTorn, oldPending := a.f, a.regular, a.torn, a.pending
	if err := a.open(); err != nil {
		return nil, err
	}
	if oldTorn {
		// Best effort: the old file is no longer written, but whoever reads
		// it after rotation should not find a fragment at its end.
		_ = trimPartial(old, a.truncate)
	}
	// A sync of old may be running in the syncer: wait for it, or it would
	// fail on a closed file although its records are on disk.
	a.syncing.Lock()
	var serr error
	if oldPending.records > 0 {
		serr = syncRegular(a.syncFile, old, oldRegular)
	}
	a.syncing.Unlock()
	oldPending.finish(serr)
	return errors.Join(serr, old.Close()), nil
}

// Reopen closes the audit file and opens the configured path again,
// creating it (0600) when it is missing: after logrotate has renamed the
// file, records go to a new one at the path. On error the auditor keeps
// its current file.
func (a *FileAuditor) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("audit: log is closed")
	}
	retired, err := a.reopen()
	if err != nil {
		return fmt.Errorf("audit: reopen: %w", err)
	}
	if retired != nil {
		return fmt.Errorf("audit: reopened %s, but flushing the previous file failed: %w", a.path, retired)
	}
	return nil
}

// Write appends rec as one line. Time is filled in when empty. A record
// the policy syncs is on stable storage when Write returns nil.
func (a *FileAuditor) Write(rec AuditRecord) error {
	_, err := a.write(rec, a.policy == FsyncAlways || a.policy == FsyncMutations && syncedUnderMutations(rec))
	return err
}

// WriteDeferred appends rec like Write but never waits for its sync: for
// the records of a write whose receipt the backend commits with it
// (receipts.go). The batch returned says when, and whether, the sync that
// covers rec succeeded; WaitSynced waits for it, and Sync syncs it too.
func (a *FileAuditor) WriteDeferred(rec AuditRecord) (*syncBatch, error) {
	return a.write(rec, false)
}

// WaitSynced returns once batch (from WriteDeferred) is on stable storage,
// leading its sync when none runs, or with the error of that sync.
func (a *FileAuditor) WaitSynced(batch *syncBatch) error {
	if err := a.waitSynced(batch); err != nil {
		return fmt.Errorf("audit: sync: %w", err)
	}
	return nil
}

func (a *FileAuditor) write(rec AuditRecord, synced bool) (*syncBatch, error) {
	if rec.Time == "" {
		rec.Time = a.now().UTC().Format(time.RFC3339Nano)
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("audit: encode record: %w", err)
	}
	line = append(line, '\n')
	batch, err := a.append(line, synced)
	if err != nil {
		return nil, err
	}
	if !synced {
		return batch, nil // synced by the next sync, whatever starts it
	}
	return batch, a.WaitSynced(batch)
}

// append hands line in and returns the batch the caller waits for when
// the record must be synced. A record to be synced that comes while a sync
// runs joins the queue; any other is written to the current file at once,
// after the queued records.
func (a *FileAuditor) append(line []byte, synced bool) (*syncBatch, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("audit: log is closed")
	}
	if synced && a.syncBusy {
		a.queued = append(a.queued, line...)
		a.queue.records++
		return a.queue, nil
	}
	if err := a.writeLocked(line); err != nil {
		return nil, err
	}
	a.pending.records++
	return a.pending, nil
}

// writeLocked writes the queued records and then line (which may be nil)
// to the current file in one write. The queued records then ride with the
// pending batch: the next sync covers them. When the write fails, they
// fail with it. The caller holds mu.
func (a *FileAuditor) writeLocked(line []byte) error {
	buf := line
	if a.queue.records > 0 {
		buf = append(a.queued, line...)
	}
	err := a.prepare()
	if err != nil {
		err = fmt.Errorf("audit: record not written: %w", err)
	} else if _, werr := a.f.Write(buf); werr != nil {
		err = a.unwind(werr)
	}
	if a.queue.records == 0 {
		return err
	}
	queue := a.queue
	a.queue = newSyncBatch()
	if a.queued = a.queued[:0]; cap(a.queued) > maxKeptQueueBuffer {
		a.queued = nil // a burst's buffer is not kept for good
	}
	if err != nil {
		queue.finish(err)
		return err
	}
	a.pending.ride(queue)
	return nil
}

// prepare makes sure the next record goes to the file the path names now
// and starts on a line of its own.
func (a *FileAuditor) prepare() error {
	if !a.regular {
		return nil
	}
	st, err := os.Stat(a.path)
	switch {
	case err == nil && os.SameFile(st, a.info):
	case err == nil || errors.Is(err, fs.ErrNotExist):
		// Renamed away or removed without a Reopen. A failure to flush the
		// old file only concerns read records, as a failed background sync.
		if _, err := a.reopen(); err != nil {
			return fmt.Errorf("the log file was moved or removed and cannot be opened again: %w", err)
		}
	default:
		return fmt.Errorf("check the log file: %w", err)
	}
	if a.torn {
		if err := trimPartial(a.f, a.truncate); err != nil {
			return fmt.Errorf("the log still ends in a partial record that cannot be removed: %w", err)
		}
		a.torn = false
	}
	return nil
}

// unwind undoes a failed or short write so the file ends on its last
// complete record again.
func (a *FileAuditor) unwind(werr error) error {
	if !a.regular {
		return fmt.Errorf("audit: write: %w", werr)
	}
	if err := trimPartial(a.f, a.truncate); err != nil {
		a.torn = true
		return fmt.Errorf("audit: record not written: %w; removing its partial line failed too (%w), so records are refused until that succeeds", werr, err)
	}
	return fmt.Errorf("audit: record not written (the log still ends on a complete record): %w", werr)
}

// trimPartial truncates f just after its last '\n' (to empty if it has
// none), so that it ends on a complete record.
func trimPartial(f *os.File, truncate func(*os.File, int64) error) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	end := st.Size()
	buf := make([]byte, 4096)
	for pos := end; pos > 0; {
		n := min(pos, int64(len(buf)))
		chunk := buf[:n]
		if _, err := f.ReadAt(chunk, pos-n); err != nil {
			return fmt.Errorf("read the end of the file: %w", err)
		}
		pos -= n
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			if keep := pos + int64(i) + 1; keep < end {
				return truncate(f, keep)
			}
			return nil
		}
	}
	if end > 0 {
		return truncate(f, 0)
	}
	return nil
}

// syncedUnderMutations says whether FsyncMutations syncs rec at once. A
// record of a request refused for its token is not, whatever its route:
// nothing changed, and syncing under the audit lock would let anyone
// without a token slow every other request down. The background sync
// flushes it within a second.
func syncedUnderMutations(rec AuditRecord) bool {
	if rec.Outcome == api.CodeUnauthenticated {
		return false
	}
	return rec.Phase == PhaseIntent || rec.Action != "" && isMutation(rec.Action)
}

func isMutation(action string) bool {
	switch action {
	case ActionCreate, ActionUpdate, ActionDelete, ActionMigrate:
		return true
	}
	return false
}

// syncRegular fsyncs f with sync when it is a regular file. A pipe, a
// terminal or a device (audit.path /dev/stdout in a container) keeps
// nothing to make durable, and fsync answers EINVAL there: every audited
// mutation would fail with 503. (Known when the file was opened: no
// fstat per sync.)
func syncRegular(sync func(*os.File) error, f *os.File, regular bool) error {
	if !regular {
		return nil
	}
	return sync(f)
}
