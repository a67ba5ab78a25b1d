package file

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/secretgate/secretgate/sdk"
)

// After a write, the record cache holds the record as committed, so that a
// read-back does not decode it again, and what it holds is exactly what
// decoding the stored bytes gives (labels set, cleared and left alone,
// versions pruned, a secret deleted and created again).
func TestRememberedRecordIsTheDecodedOne(t *testing.T) {
	b := iopen(t, newIFixture(t).settings(SettingMaxVersions, "2"))
	ctx := context.Background()
	steps := []struct {
		name string
		req  sdk.WriteRequest
		del  bool
	}{
		{name: "create without labels", req: sdk.WriteRequest{Data: map[string]string{"b": "2", "a": "1"}, Mode: sdk.WriteCreate}},
		{name: "labels set", req: sdk.WriteRequest{Data: map[string]string{"a": "1"}, Labels: map[string]string{"env": "prod", "team": "x"}, Mode: sdk.WriteReplace}},
		{name: "labels left alone", req: sdk.WriteRequest{Data: map[string]string{"a": "2"}, Mode: sdk.WriteUpsert}},
		{name: "labels cleared, versions pruned", req: sdk.WriteRequest{Data: map[string]string{"c": ""}, Labels: map[string]string{}, Mode: sdk.WriteUpsert, ExpectedVersion: 3}},
		{name: "deleted", del: true},
		{name: "created again", req: sdk.WriteRequest{Data: map[string]string{"a": "\u2028<&>"}, Labels: map[string]string{"k": "v"}, Mode: sdk.WriteCreate}},
	}
	for _, st := range steps {
		ref := sdk.Ref{Project: "p", Name: "s"}
		if st.del {
			require.NoError(t, b.Delete(ctx, ref), st.name)
			continue
		}
		st.req.Project, st.req.Name = ref.Project, ref.Name
		_, err := b.Write(ctx, st.req)
		require.NoError(t, err, st.name)

		var raw []byte
		require.NoError(t, b.db.View(func(tx *bolt.Tx) error {
			_, sb := secretBuckets(tx, ref.Project, ref.Name)
			raw = append([]byte(nil), sb.Get(keyRecord)...)
			return nil
		}))
		b.records.mu.Lock()
		e, ok := b.records.m[recordKey{ref.Project, ref.Name}]
		b.records.mu.Unlock()
		require.True(t, ok, "%s: the record is cached", st.name)
		require.Equal(t, raw, e.raw, "%s: the cache holds the committed bytes", st.name)
		want, err := decodeRecord(ref.Project, ref.Name, raw)
		require.NoError(t, err)
		require.Equal(t, want, e.rec, "%s: the cached record is the decoded one", st.name)
	}
}
