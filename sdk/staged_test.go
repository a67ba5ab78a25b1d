package sdk_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// writeOrder records, for a backend without WriteStaged, whether Write ran
// and whether ready had returned by then.
type writeOrder struct {
	sdk.Backend // nil: only Write is called
	readied     *bool
	wrote       bool
	readyFirst  bool
}

func (w *writeOrder) Write(context.Context, sdk.WriteRequest) (sdk.Meta, error) {
	w.wrote, w.readyFirst = true, *w.readied
	return sdk.Meta{Version: 1}, nil
}

// sdk.WriteStaged on a backend without WriteStaged: ready first, and the
// Write only when ready said yes.
func TestWriteStagedFallback(t *testing.T) {
	refused := errors.New("no intent record")
	for _, readyErr := range []error{nil, refused} {
		readied := false
		b := &writeOrder{readied: &readied}
		m, err := sdk.WriteStaged(context.Background(), b, sdk.WriteRequest{}, func() error { readied = true; return readyErr })
		require.ErrorIs(t, err, readyErr)
		require.True(t, readied)
		require.Equal(t, readyErr == nil, b.wrote, "Write runs only after a ready that returned nil")
		if readyErr == nil {
			require.True(t, b.readyFirst)
			require.Equal(t, int64(1), m.Version)
		}
	}
}
