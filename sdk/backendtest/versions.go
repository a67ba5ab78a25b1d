package backendtest

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func versionTests() []subtest {
	return []subtest{
		{"Versions", testVersions},
		{"Pruning", testPruning},
	}
}

// testVersions: 1 at creation, +1 per write, old versions readable by
// number, Versions oldest first.
func testVersions(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	const n = 5
	gen := func(i int) map[string]string {
		return map[string]string{"gen": strconv.Itoa(i), fmt.Sprintf("only-in-%d", i): "x"}
	}
	s.create(t, ctx, p, "versioned", gen(1), nil)
	for i := 2; i <= n; i++ {
		m := s.replace(t, ctx, p, "versioned", gen(i))
		require.Equal(t, int64(i), m.Version, "write number %d must answer with version %d", i, i)
		require.Equal(t, int64(i), s.describe(t, ctx, p, "versioned").Version, "Describe after write number %d", i)
	}
	latest := s.read(t, ctx, p, "versioned", 0)
	require.Equal(t, int64(n), latest.Version, "Read of the latest version")
	requireData(t, gen(n), latest.Data, "Read of the latest version")
	requireData(t, gen(n), s.read(t, ctx, p, "versioned", n).Data, "Read of the latest version by number")

	if !s.caps.Versions {
		t.Logf("Capabilities.Versions is false: old-version reads not checked")
	} else {
		for v := s.oldestReadable(n); v < n; v++ {
			sec := s.read(t, ctx, p, "versioned", v)
			require.Equal(t, v, sec.Version, "Read of version %d: Version must be the version read", v)
			requireData(t, gen(int(v)), sec.Data, fmt.Sprintf("Read of old version %d", v))
			require.Equal(t, sdk.SortedKeys(gen(int(v))), sec.Keys, "Read of version %d: Keys are that version's", v)
		}
	}

	vs, err := s.b.Versions(ctx, sdk.Ref{Project: p, Name: "versioned"})
	require.NoError(t, err, "Versions")
	require.NotEmpty(t, vs, "Versions of an existing secret")
	want := []int64{}
	for v := s.oldestReadable(n); v <= n; v++ {
		want = append(want, v)
	}
	got := make([]int64, len(vs))
	for i, v := range vs {
		got[i] = v.Version
		requireUTC(t, v.CreatedAt, fmt.Sprintf("Versions[%d].CreatedAt", i))
		if i > 0 {
			require.False(t, v.CreatedAt.Before(vs[i-1].CreatedAt), "Versions must be oldest first: version %d created before %d", v.Version, vs[i-1].Version)
		}
	}
	if s.caps.Versions {
		require.Equal(t, want, got, "Versions must list every stored version, oldest first")
	} else {
		require.Equal(t, int64(n), got[len(got)-1], "Versions must end with the latest version")
	}
}

// testPruning: a backend that keeps the last MaxVersions versions serves
// exactly those, and answers ErrNotFound for older ones.
func testPruning(t *testing.T, s *suite) {
	maxV := s.caps.MaxVersions
	if !s.caps.Versions || maxV == 0 || maxV > 50 {
		t.Skipf("pruning not checked: Versions=%v MaxVersions=%d (needs Versions and 1..50)", s.caps.Versions, maxV)
	}
	ctx, p := ctxFor(t), newProject(t)
	total := maxV + 2
	s.create(t, ctx, p, "pruned", map[string]string{"gen": "1"}, nil)
	for i := 2; i <= total; i++ {
		s.replace(t, ctx, p, "pruned", map[string]string{"gen": strconv.Itoa(i)})
	}
	vs, err := s.b.Versions(ctx, sdk.Ref{Project: p, Name: "pruned"})
	require.NoError(t, err, "Versions")
	require.Len(t, vs, maxV, "Versions after %d writes with MaxVersions %d", total, maxV)
	require.Equal(t, int64(total-maxV+1), vs[0].Version, "the oldest version kept")
	for v := int64(1); v <= int64(total-maxV); v++ {
		_, err := s.b.Read(ctx, sdk.Ref{Project: p, Name: "pruned", Version: v})
		requireIs(t, err, sdk.ErrNotFound, fmt.Sprintf("Read of pruned version %d", v))
	}
	oldest := s.read(t, ctx, p, "pruned", int64(total-maxV+1))
	require.Equal(t, strconv.Itoa(total-maxV+1), oldest.Data["gen"], "the oldest kept version holds its own data")
	require.Equal(t, int64(total), s.describe(t, ctx, p, "pruned").Version, "pruning must not change the latest version number")
}
