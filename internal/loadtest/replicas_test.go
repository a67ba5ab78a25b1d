package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	sg "github.com/secretgate/secretgate/gateway"
	"github.com/secretgate/secretgate/internal/pgtest"
)

// Consecutive requests go round-robin over the replicas, each replica gets
// the same share, and one cycle sends every target of every replica once.
func TestSpreadTargets(t *testing.T) {
	for _, tt := range []struct{ replicas, perReplica int }{{1, 100}, {2, 100}, {3, 100}, {3, 1}} {
		t.Run(fmt.Sprintf("%d replicas of %d targets", tt.replicas, tt.perReplica), func(t *testing.T) {
			in := make([][]vegeta.Target, tt.replicas)
			for r := range in {
				for k := range tt.perReplica {
					in[r] = append(in[r], vegeta.Target{URL: fmt.Sprintf("http://replica-%d/secret-%d", r, k)})
				}
			}
			out := spreadTargets(in)
			require.Len(t, out, tt.replicas*tt.perReplica)
			seen := map[string]int{}
			for i, tg := range out {
				require.True(t, strings.HasPrefix(tg.URL, fmt.Sprintf("http://replica-%d/", i%tt.replicas)), "request %d goes to %s", i, tg.URL)
				seen[tg.URL]++
			}
			require.Len(t, seen, tt.replicas*tt.perReplica, "every target of every replica")
		})
	}
	require.Empty(t, spreadTargets(nil))
}

// Each count is a multiple of one replica's req/s for the same operation.
func TestReportReplicas(t *testing.T) {
	res := func(n int, op string, rps float64) replicaResult {
		return replicaResult{n, op, result{rps: rps, success: 1, p50: time.Millisecond}}
	}
	var out bytes.Buffer
	reportReplicas(&out, []replicaResult{
		res(1, "GET", 2000), res(1, "PUT", 400),
		res(2, "GET", 2400), res(2, "PUT", 600),
		res(3, "GET", 1800), res(3, "PUT", 800),
	})
	want := map[string]string{"GET 1": "1.00x", "PUT 1": "1.00x", "GET 2": "1.20x", "PUT 2": "1.50x", "GET 3": "0.90x", "PUT 3": "2.00x"}
	got := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && (f[0] == "GET" || f[0] == "PUT") {
			got[f[0]+" "+f[1]] = f[7]
		}
	}
	require.Equal(t, want, got, out.String())
}

// The generated configuration is one the gateway loads, with the project
// on the postgres backend at the DSN; with shared state it names the state
// database and its own schema.
func TestWritePostgresConfig(t *testing.T) {
	dir := t.TempDir()
	const dsn = "postgres://postgres@127.0.0.1:5432/secretgate?sslmode=disable"
	path, err := writePostgresConfig(dir, dsn, filepath.Join(dir, "k.key"), "sg_loadtest_x", false)
	require.NoError(t, err)
	cfg, err := sg.LoadConfig(path, sg.LoadOptions{Builtins: []string{"file", "postgres"}})
	require.NoError(t, err)
	require.Len(t, cfg.Backends, 1)
	require.Equal(t, "postgres", cfg.Backends[0].Plugin)
	require.Equal(t, dsn, cfg.Backends[0].Settings["dsn"])
	require.Equal(t, []sg.ProjectConfig{{Name: pgProject, Backend: "pg"}}, cfg.Projects)
	require.Equal(t, filepath.Join(dir, "audit.log"), cfg.Audit.Path)

	require.False(t, cfg.State.Shared())

	path, err = writePostgresConfig(dir, dsn, filepath.Join(dir, "k.key"), "sg_loadtest_x", true)
	require.NoError(t, err)
	cfg, err = sg.LoadConfig(path, sg.LoadOptions{Builtins: []string{"file", "postgres"}})
	require.NoError(t, err)
	require.True(t, cfg.State.Shared())
	require.Equal(t, dsn, cfg.State.Postgres.DSN)
	require.Equal(t, stateSchema, cfg.State.Postgres.Schema)
}

// Without PostgreSQL a scenario of the default set is skipped with the
// reason; named in -only, it fails.
func TestLaunchPostgresMissing(t *testing.T) {
	t.Setenv(pgtest.BinDirEnv, t.TempDir())
	for _, required := range []bool{false, true} {
		var out bytes.Buffer
		pg, dsn, skipped, err := launchPostgres(&out, "replicas", required)
		require.Nil(t, pg)
		require.Empty(t, dsn)
		require.Equal(t, !required, skipped)
		if required {
			require.ErrorIs(t, err, pgtest.ErrNotInstalled)
			require.Empty(t, out.String())
		} else {
			require.NoError(t, err)
			require.Contains(t, out.String(), "replicas scenario skipped")
			require.Contains(t, out.String(), "apt-get install -y postgresql")
		}
	}
}
