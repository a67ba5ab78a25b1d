//go:build unix

package gateway

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadCacheRefusesCoreDumps: building a server whose configuration has
// a cache sets RLIMIT_CORE to 0, soft and hard.
func TestReadCacheRefusesCoreDumps(t *testing.T) {
	newCacheHarness(t, CacheConfig{})
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_CORE, &lim))
	require.Zero(t, lim.Cur)
	require.Zero(t, lim.Max)
}
