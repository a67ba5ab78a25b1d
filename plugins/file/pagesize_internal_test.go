package file

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/secretgate/secretgate/sdk"
)

// A database the backend creates has newDatabasePageSize pages; one made
// with other pages (every database before them had the system's 4 KiB)
// keeps them, and is read and written as before.
func TestDatabasePageSize(t *testing.T) {
	tests := []struct {
		name     string
		existing int // page size of a database made before the backend opens it; 0: none
		want     int
	}{
		{"new database", 0, newDatabasePageSize},
		{"database with 4 KiB pages", 4096, 4096},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIFixture(t)
			if tc.existing > 0 {
				db, err := bolt.Open(f.db, 0o600, &bolt.Options{PageSize: tc.existing})
				require.NoError(t, err)
				require.NoError(t, db.Close())
			}
			b := iopen(t, f.settings())
			require.Equal(t, tc.want, b.db.Info().PageSize)
			for i := range 20 {
				iwrite(t, b, "p", "s", map[string]string{"k": string(rune('a' + i))})
			}
			require.NoError(t, b.Close())

			again := iopen(t, f.settings())
			require.Equal(t, tc.want, again.db.Info().PageSize)
			s, err := again.Read(context.Background(), sdk.Ref{Project: "p", Name: "s"})
			require.NoError(t, err)
			require.Equal(t, "t", s.Data["k"])
		})
	}
}
