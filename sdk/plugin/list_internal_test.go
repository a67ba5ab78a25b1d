package plugin

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/secretgate/secretgate/sdk"
)

// toPBListResponse builds its messages by hand, in one allocation: each must
// be what toPBMeta makes of the name, for every field of sdk.Meta.
func TestToPBListResponseMatchesToPBMeta(t *testing.T) {
	full := sdk.Meta{
		Project: "p", Name: "n", Keys: []string{"a", "b"}, Version: 7,
		Labels:    map[string]string{"env": "prod"},
		CreatedAt: time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.FixedZone("z", -3600)),
		UpdatedAt: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	// A field added to sdk.Meta must be added to full (and so be compared).
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "sdk.Meta.%s is not set in this test", v.Type().Field(i).Name)
	}
	tests := []struct {
		name string
		page sdk.ListPage
	}{
		{"empty", sdk.ListPage{}},
		{"every field set, and a token", sdk.ListPage{Secrets: []sdk.Meta{full}, NextPageToken: "tok"}},
		{"nil and empty labels, zero times", sdk.ListPage{Secrets: []sdk.Meta{
			{Project: "p", Name: "a"},
			{Project: "p", Name: "b", Labels: map[string]string{}, Keys: []string{}},
			{Project: "p", Name: "c", CreatedAt: full.CreatedAt},
			{Project: "p", Name: "d", UpdatedAt: full.UpdatedAt},
			full,
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := toPBListResponse(tt.page)
			require.Equal(t, tt.page.NextPageToken, got.GetNextPageToken())
			require.Len(t, got.GetSecrets(), len(tt.page.Secrets))
			for i, m := range tt.page.Secrets {
				want := toPBMeta(m)
				require.True(t, proto.Equal(want, got.GetSecrets()[i]), "name %d: want %v, got %v", i, want, got.GetSecrets()[i])
			}
		})
	}
}
