package aws

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func TestSecretIDRoundTrip(t *testing.T) {
	tests := []struct {
		prefix, project, name, id string
	}{
		{"secretgate/", "payments", "stripe-key", "secretgate/payments/stripe-key"},
		{"", "p", "a", "p/a"},
		{"teams/x/", "p-x", "db", "teams/x/p-x/db"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.id, secretID(tc.prefix, tc.project, tc.name))
		got, ok := parseSecretID(tc.prefix, tc.project, tc.id)
		require.True(t, ok, tc.id)
		require.Equal(t, tc.name, got)
	}
	// Injective: "p" + "x-db" and "p-x" + "db" stay apart, and another
	// project's names or deeper paths do not parse as this project's.
	require.NotEqual(t, secretID("s/", "p", "x-db"), secretID("s/", "p-x", "db"))
	for _, id := range []string{"s/p-x/db", "s/p/a/b", "s/p/", "s/p/-bad", "other/p/db"} {
		_, ok := parseSecretID("s/", "p", id)
		require.False(t, ok, id)
	}
}

func TestVersionToken(t *testing.T) {
	a := versionToken("p", "db", 1)
	require.Equal(t, a, versionToken("p", "db", 1), "tokens are deterministic")
	u, err := uuid.Parse(a)
	require.NoError(t, err)
	require.Equal(t, uuid.Version(5), u.Version())
	require.GreaterOrEqual(t, len(a), 32, "ClientRequestToken is 32-64 characters")
	require.LessOrEqual(t, len(a), 64)
	seen := map[string]string{}
	for _, c := range []struct {
		p, n string
		v    int64
	}{{"p", "db", 1}, {"p", "db", 2}, {"p", "db", 12}, {"p", "db1", 2}, {"p1", "db", 2}, {"p", "x-db", 1}, {"p-x", "db", 1}} {
		tok := versionToken(c.p, c.n, c.v)
		key := c.p + "/" + c.n + "@" + strconv.FormatInt(c.v, 10)
		require.NotContains(t, seen, tok, "token of %s collides with %s", key, seen[tok])
		seen[tok] = key
	}
}

func TestVersionNumber(t *testing.T) {
	id := versionToken("p", "db", 42)
	tests := []struct {
		name string
		hint int64
	}{
		{"exact hint", 42}, {"stale hint", 40}, {"hint too high", 50}, {"no hint", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := versionNumber("p", "db", id, tc.hint)
			require.True(t, ok)
			require.Equal(t, int64(42), n)
		})
	}
	_, ok := versionNumber("p", "db", uuid.NewString(), 1) // a v4 id, as the console makes
	require.False(t, ok, "a foreign version id has no number")
	_, ok = versionNumber("p", "db", "not-a-uuid-at-all-but-32-chars-long", 1)
	require.False(t, ok)
	_, ok = versionNumber("p", "other", id, 42)
	require.False(t, ok, "a token of another secret does not map")
}

func TestCurrentVersionID(t *testing.T) {
	require.Equal(t, "b", currentVersionID(map[string][]string{"a": {"AWSPREVIOUS"}, "b": {"AWSCURRENT"}, "c": nil}))
	require.Empty(t, currentVersionID(map[string][]string{"a": {"AWSPREVIOUS"}}))
}

func TestCache(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	c := metaCache{V: 7, K: []string{"a", "b"}, U: now, C: "0123456789abcdef"}
	got, ok := decodeCache(encodeCache(c))
	require.True(t, ok)
	require.Equal(t, c, got)
	require.Equal(t, now, got.updated(time.Time{}))
	created := now.Add(-time.Hour)
	require.Equal(t, created, metaCache{V: 1}.updated(created), "version 1 was created with the secret")
	require.True(t, metaCache{V: 2}.updated(created).IsZero(), "later versions: unknown without a recorded time")

	// 100 keys of 128 characters do not fit in a 2048-character Description:
	// the keys are dropped and readers fall back to reading the value.
	var keys []string
	for i := range 100 {
		keys = append(keys, strings.Repeat("k", 125)+strconv.Itoa(100+i))
	}
	desc := encodeCache(metaCache{V: 3, K: keys, U: now})
	require.LessOrEqual(t, len(desc), maxDescription)
	got, ok = decodeCache(desc)
	require.True(t, ok)
	require.Equal(t, int64(3), got.V)
	require.Empty(t, got.K)

	for _, d := range []string{"", "a description someone typed", "secretgate:{", `secretgate:{"v":0}`} {
		_, ok := decodeCache(d)
		require.False(t, ok, d)
	}
}

func TestParseTags(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"team=payments", map[string]string{"team": "payments"}, ""},
		{" team = payments , cost-center=42,empty=", map[string]string{"team": "payments", "cost-center": "42", "empty": ""}, ""},
		{"expr=a=b", map[string]string{"expr": "a=b"}, ""},
		{"novalue", nil, "entry 1 must be key=value"},
		{"a=1,,b=2", nil, "entry 2 must be key=value"},
		{"aws:x=1", nil, "reserved prefix"},
		{"secretgate:project=1", nil, "reserved prefix"},
		{"a=1,a=2", nil, "given twice"},
		{strings.Repeat("k", 129) + "=v", nil, "at most 128"},
	}
	for _, tc := range tests {
		got, err := parseTags(tc.in)
		if tc.wantErr != "" {
			require.ErrorIs(t, err, sdk.ErrInvalid, tc.in)
			require.ErrorContains(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	var many []string
	for i := range 49 {
		many = append(many, "t"+strconv.Itoa(i)+"=v")
	}
	_, err := parseTags(strings.Join(many, ","))
	require.ErrorIs(t, err, sdk.ErrInvalid)
}

func TestTags(t *testing.T) {
	tags := createTags("p", "db", map[string]string{"team": "x"}, map[string]string{"env": "prod", "tier": "1"})
	require.Equal(t, []string{"secretgate:label:env", "secretgate:label:tier", "secretgate:name", "secretgate:project", "team"}, tagKeys(tags), "sorted by key")
	require.True(t, ownsSecret(tags, "p", "db"))
	require.False(t, ownsSecret(tags, "p", "other"))
	require.False(t, ownsSecret(tags, "q", "db"))
	require.Equal(t, map[string]string{"env": "prod", "tier": "1"}, labelsFromTags(tags))

	set, remove := labelDiff(labelsFromTags(tags), map[string]string{"env": "staging", "new": "v"})
	require.Equal(t, []string{"secretgate:label:env", "secretgate:label:new"}, tagKeys(set))
	require.Equal(t, []string{"secretgate:label:tier"}, remove)
	set, remove = labelDiff(labelsFromTags(tags), map[string]string{"env": "prod", "tier": "1"})
	require.Empty(t, set)
	require.Empty(t, remove)

	require.NoError(t, checkTagBudget(3, make47()))
	err := checkTagBudget(4, make47())
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.ErrorContains(t, err, "labels")
}

func make47() map[string]string {
	m := map[string]string{}
	for i := range 47 {
		m["l"+strconv.Itoa(i)] = "v"
	}
	return m
}

func tagKeys(tags []types.Tag) []string {
	var ks []string
	for _, t := range tags {
		ks = append(ks, *t.Key)
	}
	return ks
}

func TestValidatePrefix(t *testing.T) {
	for _, ok := range []string{"", "secretgate/", "a/b_c+d=e.f@g-h/"} {
		require.NoError(t, validatePrefix(ok), ok)
	}
	for _, bad := range []string{"with space/", "ü/", "a*b", strings.Repeat("a", 321)} {
		require.ErrorIs(t, validatePrefix(bad), sdk.ErrInvalid, bad)
	}
}
