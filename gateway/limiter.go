package gateway

import (
	"sync"
	"time"
)

// A client without a token must not be able to grow what the gateway
// writes as fast as it can send requests: burstLimiter lets records through
// at a steady rate with a burst, refuses the rest, and counts what it
// refused. It bounds the audit records of failed authentication (their
// count is secretgate_audit_records_dropped_total; docs/configuration.md, "Audit log":
// during a flood the log keeps a sample of the failures plus the count,
// records of authenticated requests are never dropped) and net/http's own
// error log (a TLS handshake error per bad connection).
type burstLimiter struct {
	mu      sync.Mutex
	rate    float64 // records per second
	burst   float64
	tokens  float64
	last    time.Time
	dropped uint64
	// reported is the part of dropped that takeDropped handed out.
	reported uint64
	now      func() time.Time
}

// Defaults: enough for every failure of a misconfigured fleet to be seen,
// far below what a flood would cost.
const (
	authFailRate  = 20
	authFailBurst = 100
	httpLogRate   = 10
	httpLogBurst  = 50
)

func newBurstLimiter(rate, burst float64) *burstLimiter {
	return &burstLimiter{rate: rate, burst: burst, tokens: burst, now: time.Now}
}

// allow reports whether one more record may be written now.
func (l *burstLimiter) allow() bool {
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

// takeDropped returns how many records allow refused since the last call.
func (l *burstLimiter) takeDropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.dropped - l.reported
	l.reported = l.dropped
	return n
}

// droppedCount is how many records allow refused so far.
func (l *burstLimiter) droppedCount() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
