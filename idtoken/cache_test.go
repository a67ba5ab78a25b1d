package idtoken

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestResultCacheBounded(t *testing.T) {
	now := time.Now()
	key := func(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint(i))) }
	tests := []struct {
		name      string
		expiredOf func(i int) bool // which of the first max entries are expired when the next comes
		kept      []int            // entries that must survive the insert of entry max
	}{
		{"expired entries go first", func(i int) bool { return i%2 == 0 }, []int{1, 3}},
		{"full of live entries: one goes", func(int) bool { return false }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const max = 4
			c := newResultCache(max)
			for i := range max {
				exp := now.Add(time.Minute)
				if tt.expiredOf(i) {
					exp = now.Add(-time.Second)
				}
				c.put(key(i), &cacheEntry{expires: exp}, now)
			}
			require.Equal(t, max, c.len())
			c.put(key(max), &cacheEntry{expires: now.Add(time.Minute)}, now)
			require.LessOrEqual(t, c.len(), max)
			require.NotNil(t, c.get(key(max)), "the new entry is in")
			for _, k := range tt.kept {
				require.NotNil(t, c.get(key(k)))
			}
			// Replacing an entry never evicts another.
			n := c.len()
			c.put(key(max), &cacheEntry{expires: now.Add(time.Minute)}, now)
			require.Equal(t, n, c.len())
		})
	}
}

func TestResultCacheDisabled(t *testing.T) {
	c := newResultCache(-1)
	c.put([32]byte{1}, &cacheEntry{}, time.Now())
	require.Zero(t, c.len())
}
