package main

// The replicas scenario: one PostgreSQL (started by internal/pgtest), and 1,
// 2, ... -replicas gateway processes with the same configuration (each with
// its own port, audit log and directory) serving one project from the
// postgres backend in it. The GET and PUT load of the other scenarios (the
// same clients in total, the same secrets) is spread round-robin over the
// replicas running; each count is printed with req/s, p50 and p99, and as a
// multiple of one replica's req/s.
//
// Replicas start one after the other, each measured count adding one, so
// that n processes run while n are measured; the first replica creates the
// backend's schema and the key file the others read.

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// sharedState gives the replicas the shared gateway state in PostgreSQL
// (`state: {postgres: {dsn, schema: secretgate_state}}`), on the same
// database as the backend, as a deployment of replicas has it: they keep
// their routing in step through it, heartbeat into it and send each other
// their change events by LISTEN/NOTIFY. False measures the backend alone
// (and suits a gateway without the state section).
const sharedState = true

// replicaResult is one load of one replica count.
type replicaResult struct {
	replicas int
	op       string // "GET" or "PUT"
	r        result
}

// runReplicas runs the scenario with up to maxReplicas gateways. Without
// PostgreSQL it is skipped, saying why, unless required.
func runReplicas(w io.Writer, bin, dir string, duration time.Duration, workers uint64, maxReplicas int, required bool) error {
	pg, dsn, skipped, err := launchPostgres(w, "replicas", required)
	if skipped || err != nil {
		return err
	}
	defer pg.Stop()

	fmt.Fprintf(w, "\nreplicas run: %d concurrent clients in total spread round-robin over 1 to %d gateway processes on one PostgreSQL 15 (postgres backend, fsync and synchronous_commit on; shared gateway state: %v), %s per load, %d secrets\n",
		workers, maxReplicas, sharedState, duration, listSize)
	fmt.Fprintf(w, "load average (1 min) before the replicas run: %s\n", loadAverage())

	token := "sg_loadtest_" + randomHex(16)
	auth := loadAuth(token)
	keyFile := filepath.Join(dir, "replicas.key")
	secrets := loadSecrets(listSize)
	var gws []*gateway
	defer func() {
		for _, g := range gws {
			g.stop()
		}
	}()
	var results []replicaResult
	for n := 1; n <= maxReplicas; n++ {
		g, err := startPostgresGateway(bin, filepath.Join(dir, fmt.Sprintf("replica-%d", n)), dsn, keyFile, token, sharedState)
		if err != nil {
			return fmt.Errorf("replicas scenario: replica %d: %w", n, err)
		}
		gws = append(gws, g)
		if n == 1 {
			if err := seedSecrets(g.base, pgProject, auth, secrets); err != nil {
				return fmt.Errorf("replicas scenario: %w%s", err, g.logTail())
			}
		}
		gets := make([][]vegeta.Target, n)
		puts := make([][]vegeta.Target, n)
		for i, g := range gws {
			gets[i], puts[i], _ = loadTargets(g.base, pgProject, auth, secrets)
		}
		for _, op := range []struct {
			name    string
			targets []vegeta.Target
		}{{"GET", spreadTargets(gets)}, {"PUT", spreadTargets(puts)}} {
			r := attack(scenario{fmt.Sprintf("%s over %d replicas", op.name, n), op.targets}, duration, workers)
			if err := checkResults([]result{r}); err != nil {
				return fmt.Errorf("replicas scenario: %w", err)
			}
			results = append(results, replicaResult{n, op.name, r})
		}
	}
	reportReplicas(w, results)
	fmt.Fprintf(w, "load average (1 min) after the replicas run: %s\n", loadAverage())
	return nil
}

// spreadTargets interleaves the targets of each replica (perReplica[i],
// all of one length) so that a targeter cycling through the result sends
// consecutive requests to replica 0, 1, ..., n-1, 0, ..., every replica
// getting the same share, and every replica's every target in one cycle.
func spreadTargets(perReplica [][]vegeta.Target) []vegeta.Target {
	n := len(perReplica)
	if n == 0 {
		return nil
	}
	per := len(perReplica[0])
	out := make([]vegeta.Target, 0, n*per)
	// Target k of replica r is at position k*n+r: a cycle of n*per
	// requests covers each (replica, target) pair once, in round-robin
	// over the replicas.
	for k := range per {
		for r := range n {
			out = append(out, perReplica[r][k])
		}
	}
	return out
}

// reportReplicas prints the results, each count's req/s also as a multiple
// of one replica's for the same operation.
func reportReplicas(w io.Writer, results []replicaResult) {
	one := map[string]float64{}
	for _, r := range results {
		if r.replicas == 1 {
			one[r.op] = r.r.rps
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\treplicas\trequests\treq/s\tp50\tp99\tsuccess\tvs 1 replica\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%.2f%%\t%s\t\n", r.op, r.replicas, r.r.requests, r.r.rps,
			r.r.p50.Round(time.Microsecond), r.r.p99.Round(time.Microsecond), r.r.success*100, multiple(r.r.rps, one[r.op]))
	}
	tw.Flush()
}
