package file

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func ilist(t *testing.T, b *Backend, req sdk.ListRequest) sdk.ListPage {
	t.Helper()
	page, err := b.List(context.Background(), req)
	require.NoError(t, err)
	return page
}

func names(page sdk.ListPage) []string {
	out := make([]string, len(page.Secrets))
	for i, m := range page.Secrets {
		out[i] = m.Name
	}
	return out
}

// A memoized page is never served once anything was written: every kind
// of change shows in the very next List of the same page.
func TestListMemoNeverServesAStalePage(t *testing.T) {
	ctx := context.Background()
	req := sdk.ListRequest{Project: "p", PageSize: 2}
	tests := []struct {
		name   string
		change func(t *testing.T, b *Backend)
		want   func(page sdk.ListPage) any
		value  any
	}{
		{"create", func(t *testing.T, b *Backend) { iwrite(t, b, "p", "a0", map[string]string{"k": "v"}) },
			func(p sdk.ListPage) any { return names(p) }, []string{"a0", "a1"}},
		{"delete", func(t *testing.T, b *Backend) { require.NoError(t, b.Delete(ctx, sdk.Ref{Project: "p", Name: "a1"})) },
			func(p sdk.ListPage) any { return names(p) }, []string{"a2", "a3"}},
		{"new version with other keys", func(t *testing.T, b *Backend) { iwrite(t, b, "p", "a1", map[string]string{"x": "1", "y": "2"}) },
			func(p sdk.ListPage) any { return []any{p.Secrets[0].Version, p.Secrets[0].Keys} }, []any{int64(2), []string{"x", "y"}}},
		{"labels", func(t *testing.T, b *Backend) {
			_, err := b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a1", Data: map[string]string{"k": "v"}, Labels: map[string]string{"env": "prod"}, Mode: sdk.WriteUpsert})
			require.NoError(t, err)
		}, func(p sdk.ListPage) any { return p.Secrets[0].Labels }, map[string]string{"env": "prod"}},
		{"a write in another project", func(t *testing.T, b *Backend) { iwrite(t, b, "q", "z", map[string]string{"k": "v"}) },
			func(p sdk.ListPage) any { return names(p) }, []string{"a1", "a2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := iopen(t, newIFixture(t).settings())
			for i := 1; i <= 3; i++ {
				iwrite(t, b, "p", fmt.Sprint("a", i), map[string]string{"k": "v"})
			}
			first := ilist(t, b, req)
			require.Equal(t, first, ilist(t, b, req), "the same page twice")
			tt.change(t, b)
			require.Equal(t, tt.value, tt.want(ilist(t, b, req)))
		})
	}
}

// Pages are the caller's: changing one changes no later answer.
func TestListMemoPagesAreTheCallersOwn(t *testing.T) {
	ctx := context.Background()
	b := iopen(t, newIFixture(t).settings())
	_, err := b.Write(ctx, sdk.WriteRequest{Project: "p", Name: "a", Data: map[string]string{"k": "v"}, Labels: map[string]string{"env": "prod"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)
	req := sdk.ListRequest{Project: "p"}
	want := ilist(t, b, req) // a miss: memoizes
	for range 2 {            // a hit, then a hit after the first was changed
		got := ilist(t, b, req)
		require.Equal(t, want, got)
		got.Secrets[0].Name = "changed"
		got.Secrets[0].Keys[0] = "changed"
		got.Secrets[0].Labels["env"] = "changed"
	}
	want.Secrets[0].Keys[0] = "changed by the first caller"
	require.Equal(t, "k", ilist(t, b, req).Secrets[0].Keys[0])
}

// Another database at the same transaction id (the same number of commits)
// is another state: reopening never serves the pages of the first.
func TestListMemoIsPerDatabase(t *testing.T) {
	req := sdk.ListRequest{Project: "p"}
	one, two := newIFixture(t), newIFixture(t)
	b := iopen(t, two.settings())
	iwrite(t, b, "p", "in-two", map[string]string{"k": "v"})
	txTwo := committedTx(t, b)
	require.NoError(t, b.Configure(context.Background(), one.settings()))
	iwrite(t, b, "p", "in-one", map[string]string{"k": "v"})
	require.Equal(t, txTwo, committedTx(t, b), "the test needs both at the same id")
	require.Equal(t, []string{"in-one"}, names(ilist(t, b, req)))
	require.NoError(t, b.Configure(context.Background(), two.settings()))
	require.Equal(t, []string{"in-two"}, names(ilist(t, b, req)))
}

// The memo holds at most maxMemoNames names, and a page of an older state
// never replaces those of a newer one.
func TestListMemoBounds(t *testing.T) {
	b := iopen(t, newIFixture(t).settings())
	iwrite(t, b, "p", "s", map[string]string{"k": "v"})
	older, err := b.db.Begin(false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = older.Rollback() })
	iwrite(t, b, "p", "t", map[string]string{"k": "v"})
	tx, err := b.db.Begin(false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })

	m := &b.records.pages
	full := sdk.ListPage{Secrets: make([]sdk.Meta, sdk.MaxPageSize)}
	for i := range 3 * maxMemoNames / sdk.MaxPageSize {
		req := sdk.ListRequest{Project: "p", PageToken: fmt.Sprint(i)}
		m.put(tx, req, full)
		require.Contains(t, m.pages, req, "the newest page is kept")
		require.LessOrEqual(t, m.names, maxMemoNames)
	}
	total := 0
	for _, p := range m.pages {
		total += len(p.Secrets)
	}
	require.Equal(t, total, m.names)
	require.Equal(t, maxMemoNames, m.names)

	// A read transaction older than the memo's state stores nothing.
	old := sdk.ListRequest{Project: "p", Prefix: "old"}
	m.put(older, old, sdk.ListPage{})
	require.Equal(t, tx.ID(), m.txid)
	require.NotContains(t, m.pages, old)
	_, ok := m.get(older, sdk.ListRequest{Project: "p", PageToken: "29"})
	require.False(t, ok, "a page of a newer state for an older transaction")
}

// The memo tells databases apart by itself, not only because reopening
// forgets it: a page read in one database at transaction id T is not served
// to a read of another at the same id.
func TestListMemoTellsDatabasesApart(t *testing.T) {
	one := iopen(t, newIFixture(t).settings())
	two := iopen(t, newIFixture(t).settings())
	iwrite(t, one, "p", "in-one", map[string]string{"k": "v"})
	iwrite(t, two, "p", "in-two", map[string]string{"k": "v"})
	txOne, err := one.db.Begin(false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = txOne.Rollback() })
	txTwo, err := two.db.Begin(false)
	require.NoError(t, err)
	t.Cleanup(func() { _ = txTwo.Rollback() })
	require.Equal(t, txOne.ID(), txTwo.ID(), "the test needs both at the same id")

	var m listMemo
	req := sdk.ListRequest{Project: "p"}
	m.put(txOne, req, sdk.ListPage{Secrets: []sdk.Meta{{Project: "p", Name: "in-one"}}})
	_, ok := m.get(txOne, req)
	require.True(t, ok)
	_, ok = m.get(txTwo, req)
	require.False(t, ok, "a page of another database")
}
