package backendtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func metadataTests() []subtest {
	return []subtest{
		{"Labels", testLabels},
		{"Timestamps", testTimestamps},
	}
}

// testLabels: labels round-trip; nil Labels on a write keeps them, an empty
// map clears them, a non-empty map replaces them whole.
func testLabels(t *testing.T, s *suite) {
	if !s.caps.Labels {
		t.Skip("Capabilities.Labels is false: labels not checked")
	}
	ctx, p := ctxFor(t), newProject(t)
	labels := map[string]string{"env": "prod", "team": "payments", "cost_center": "c-42", "note": "Ünïcödé ok"}
	m := s.create(t, ctx, p, "labelled", map[string]string{"k": "v"}, labels)
	require.Equal(t, labels, m.Labels, "Write(create) must answer with the labels")
	require.Equal(t, labels, s.describe(t, ctx, p, "labelled").Labels, "Describe after create with labels")
	require.Equal(t, labels, s.read(t, ctx, p, "labelled", 0).Labels, "Read after create with labels")
	page, err := s.b.List(ctx, sdk.ListRequest{Project: p})
	require.NoError(t, err, "List")
	require.Len(t, page.Secrets, 1, "List")
	require.Equal(t, labels, page.Secrets[0].Labels, "List entries carry labels")

	s.replace(t, ctx, p, "labelled", map[string]string{"k": "v2"}) // Labels nil
	require.Equal(t, labels, s.describe(t, ctx, p, "labelled").Labels, "a write with nil Labels must keep the labels")

	other := map[string]string{"env": "dev"}
	m, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "labelled", Data: map[string]string{"k": "v3"}, Labels: other, Mode: sdk.WriteReplace})
	require.NoError(t, err, "replace with new labels")
	require.Equal(t, other, m.Labels, "a write with labels must answer with exactly those labels")
	require.Equal(t, other, s.describe(t, ctx, p, "labelled").Labels, "a write with labels replaces them whole")

	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "labelled", Data: map[string]string{"k": "v4"}, Labels: map[string]string{}, Mode: sdk.WriteReplace})
	require.NoError(t, err, "replace with an empty label map")
	require.Empty(t, s.describe(t, ctx, p, "labelled").Labels, "a write with an empty label map must clear the labels")

	s.create(t, ctx, p, "unlabelled", map[string]string{"k": "v"}, nil)
	require.Empty(t, s.describe(t, ctx, p, "unlabelled").Labels, "a secret created with nil Labels has none")

	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "unlabelled", Data: map[string]string{"k": "v"}, Labels: map[string]string{"Bad-Key": "x"}, Mode: sdk.WriteReplace})
	requireIs(t, err, sdk.ErrInvalid, "a label key with upper case letters")
}

// testTimestamps: CreatedAt is the creation of version 1 and never moves;
// UpdatedAt is the creation of the latest version; both UTC. The pause
// between writes lets backends with one-second timestamps show the move.
func testTimestamps(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	created := s.create(t, ctx, p, "timed", map[string]string{"b": "1", "a": "2", "C": "3"}, nil)
	d1 := s.describe(t, ctx, p, "timed")
	require.Equal(t, []string{"C", "a", "b"}, d1.Keys, "Keys must be sorted (byte order)")
	require.Equal(t, created.Keys, d1.Keys, "Write and Describe must agree on keys")
	requireUTC(t, d1.CreatedAt, "CreatedAt")
	requireUTC(t, d1.UpdatedAt, "UpdatedAt")
	require.False(t, d1.UpdatedAt.Before(d1.CreatedAt), "UpdatedAt must not be before CreatedAt")

	time.Sleep(1100 * time.Millisecond)
	m2 := s.replace(t, ctx, p, "timed", map[string]string{"z": "1"})
	d2 := s.describe(t, ctx, p, "timed")
	require.Equal(t, int64(2), d2.Version, "Describe after a replace")
	require.Equal(t, []string{"z"}, d2.Keys, "Describe keys after a replace")
	require.True(t, d1.CreatedAt.Equal(d2.CreatedAt), "CreatedAt must not change on a write: %v then %v", d1.CreatedAt, d2.CreatedAt)
	require.True(t, d2.UpdatedAt.After(d1.UpdatedAt), "UpdatedAt must move on a write: %v then %v", d1.UpdatedAt, d2.UpdatedAt)
	requireUTC(t, d2.UpdatedAt, "UpdatedAt after a write")
	requireUTC(t, m2.UpdatedAt, "UpdatedAt in Write's answer")

	if s.caps.Versions {
		old := s.read(t, ctx, p, "timed", 1)
		require.True(t, d1.CreatedAt.Equal(old.CreatedAt), "Read of version 1: CreatedAt is the secret's creation")
		requireUTC(t, old.UpdatedAt, "UpdatedAt of an old version")
	}
}
