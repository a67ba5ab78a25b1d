package backendtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// heldName is a backend whose service frees deleted names late: its first
// creates fail with ErrUnavailable, as AWS Secrets Manager's do.
type heldName struct {
	sdk.Backend // only Write is called
	refusals    atomic.Int32
}

func (h *heldName) Write(_ context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if h.refusals.Add(-1) >= 0 {
		return sdk.Meta{}, fmt.Errorf("name still held: %w", sdk.ErrUnavailable)
	}
	return sdk.Meta{Project: req.Project, Name: req.Name, Version: 1}, nil
}

// TestCreateAfterDeleteWaitsDeclaredDelay: a backend that declares a
// DeletePropagation may refuse a create of a deleted name with
// ErrUnavailable for that long.
func TestCreateAfterDeleteWaitsDeclaredDelay(t *testing.T) {
	b := &heldName{}
	b.refusals.Store(3)
	s := &suite{b: b, caps: sdk.Capabilities{DeletePropagation: 5 * time.Second}}
	s.createAfterDelete(t, t.Context(), "p", "n", map[string]string{"k": "v"}, time.Now())
	require.Less(t, b.refusals.Load(), int32(0), "the create was retried until it succeeded")
}
