package file_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// TestStagedWriteThroughPlugin: a staged write (sdk.StagedWriter) sent to the
// real plugin process lands only once the host's ready returned nil. While
// ready blocks, readers still see the previous version; a withdrawn write or
// a host that gives up never lands, and the write after it is numbered as if
// it had never been tried.
func TestStagedWriteThroughPlugin(t *testing.T) {
	b := plugintest.Start(t, newFixture(t).settings())
	staged, ok := b.(sdk.StagedWriter)
	require.True(t, ok, "the plugin client takes staged writes")
	withdrawn := errors.New("the intent record could not be written")

	tests := []struct {
		name    string
		timeout time.Duration // of the write's context; 0: none
		ready   error         // what ready returns once released
		lands   bool
	}{
		{"go-ahead", 0, nil, true},
		{"withdrawn", 0, withdrawn, false},
		{"host gives up while the plugin waits", 300 * time.Millisecond, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "s-" + randomHex(t, 4)
			write(t, b, "p", name, map[string]string{"v": "one"})

			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				t.Cleanup(cancel)
			}
			asked, release := make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := staged.WriteStaged(ctx, sdk.WriteRequest{Project: "p", Name: name, Data: map[string]string{"v": "two"}, Mode: sdk.WriteReplace},
					func() error {
						close(asked)
						<-release
						if tc.timeout > 0 {
							<-ctx.Done() // the host gave up while it synced
						}
						return tc.ready
					})
				done <- err
			}()
			<-asked
			// The plugin has the write and waits: nothing of it shows.
			time.Sleep(50 * time.Millisecond)
			require.Equal(t, "one", read(t, b, "p", name, 0)["v"], "visible before the go-ahead")
			close(release)
			err := <-done

			if tc.lands {
				require.NoError(t, err)
				require.Equal(t, "two", read(t, b, "p", name, 0)["v"])
				return
			}
			if tc.ready != nil {
				require.ErrorIs(t, err, tc.ready, "the caller learns its own ready's error")
			} else {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			// However long the plugin takes to notice, the write never lands.
			time.Sleep(100 * time.Millisecond)
			m, err := b.Describe(context.Background(), sdk.Ref{Project: "p", Name: name})
			require.NoError(t, err)
			require.Equal(t, int64(1), m.Version)
			require.Equal(t, int64(2), write(t, b, "p", name, map[string]string{"v": "three"}).Version)
		})
	}
}
