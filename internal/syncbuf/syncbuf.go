// Package syncbuf is a byte buffer that goroutines may share: the sink of a
// child process's or a logger's output that a test reads while it is still
// being written.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is safe for concurrent Write and String. With Limit > 0, writes
// past Limit bytes are dropped (and reported written): a long-running
// server's output stays bounded, its start, which diagnoses failures, kept.
type Buffer struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 && b.buf.Len() >= b.Limit {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String returns everything kept so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
