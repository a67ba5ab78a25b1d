package sdk

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Sleep waits d, or until ctx ends (then it returns ctx.Err()): the wait of
// a retry loop that must never outlive its caller's deadline.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Jitter returns a random duration in [0, d] (0 when d <= 0), from
// crypto/rand like every random number of this project, so that callers
// retrying after the same failure do not retry in step.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % (uint64(d) + 1))
}
