package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// TestStagedWriteToBackendWithoutIt: a staged write reaches a plugin whose
// backend has no WriteStaged (the test backend) on either transport. The
// SDK holds the Write until the host's go-ahead, so while ready blocks the
// secret does not exist; a withdrawn write never happens, and the
// connection carries the next call as usual.
func TestStagedWriteToBackendWithoutIt(t *testing.T) {
	for _, grpcOnly := range []bool{false, true} {
		b := startOn(t, grpcOnly, nil).Backend()
		staged, ok := b.(sdk.StagedWriter)
		require.True(t, ok)
		for _, withdraw := range []bool{false, true} {
			name := fmt.Sprintf("staged-%v-%v", grpcOnly, withdraw)
			var readyErr error
			if withdraw {
				readyErr = errors.New("no intent record")
			}
			asked, release := make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := staged.WriteStaged(bg(t), sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"k": "v"}, Mode: sdk.WriteUpsert},
					func() error { close(asked); <-release; return readyErr })
				done <- err
			}()
			<-asked
			time.Sleep(20 * time.Millisecond)
			_, err := b.Describe(bg(t), sdk.Ref{Project: "p", Name: name})
			require.ErrorIs(t, err, sdk.ErrNotFound, "written before the go-ahead (gRPC only: %v)", grpcOnly)
			close(release)
			require.ErrorIs(t, <-done, readyErr)
			_, err = b.Describe(context.Background(), sdk.Ref{Project: "p", Name: name})
			if withdraw {
				require.ErrorIs(t, err, sdk.ErrNotFound, "a withdrawn write happened")
			} else {
				require.NoError(t, err)
			}
		}
	}
}
