// Command loadtest is the load run of `make bench`: it starts the real
// secretgate binary in dev mode (file backend, plugin subprocess), a bare gin
// server in a second process as the baseline, and drives both with vegeta
// (a real HTTP client) at a fixed number of concurrent clients. It prints
// req/s and latency percentiles per scenario, and each gateway figure as a
// ratio of the bare gin baseline measured in the same run.
//
// The migrate scenario (migrate.go) times migrations of -migrate-secrets
// secrets from a file backend to another and to a real Vault dev server.
// The watchers scenario (watchers.go) holds -watchers event streams open on
// one gateway and measures their memory, the fan-out latency of writes and
// the backend calls they cause; resolve (resolve.go) compares POST
// /v1/resolve of 20 references with GETs of the same secrets.
//
// Every loop is bounded by -duration; all targets are on 127.0.0.1.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gin-gonic/gin"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func main() {
	if os.Getenv(countPluginEnv) == "1" {
		// Started by the watchers scenario's gateway as its backend plugin.
		serveCountingPlugin()
		return
	}
	var (
		bin      = flag.String("bin", "", "secretgate binary (default: build ./cmd/secretgate into a temp dir)")
		duration = flag.Duration("duration", 10*time.Second, "length of each scenario")
		workers  = flag.Uint64("workers", 32, "concurrent clients")
		bare     = flag.String("serve-bare", "", "internal: serve the bare gin baseline on this address")
		only     = flag.String("only", "", "comma-separated scenarios to run (bare,get,list,put,migrate,watchers,resolve,authflood); empty = all but authflood")
		backend  = flag.String("config", "", "run the gateway with this config file instead of --dev (tokens from -token); migrate, watchers and resolve always use their own")
		token    = flag.String("token", "", "bearer token with admin rights on -project (with -config)")
		project  = flag.String("project", "default", "project to load")
		migrateN = flag.Int("migrate-secrets", 1000, "secrets per migration in the migrate scenario")
		vaultBin = flag.String("vault-bin", "", "Vault server for the migrate scenario (default: $SECRETGATE_VAULT_BIN, else <repo root>/.bin/vault from `make testservers`)")
		watchers = flag.Int("watchers", 10000, "concurrent event-stream watchers in the watchers scenario")
		fanoutN  = flag.Int("fanout-writes", 20, "writes whose fan-out to every watcher the watchers scenario times")
	)
	flag.Parse()
	if *bare != "" {
		serveBare(*bare)
		return
	}
	if *migrateN < 1 || *watchers < 1 || *fanoutN < 1 {
		fmt.Fprintln(os.Stderr, "loadtest: -migrate-secrets, -watchers and -fanout-writes must be at least 1")
		os.Exit(2)
	}
	cleanupOnSignal()
	sc := scenarios{migrateN: *migrateN, vaultBin: *vaultBin, watchers: *watchers, fanoutWrites: *fanoutN}
	if err := run(*bin, *backend, *token, *project, *duration, *workers, *only, sc); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// serveBare is the baseline: gin in release mode answering a fixed JSON body,
// the cheapest thing the gateway could possibly do per request.
func serveBare(addr string) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/bare", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"project": "default", "name": "bare", "version": 1})
	})
	srv := &http.Server{Addr: addr, Handler: r, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name    string
	targets []vegeta.Target
}

type result struct {
	name          string
	rps           float64
	p50, p99      time.Duration
	success       float64
	requests      uint64
	statusCodes   map[string]int
	firstErrorMsg string
}

// scenarios holds the settings of the scenarios that have their own.
type scenarios struct {
	migrateN     int
	vaultBin     string
	watchers     int
	fanoutWrites int
}

func run(bin, configPath, token, project string, duration time.Duration, workers uint64, only string, sc scenarios) error {
	dir, err := os.MkdirTemp("", "secretgate-loadtest-")
	if err != nil {
		return err
	}
	trackDir(dir)
	defer os.RemoveAll(dir)

	for _, name := range strings.Split(only, ",") {
		switch name {
		case "", "bare", "get", "list", "put", "migrate", "watchers", "resolve", "authflood":
		default:
			return fmt.Errorf("-only: unknown scenario %q (bare, get, list, put, migrate, watchers, resolve, authflood)", name)
		}
	}

	if bin != "" {
		// The gateway runs in the temp dir, so a relative path would miss.
		if bin, err = filepath.Abs(bin); err != nil {
			return err
		}
	} else {
		bin = filepath.Join(dir, "secretgate")
		build := exec.Command("go", "build", "-o", bin, "./cmd/secretgate")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build secretgate: %w", err)
		}
	}

	want := func(name string) bool {
		return only == "" || strings.Contains(","+only+",", ","+name+",")
	}

	var errs []error
	if want("bare") || want("get") || want("list") || want("put") {
		errs = append(errs, runLoad(bin, dir, configPath, token, project, duration, workers, want))
	}
	if want("resolve") {
		errs = append(errs, runResolve(os.Stdout, bin, dir, duration, workers))
	}
	if want("migrate") {
		errs = append(errs, runMigrate(os.Stdout, bin, sc.vaultBin, sc.migrateN))
	}
	if want("watchers") {
		errs = append(errs, runWatchers(os.Stdout, bin, dir, sc.watchers, sc.fanoutWrites))
	}
	if only != "" && want("authflood") {
		// Not part of the default run: it measures a defence, not speed.
		errs = append(errs, runAuthFlood(os.Stdout, bin, dir, duration, workers))
	}
	return errors.Join(errs...)
}

// runLoad runs the vegeta scenarios (bare, get, list, put) that want selects.
func runLoad(bin, dir, configPath, token, project string, duration time.Duration, workers uint64, want func(string) bool) error {
	var results []result
	if want("bare") {
		r, err := runBare(duration, workers)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if !want("get") && !want("list") && !want("put") {
		report(os.Stdout, results, workers, duration)
		return checkResults(results)
	}

	gwAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"server", "--listen", gwAddr}
	if configPath != "" {
		args = append(args, "--config", configPath)
	} else {
		token = "sg_loadtest_" + randomHex(16)
		args = append(args, "--dev", "--dev-token", token, "--dev-dir", filepath.Join(dir, "dev"))
	}
	gw := exec.Command(bin, args...)
	gw.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	gw.Stdout, gw.Stderr = logf, logf
	gw.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := gw.Start(); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	track(gw)
	defer untrack(gw)
	defer stop(gw)
	base := "http://" + gwAddr
	if err := waitHTTP(base+"/readyz", 30*time.Second); err != nil {
		out, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("gateway not ready: %w\n%s", err, out)
	}

	auth := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	const n = 100
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("load-%03d", i)
		body := fmt.Sprintf(`{"name":%q,"data":{"username":"svc-%d","password":%q,"host":"db.internal:5432"}}`, names[i], i, randomHex(16))
		if err := do(http.MethodPost, base+"/v1/projects/"+project+"/secrets", auth, body); err != nil {
			return fmt.Errorf("seed %s: %w", names[i], err)
		}
	}

	var gets, puts []vegeta.Target
	for _, name := range names {
		gets = append(gets, vegeta.Target{Method: "GET", URL: base + "/v1/projects/" + project + "/secrets/" + name, Header: auth})
		puts = append(puts, vegeta.Target{Method: "PUT", URL: base + "/v1/projects/" + project + "/secrets/" + name, Header: auth,
			Body: []byte(`{"data":{"username":"svc","password":"` + randomHex(16) + `"}}`)})
	}
	list := []vegeta.Target{{Method: "GET", URL: base + "/v1/projects/" + project + "/secrets?page_size=100", Header: auth}}

	for _, sc := range []struct {
		key string
		sc  scenario
	}{
		{"get", scenario{"GET with values", gets}},
		{"list", scenario{"LIST of 100 secrets", list}},
		{"put", scenario{"PUT (new version, fsync)", puts}},
	} {
		if want(sc.key) {
			results = append(results, attack(sc.sc, duration, workers, ""))
		}
	}
	report(os.Stdout, results, workers, duration)
	return checkResults(results)
}

func checkResults(results []result) error {
	for _, r := range results {
		if r.success < 1 {
			return fmt.Errorf("%s: only %.2f%% of requests succeeded (codes %v, first error %q)", r.name, r.success*100, r.statusCodes, r.firstErrorMsg)
		}
	}
	return nil
}

// runBare measures the baseline. It runs in its own process, like the
// gateway, so both share the machine with the load generator in the same way.
func runBare(duration time.Duration, workers uint64) (result, error) {
	bareAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	bareCmd := exec.Command(self, "-serve-bare", bareAddr)
	bareCmd.Stderr = os.Stderr
	if err := bareCmd.Start(); err != nil {
		return result{}, fmt.Errorf("start bare gin: %w", err)
	}
	track(bareCmd)
	defer untrack(bareCmd)
	defer stop(bareCmd)
	if err := waitHTTP("http://"+bareAddr+"/bare", 10*time.Second); err != nil {
		return result{}, fmt.Errorf("bare gin: %w", err)
	}
	return attack(scenario{"bare gin (fixed JSON)", []vegeta.Target{{Method: "GET", URL: "http://" + bareAddr + "/bare"}}}, duration, workers, ""), nil
}

func attack(sc scenario, duration time.Duration, workers uint64, _ string) result {
	targeter := vegeta.NewStaticTargeter(sc.targets...)
	attacker := vegeta.NewAttacker(
		vegeta.Workers(workers),
		vegeta.MaxWorkers(workers),
		vegeta.Connections(int(workers)),
		vegeta.KeepAlive(true),
		vegeta.Timeout(30*time.Second),
	)
	var m vegeta.Metrics
	// Rate 0 with a fixed worker pool: each of the clients sends its next
	// request as soon as the previous one answered (closed-loop load).
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: 0}, duration, sc.name) {
		m.Add(res)
	}
	m.Close()
	r := result{
		name: sc.name, rps: m.Throughput, p50: m.Latencies.P50, p99: m.Latencies.P99,
		success: m.Success, requests: m.Requests, statusCodes: m.StatusCodes,
	}
	if len(m.Errors) > 0 {
		r.firstErrorMsg = m.Errors[0]
	}
	return r
}

func report(w io.Writer, results []result, workers uint64, duration time.Duration) {
	fmt.Fprintf(w, "\nload run: %d concurrent clients, %s per scenario, vegeta over HTTP/1.1 keep-alive on 127.0.0.1\n\n", workers, duration)
	var baseline float64
	for _, r := range results {
		if strings.HasPrefix(r.name, "bare") {
			baseline = r.rps
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\treq/s\tp50\tp99\tsuccess\tvs bare gin\t")
	for _, r := range results {
		ratio := "-"
		if baseline > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*r.rps/baseline)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.2f%%\t%s\t\n", r.name, r.requests, r.rps,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.success*100, ratio)
	}
	tw.Flush()
}

func do(method, url string, h http.Header, body string) error {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %d %s: %s", method, url, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

func waitHTTP(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			return fmt.Errorf("%s: %w", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
