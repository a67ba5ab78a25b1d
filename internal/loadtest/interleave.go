package main

import (
	"fmt"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// interleaveRounds is how many slices a compared group's scenarios are cut
// into. On a shared machine the processor the other tenants leave changes
// within seconds; a gateway scenario and its Vault counterpart run one after
// the other for the whole duration saw different machines, so their ratio
// moved by ±15% from run to run. Run in alternating slices (A B, B A, A B,
// ...), both see the same mix of quiet and busy moments.
const interleaveRounds = 6

// attackInterleaved runs the scenarios of one compared group in
// interleaveRounds slices of duration/interleaveRounds each, in the forward
// order in even rounds and the reverse order in odd ones, so that no
// scenario always follows the same one. Each result is the whole of its
// slices: throughput over the time its slices ran, latency percentiles over
// all their requests, and roundRPS, each slice's own throughput, from which
// report prints the spread of the per-slice ratios.
func attackInterleaved(scs []scenario, duration time.Duration, workers uint64) []result {
	slice := max(duration/interleaveRounds, 100*time.Millisecond)
	type acc struct {
		all     vegeta.Metrics
		ok      float64 // successful requests over every slice
		elapsed time.Duration
		rounds  []float64
	}
	accs := make([]acc, len(scs))
	order := make([]int, len(scs))
	for round := range interleaveRounds {
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			var m vegeta.Metrics
			runAttack(scs[i], slice, workers, func(res *vegeta.Result) {
				m.Add(res)
				accs[i].all.Add(res)
			})
			m.Close()
			a := &accs[i]
			a.ok += m.Success * float64(m.Requests)
			a.elapsed += m.Duration + m.Wait
			a.rounds = append(a.rounds, m.Throughput)
		}
	}
	out := make([]result, len(scs))
	for i, sc := range scs {
		a := &accs[i]
		a.all.Close()
		out[i] = resultOf(sc.name, &a.all)
		// Not a.all's throughput: that spans the other scenarios' slices.
		out[i].rps = a.ok / max(a.elapsed, time.Nanosecond).Seconds()
		out[i].roundRPS = a.rounds
	}
	return out
}

// roundSpread is the range of the per-slice ratios of r to ref, "" when
// they were not run in the same slices.
func roundSpread(r, ref result) string {
	if len(r.roundRPS) == 0 || len(r.roundRPS) != len(ref.roundRPS) {
		return ""
	}
	lo, hi := 0.0, 0.0
	for i, v := range r.roundRPS {
		if ref.roundRPS[i] <= 0 {
			return ""
		}
		q := v / ref.roundRPS[i]
		if i == 0 || q < lo {
			lo = q
		}
		if i == 0 || q > hi {
			hi = q
		}
	}
	return fmt.Sprintf(" (%.2f-%.2f)", lo, hi)
}
