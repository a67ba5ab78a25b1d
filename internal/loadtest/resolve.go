package main

// The resolve scenario: what a workload that needs 20 values pays through
// POST /v1/resolve of 20 references against GETs of the same 20 secrets,
// with vegeta at the same number of concurrent clients for the same time.
// The comparison is in secrets resolved per second: one resolve answers 20
// references (one key of each of 20 secrets), one GET answers one secret.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// resolveRefs is how many references one resolve names, and how many
// secrets the GETs cycle through.
const resolveRefs = 20

func runResolve(w io.Writer, bin, dir string, duration time.Duration, workers uint64) error {
	token := "sg_loadtest_" + randomHex(16)
	g, err := startGateway(bin, dir, gatewayEnv(), "--dev", "--dev-token", token, "--dev-dir", filepath.Join(dir, "resolve-dev"))
	if err != nil {
		return err
	}
	defer g.stop()
	const project = "default"
	auth := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	refs := make([]string, resolveRefs)
	var gets []vegeta.Target
	for i := range refs {
		name := fmt.Sprintf("resolve-%02d", i)
		body := fmt.Sprintf(`{"name":%q,"data":{"username":"svc-%d","password":%q,"host":"db.internal:5432"}}`, name, i, randomHex(16))
		if err := do(http.MethodPost, g.base+"/v1/projects/"+project+"/secrets", auth, body); err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
		refs[i] = "sg://" + project + "/" + name + "/password"
		gets = append(gets, vegeta.Target{Method: "GET", URL: g.base + "/v1/projects/" + project + "/secrets/" + name, Header: auth})
	}
	body, err := json.Marshal(map[string][]string{"refs": refs})
	if err != nil {
		return err
	}
	// A resolve that answered anything but the 20 values would make the
	// figures meaningless: check one before timing thousands.
	var out struct {
		Values map[string]string `json:"values"`
	}
	if _, err := call(context.Background(), "POST", g.base+"/v1/resolve", token, body, &out); err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if len(out.Values) != resolveRefs {
		return fmt.Errorf("resolve: %d values for %d references", len(out.Values), resolveRefs)
	}

	res := attack(scenario{fmt.Sprintf("POST /v1/resolve (%d refs)", resolveRefs), []vegeta.Target{{Method: "POST", URL: g.base + "/v1/resolve", Header: auth, Body: body}}}, duration, workers)
	get := attack(scenario{"GET of one secret", gets}, duration, workers)
	reportResolve(w, res, get, workers, duration)
	return checkResults([]result{res, get})
}

func reportResolve(w io.Writer, res, get result, workers uint64, duration time.Duration) {
	fmt.Fprintf(w, "\nresolve: POST /v1/resolve of %d references vs GETs of the same %d secrets, %d concurrent clients, %s each, vegeta over HTTP/1.1 keep-alive\n", resolveRefs, resolveRefs, workers, duration)
	fmt.Fprintf(w, "compared in secrets resolved per second: a resolve answers %d references, a GET one secret (\"%d GETs\" = GET req/s / %d)\n\n", resolveRefs, resolveRefs, resolveRefs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\treq/s\tsecrets/s\tsets of 20/s\tp50\tp99\tsuccess\t")
	for _, r := range []struct {
		result
		per int
	}{{res, resolveRefs}, {get, 1}} {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%s\t%s\t%.2f%%\t\n", r.name, r.requests, r.rps, r.rps*float64(r.per),
			r.rps*float64(r.per)/resolveRefs, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.success*100)
	}
	tw.Flush()
	if get.rps > 0 {
		fmt.Fprintf(w, "\nresolve of %d / %d GETs: %.1fx the secrets per second\n", resolveRefs, resolveRefs, res.rps*resolveRefs/get.rps)
	}
}
