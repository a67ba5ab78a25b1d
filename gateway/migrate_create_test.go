package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// With versions "latest", a secret the target does not hold is created
// there without reading the target first: one target read per secret (the
// read-back), not two. A name the target holds is still compared and
// handled by on_conflict, and the create never changes what it holds.
func TestMigrationLatestCreatesFirst(t *testing.T) {
	const n = 6
	srcData := func(i int) map[string]string { return map[string]string{"v": fmt.Sprint("src-", i)} }
	tests := []struct {
		name       string
		onConflict string
		dryRun     bool
		target     func(i int) map[string]string // what the target holds before; nil: nothing
		// want: the report's copied, skipped, failed, verified, and how
		// many target reads and writes the run made.
		copied, skipped, failed, verified int
		reads, writes                     uint64
		// The target's latest version of every secret after the run.
		version int64
		data    func(i int) map[string]string
	}{
		{
			name: "empty target", onConflict: "fail",
			copied: n, verified: n, reads: n, writes: n,
			version: 1, data: srcData,
		},
		{
			name: "identical in the target", onConflict: "fail", target: srcData,
			skipped: n, reads: n, writes: n,
			version: 1, data: srcData,
		},
		{
			name: "different, fail", onConflict: "fail", target: func(i int) map[string]string { return map[string]string{"v": "dst"} },
			failed: n, reads: n, writes: n,
			version: 1, data: func(int) map[string]string { return map[string]string{"v": "dst"} },
		},
		{
			name: "different, skip", onConflict: "skip", target: func(i int) map[string]string { return map[string]string{"v": "dst"} },
			skipped: n, reads: n, writes: n,
			version: 1, data: func(int) map[string]string { return map[string]string{"v": "dst"} },
		},
		{
			name: "different, overwrite", onConflict: "overwrite", target: func(i int) map[string]string { return map[string]string{"v": "dst"} },
			copied: n, verified: n, reads: 2 * n, writes: 2 * n,
			version: 2, data: srcData,
		},
		{
			name: "dry run", onConflict: "fail", dryRun: true,
			copied: n, reads: n,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newMigrateEnv(t)
			ctx := context.Background()
			for i := range n {
				name := fmt.Sprintf("k%02d", i)
				_, err := e.src.memBackend.Write(ctx, sdk.WriteRequest{Project: "payments", Name: name, Data: srcData(i), Mode: sdk.WriteCreate})
				require.NoError(t, err)
				if tc.target != nil {
					_, err := e.dst.memBackend.Write(ctx, sdk.WriteRequest{Project: "payments", Name: name, Data: tc.target(i), Mode: sdk.WriteCreate})
					require.NoError(t, err)
				}
			}
			r := e.h.do(t, "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "b", "projects": []string{"payments"},
				"versions": "latest", "on_conflict": tc.onConflict, "dry_run": tc.dryRun, "workers": 3})
			require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
			var started struct{ ID string }
			require.NoError(t, json.Unmarshal(r.body, &started))
			rep := e.wait(t, started.ID)

			wantState := api.MigrationSucceeded
			if tc.failed > 0 {
				wantState = api.MigrationFailed
			}
			require.Equal(t, wantState, rep.State, "%+v", rep)
			require.Equal(t, []int{n, tc.copied, tc.skipped, tc.failed, tc.verified},
				[]int{rep.Total, rep.Copied, rep.Skipped, rep.Failed, rep.Verified}, "total, copied, skipped, failed, verified")
			for _, msg := range rep.Errors {
				require.Equal(t, errConflict.Error(), msg)
			}
			calls := e.srv.metrics.backendCalls.snapshot()["b"]
			require.Equal(t, tc.reads, calls["read"], "target reads")
			require.Equal(t, tc.writes, calls["write"], "target writes (a refused create counts)")

			for i := range n {
				sec, err := e.dst.memBackend.Read(ctx, sdk.Ref{Project: "payments", Name: fmt.Sprintf("k%02d", i)})
				if tc.data == nil {
					require.ErrorIs(t, err, sdk.ErrNotFound, "a dry run writes nothing")
					continue
				}
				require.NoError(t, err)
				require.Equal(t, tc.version, sec.Version)
				require.Equal(t, tc.data(i), sec.Data)
			}
		})
	}
}
