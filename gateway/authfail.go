package gateway

import (
	"sync"
	"time"
)

// Every failed authentication is worth a record, but an unauthenticated
// client must not be able to grow the audit log (and hold its lock) as fast
// as it can send requests. authFailLimiter lets records of failed
// authentication through at a steady rate with a burst, drops the rest,
// and counts what it dropped (secretgate_audit_records_dropped_total).
// The trade-off (README.md, "Audit log"): during a flood the log keeps a
// sample of the failures plus the count, not every one; records of
// authenticated requests are never dropped.
type authFailLimiter struct {
	mu      sync.Mutex
	rate    float64 // records per second
	burst   float64
	tokens  float64
	last    time.Time
	dropped uint64
	now     func() time.Time
}

// Defaults: enough for every failure of a misconfigured fleet to be seen,
// far below what a flood would cost.
const (
	authFailRate  = 20
	authFailBurst = 100
)

func newAuthFailLimiter(rate, burst float64) *authFailLimiter {
	return &authFailLimiter{rate: rate, burst: burst, tokens: burst, now: time.Now}
}

// allow reports whether one more record may be written now.
func (l *authFailLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	l.dropped++
	return false
}

// droppedCount is how many records allow refused so far.
func (l *authFailLimiter) droppedCount() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
