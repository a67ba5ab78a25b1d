package file

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func encodeTestRecord(t *testing.T, version int64, labels map[string]string) []byte {
	t.Helper()
	now := time.Now().UTC()
	b, err := json.Marshal(secretRecord{Incarnation: []byte{1, 2}, Version: version, Keys: []string{"a"}, Labels: labels,
		CreatedAt: now, UpdatedAt: now, Versions: []versionRecord{{Version: version, CreatedAt: now}}})
	require.NoError(t, err)
	return b
}

func TestRecordCache(t *testing.T) {
	var c recordCache
	v1 := encodeTestRecord(t, 1, map[string]string{"env": "prod"})
	a, err := c.decode("p", "s", v1)
	require.NoError(t, err)
	b, err := c.decode("p", "s", v1)
	require.NoError(t, err)
	require.Equal(t, a, b, "a hit decodes the same record")

	// The caller owns what it gets: changing it changes no cached entry.
	b.Labels["env"] = "changed"
	b.Keys[0] = "changed"
	b.Versions[0].Version = 99
	b.Incarnation[0] = 9
	c2, err := c.decode("p", "s", v1)
	require.NoError(t, err)
	require.Equal(t, a, c2)

	// Other bytes under the same name are decoded again, never served stale.
	v2 := encodeTestRecord(t, 2, nil)
	d, err := c.decode("p", "s", v2)
	require.NoError(t, err)
	require.Equal(t, int64(2), d.Version)
	require.Nil(t, d.Labels)

	// A broken record is an error, and is not cached.
	_, err = c.decode("p", "bad", []byte("{"))
	require.Error(t, err)
	require.NotContains(t, c.m, recordKey{"p", "bad"})

	// The cache stays bounded.
	for i := range maxCachedRecords + 10 {
		_, err := c.decode("p", fmt.Sprint("n", i), v1)
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(c.m), maxCachedRecords)
	c.forget()
	require.Empty(t, c.m)
}

// meta reads the cached record without copying it, so what it returns must
// still be the caller's alone: changing it changes no cached entry.
func TestRecordCacheMetaIsTheCallersOwn(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"with labels", map[string]string{"env": "prod"}},
		{"without labels", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c recordCache
			raw := encodeTestRecord(t, 3, tt.labels)
			want, err := c.decode("p", "s", raw) // a miss: fills the cache
			require.NoError(t, err)
			for range 2 { // a hit, then a hit after the first was changed
				m, err := c.meta("p", "s", raw)
				require.NoError(t, err)
				require.Equal(t, want.meta("p", "s"), m)
				m.Keys[0] = "changed"
				if m.Labels != nil {
					m.Labels["env"] = "changed"
				}
			}
			again, err := c.decode("p", "s", raw)
			require.NoError(t, err)
			require.Equal(t, want, again)

			_, err = c.meta("p", "bad", []byte("{"))
			require.Error(t, err)
		})
	}
}
