package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// runAuthFlood measures what a flood of unauthenticated writes costs a
// legitimate client: the median of sequential authenticated GETs, first on
// an idle gateway, then while `workers` clients send POSTs with a wrong
// token as fast as they can. The flood's records of failed authentication
// used to be written (and fsync'd) one by one under the audit lock.
func runAuthFlood(w io.Writer, bin, dir string, duration time.Duration, workers uint64) error {
	token := "sg_loadtest_" + randomHex(16)
	g, err := startGateway(bin, dir, gatewayEnv(), "--dev", "--dev-token", token, "--dev-dir", filepath.Join(dir, "flood-dev"))
	if err != nil {
		return err
	}
	defer g.stop()
	auth := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	url := g.base + "/v1/projects/default/secrets/flood-probe"
	if err := do(http.MethodPost, g.base+"/v1/projects/default/secrets", auth, `{"name":"flood-probe","data":{"k":"v"}}`); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	probe := func(d time.Duration) (time.Duration, int, error) {
		var lat []time.Duration
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			start := time.Now()
			if err := do(http.MethodGet, url, auth, ""); err != nil {
				return 0, 0, err
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[len(lat)/2], len(lat), nil
	}
	idle, idleN, err := probe(duration)
	if err != nil {
		return fmt.Errorf("idle probe: %w", err)
	}

	bad := http.Header{"Authorization": {"Bearer not-a-token"}, "Content-Type": {"application/json"}}
	flood := vegeta.NewAttacker(vegeta.Workers(workers), vegeta.MaxWorkers(workers), vegeta.Connections(int(workers)), vegeta.KeepAlive(true))
	var m vegeta.Metrics
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "POST", URL: g.base + "/v1/projects/default/secrets", Header: bad, Body: []byte(`{"name":"x","data":{"k":"v"}}`)})
		for res := range flood.Attack(tr, vegeta.Rate{Freq: 0}, duration+time.Second, "flood") {
			m.Add(res)
		}
		m.Close()
	}()
	time.Sleep(500 * time.Millisecond) // let the flood reach full speed
	loaded, loadedN, err := probe(duration)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("probe under flood: %w", err)
	}
	fmt.Fprintf(w, "\nauth flood: %d clients sending POSTs with a wrong token (%.0f req/s, codes %v); one client's sequential GETs:\n", workers, m.Rate, m.StatusCodes)
	fmt.Fprintf(w, "  idle:        p50 %s (%d GETs)\n", idle.Round(time.Microsecond), idleN)
	fmt.Fprintf(w, "  under flood: p50 %s (%d GETs)\n", loaded.Round(time.Microsecond), loadedN)
	return nil
}
