package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
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
	Subject   string `json:"subject"`
	Project   string `json:"project,omitempty"`
	Action    string `json:"action"`
	Secret    string `json:"secret,omitempty"`
	Phase     string `json:"phase"`
	// Outcome is "ok", or the API error code (not_found, permission_denied,
	// version_mismatch, backend_unavailable, ...). Empty on intent records.
	Outcome string `json:"outcome,omitempty"`
	Backend string `json:"backend,omitempty"`
	Version int64  `json:"version,omitempty"`
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
	// is touched and before the client hears of success. Read records reach
	// the kernel before the response but are synced by the next mutation, by
	// a background sync every second, or at Close. This is the default.
	FsyncMutations FsyncPolicy = "mutations"
	// FsyncInterval syncs once a second and at Close only.
	FsyncInterval FsyncPolicy = "interval"
)

// FileAuditor appends JSON lines to a file opened O_APPEND with mode 0600.
// Writes are serialized, each record is one write(2) call.
type FileAuditor struct {
	mu     sync.Mutex
	f      *os.File
	policy FsyncPolicy
	dirty  bool
	closed bool
	stop   chan struct{}
	done   chan struct{}
	now    func() time.Time
}

// OpenFileAuditor opens (or creates) path for appending. A missing parent
// directory is created with mode 0700.
func OpenFileAuditor(path string, policy FsyncPolicy) (*FileAuditor, error) {
	if policy == "" {
		policy = FsyncMutations
	}
	switch policy {
	case FsyncAlways, FsyncMutations, FsyncInterval:
	default:
		return nil, fmt.Errorf("audit.fsync: unknown policy %q (always, mutations, interval)", policy)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit.path: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit.path: open %s: %w", path, err)
	}
	a := &FileAuditor{f: f, policy: policy, stop: make(chan struct{}), done: make(chan struct{}), now: time.Now}
	go a.syncLoop()
	return a, nil
}

// Write appends rec as one line. Time is filled in when empty.
func (a *FileAuditor) Write(rec AuditRecord) error {
	if rec.Time == "" {
		rec.Time = a.now().UTC().Format(time.RFC3339Nano)
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("audit: encode record: %w", err)
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("audit: log is closed")
	}
	if _, err := a.f.Write(line); err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	mutation := rec.Phase == PhaseIntent || rec.Action != "" && isMutation(rec.Action)
	if a.policy == FsyncAlways || a.policy == FsyncMutations && mutation {
		if err := a.f.Sync(); err != nil {
			return fmt.Errorf("audit: sync: %w", err)
		}
		a.dirty = false
		return nil
	}
	a.dirty = true
	return nil
}

func (a *FileAuditor) syncLoop() {
	defer close(a.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			if a.dirty && !a.closed {
				// A failed background sync surfaces on the next synced write.
				_ = a.f.Sync()
				a.dirty = false
			}
			a.mu.Unlock()
		}
	}
}

// Close syncs and closes the file.
func (a *FileAuditor) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	dirty := a.dirty
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	var serr error
	if dirty {
		serr = a.f.Sync()
	}
	cerr := a.f.Close()
	return errors.Join(serr, cerr)
}

func isMutation(action string) bool {
	switch action {
	case ActionCreate, ActionUpdate, ActionDelete, ActionMigrate:
		return true
	}
	return false
}
