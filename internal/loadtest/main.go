// Command loadtest is the load run of `make bench`: it starts the real
// secretgate binary in dev mode (file backend, plugin subprocess), a bare gin
// server in a second process as the baseline, and drives both with vegeta
// (a real HTTP client) at a fixed number of concurrent clients. It prints
// req/s and latency percentiles per scenario, and each gateway figure as a
// ratio of the bare gin baseline measured in the same run. The vault scenario
// (vaultload.go) runs the same GET and PUT load against a Vault dev server,
// and the gateway's GET and PUT are printed as multiples of Vault's too;
// each pair runs interleaved in alternating slices (interleave.go), so that
// both sides see the same machine.
//
// The migrate scenario (migrate.go) times migrations of -migrate-secrets
// secrets from a file backend to another and to a real Vault dev server.
// The watchers scenario (watchers.go) holds -watchers event streams open on
// one gateway and measures their memory, the fan-out latency of writes and
// the backend calls they cause; resolve (resolve.go) compares POST
// /v1/resolve of 20 references with GETs of the same secrets.
//
// The postgres scenario (pgload.go) runs the GET, LIST and PUT load against a
// gateway on the postgres backend and a PostgreSQL that internal/pgtest
// starts, each row next to the file backend's and as a multiple of it; the
// replicas scenario (replicas.go) spreads GET and PUT load over one, two and
// three gateway processes on one PostgreSQL. Both are skipped, saying why,
// when PostgreSQL is not installed (and fail when named in -only).
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
		only     = flag.String("only", "", "comma-separated scenarios to run ("+scenarioNames+"); empty = all but authflood")
		backend  = flag.String("config", "", "run the gateway with this config file instead of --dev (tokens from -token); migrate, watchers, resolve, postgres and replicas always use their own")
		token    = flag.String("token", "", "bearer token with admin rights on -project (with -config)")
		project  = flag.String("project", "default", "project to load")
		migrateN = flag.Int("migrate-secrets", 1000, "secrets per migration in the migrate scenario")
		vaultBin = flag.String("vault-bin", "", "Vault server for the vault and migrate scenarios (default: $SECRETGATE_VAULT_BIN, else <repo root>/.bin/vault from `make testservers`)")
		nSecrets = flag.Int("secrets", listSize, "secrets the GET and PUT scenarios cycle through, on the gateway and on Vault alike (1-100; 1 = every client reads and writes the same secret)")
		watchers = flag.Int("watchers", 10000, "concurrent event-stream watchers in the watchers scenario")
		fanoutN  = flag.Int("fanout-writes", 20, "writes whose fan-out to every watcher the watchers scenario times")
		replicas = flag.Int("replicas", 3, "the replicas scenario measures 1, 2, ... up to this many gateway processes")
	)
	flag.Parse()
	if *bare != "" {
		serveBare(*bare)
		return
	}
	if *migrateN < 1 || *watchers < 1 || *fanoutN < 1 || *replicas < 1 {
		fmt.Fprintln(os.Stderr, "loadtest: -migrate-secrets, -watchers, -fanout-writes and -replicas must be at least 1")
		os.Exit(2)
	}
	if *nSecrets < 1 || *nSecrets > listSize {
		fmt.Fprintf(os.Stderr, "loadtest: -secrets must be between 1 and %d\n", listSize)
		os.Exit(2)
	}
	cleanupOnSignal()
	sc := scenarios{migrateN: *migrateN, vaultBin: *vaultBin, watchers: *watchers, fanoutWrites: *fanoutN, loadSecrets: *nSecrets, replicas: *replicas}
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

// Names of the load scenarios, and the number of secrets a LIST pages.
const (
	getName = "GET with values"
	// getNoCacheName: the same GET on a gateway started --dev-cache=false,
	// so that every read crosses the plugin hop to the file backend.
	getNoCacheName = "GET, no read cache"
	listName       = "LIST of 100 secrets"
	putName        = "PUT (new version, fsync)"
	listSize       = 100
)

type scenario struct {
	name    string
	targets []vegeta.Target
}

type result struct {
	name          string
	vs            string // the scenario of the "vs Vault dev" column, if any
	vsFile        string // the scenario of the "vs file backend" column, if any
	rps           float64
	p50, p99      time.Duration
	success       float64
	requests      uint64
	statusCodes   map[string]int
	firstErrorMsg string
	roundRPS      []float64 // each slice's req/s, when run interleaved with others (interleave.go)
}

// scenarios holds the settings of the scenarios that have their own.
type scenarios struct {
	migrateN     int
	vaultBin     string
	watchers     int
	fanoutWrites int
	loadSecrets  int // secrets GET and PUT cycle through
	replicas     int // most gateway processes of the replicas scenario
}

const scenarioNames = "bare, get, list, put, postgres, vault, migrate, watchers, resolve, replicas, authflood"

func run(bin, configPath, token, project string, duration time.Duration, workers uint64, only string, sc scenarios) error {
	dir, err := os.MkdirTemp("", "secretgate-loadtest-")
	if err != nil {
		return err
	}
	trackDir(dir)
	defer os.RemoveAll(dir)

	for _, name := range strings.Split(only, ",") {
		switch name {
		case "", "bare", "get", "list", "put", "postgres", "vault", "migrate", "watchers", "resolve", "replicas", "authflood":
		default:
			return fmt.Errorf("-only: unknown scenario %q (%s)", name, scenarioNames)
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
	if want("bare") || want("get") || want("list") || want("put") || want("vault") || want("postgres") {
		// Named in -only, the vault and postgres scenarios fail without
		// their server; in the default set they are skipped with the
		// reason, like migrate's.
		required := func(name string) bool { return only != "" && want(name) }
		errs = append(errs, runLoad(os.Stdout, bin, dir, configPath, token, project, duration, workers, want, sc.vaultBin, required, sc.loadSecrets))
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
	if want("replicas") {
		errs = append(errs, runReplicas(os.Stdout, bin, dir, duration, workers, sc.replicas, only != ""))
	}
	if only != "" && want("authflood") {
		// Not part of the default run: it measures a defence, not speed.
		errs = append(errs, runAuthFlood(os.Stdout, bin, dir, duration, workers))
	}
	return errors.Join(errs...)
}

// runLoad runs the vegeta scenarios (bare, get, list, put, postgres, vault)
// that want selects, in an order that puts each comparison next to its
// reference: Vault GET, GET, postgres GET, bare gin, LIST, postgres LIST,
// PUT, postgres PUT, Vault PUT. The machine's load drifts over a run (other
// work, the page cache, the CPU's clock), and a ratio of two figures
// measured seconds apart drifts less than one of figures a minute apart.
func runLoad(w io.Writer, bin, dir, configPath, token, project string, duration time.Duration, workers uint64, want func(string) bool, vaultBin string, required func(string) bool, nSecrets int) error {
	fmt.Fprintf(w, "\nload average (1 min) before the load run: %s\n", loadAverage())
	secrets := loadSecrets(listSize)

	var vault *vaultLoad
	if want("vault") {
		path, why := findVault(vaultBin)
		switch {
		case why != "" && required("vault"):
			return fmt.Errorf("vault scenario: %s", why)
		case why != "":
			fmt.Fprintf(w, "Vault dev scenarios skipped: %s\n", why)
		default:
			var err error
			if vault, err = startVaultLoad(path, filepath.Join(dir, "vault"), secrets[:nSecrets]); err != nil {
				return err
			}
			defer vault.stop()
		}
	}

	var pg *pgLoad
	if want("postgres") {
		var err error
		if pg, err = startPostgresLoad(w, bin, dir, secrets, nSecrets, required("postgres")); err != nil {
			return err
		}
		if pg != nil {
			defer pg.stop()
		}
	}

	var gets, getsNoCache, puts, list []vegeta.Target
	if want("get") || want("list") || want("put") {
		args := []string{}
		env := os.Environ()
		if configPath != "" {
			args = append(args, "--config", configPath)
		} else {
			token = "sg_loadtest_" + randomHex(16)
			args = append(args, "--dev", "--dev-token", token, "--dev-dir", filepath.Join(dir, "dev"))
			env = gatewayEnv()
		}
		gw, err := startSeeded(bin, dir, env, args, token, project, secrets)
		if err != nil {
			return err
		}
		defer gw.stop()
		gets, puts, list = loadTargets(gw.base, project, loadAuth(token), secrets[:nSecrets])
	}
	if want("get") && configPath == "" {
		// --dev answers reads from its read cache; this gateway shows what
		// a read costs when it crosses the plugin hop every time.
		sub := filepath.Join(dir, "nocache")
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return err
		}
		gw, err := startSeeded(bin, sub, gatewayEnv(), []string{"--dev", "--dev-cache=false", "--dev-token", token, "--dev-dir", filepath.Join(sub, "dev")}, token, project, secrets)
		if err != nil {
			return err
		}
		defer gw.stop()
		getsNoCache, _, _ = loadTargets(gw.base, project, loadAuth(token), secrets[:nSecrets])
	}

	type step struct {
		want bool
		run  func() ([]result, error)
	}
	one := func(run func() (result, error)) func() ([]result, error) {
		return func() ([]result, error) {
			r, err := run()
			return []result{r}, err
		}
	}
	// compared runs a gateway group and its Vault counterpart interleaved
	// (interleave.go), or the group alone when there is no Vault.
	compared := func(vaultSc scenario, scs ...scenario) func() ([]result, error) {
		return func() ([]result, error) {
			if vault == nil {
				var out []result
				for _, sc := range scs {
					out = append(out, attack(sc, duration, workers))
				}
				return out, nil
			}
			out := attackInterleaved(append(scs[:len(scs):len(scs)], vaultSc), duration, workers)
			for i := range scs {
				out[i].vs = vaultSc.name
			}
			return out, nil
		}
	}
	var vaultGets, vaultPuts scenario
	if vault != nil {
		vaultGets, vaultPuts = scenario{vaultGetName, vault.gets}, scenario{vaultPutName, vault.puts}
	}
	var getGroup, putGroup []scenario
	if want("get") {
		getGroup = append(getGroup, scenario{getName, gets})
	}
	if getsNoCache != nil {
		getGroup = append(getGroup, scenario{getNoCacheName, getsNoCache})
	}
	if want("put") {
		putGroup = append(putGroup, scenario{putName, puts})
	}
	steps := []step{
		{len(getGroup) > 0 || vault != nil, compared(vaultGets, getGroup...)},
		{pg != nil, one(pg.load(pgGetName, duration, workers))}, // each postgres row right after its file row
		{want("bare"), one(func() (result, error) { return runBare(duration, workers) })},
		{want("list"), one(func() (result, error) { return attack(scenario{listName, list}, duration, workers), nil })},
		{pg != nil, one(pg.load(pgListName, duration, workers))},
		{len(putGroup) > 0 || vault != nil, compared(vaultPuts, putGroup...)},
		{pg != nil, one(pg.load(pgPutName, duration, workers))},
	}
	var results []result
	for _, s := range steps {
		if !s.want {
			continue
		}
		rs, err := s.run()
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	report(w, results, workers, duration, nSecrets)
	fmt.Fprintf(w, "load average (1 min) after the load run: %s\n", loadAverage())
	return checkResults(results)
}

// startSeeded starts a gateway with args and creates every secret of
// secrets in project, so that GETs and PUTs find them.
func startSeeded(bin, dir string, env, args []string, token, project string, secrets []loadSecret) (*gateway, error) {
	gw, err := startGateway(bin, dir, env, args...)
	if err != nil {
		return nil, err
	}
	if err := seedSecrets(gw.base, project, loadAuth(token), secrets); err != nil {
		gw.stop()
		return nil, err
	}
	return gw, nil
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
	return attack(scenario{"bare gin (fixed JSON)", []vegeta.Target{{Method: "GET", URL: "http://" + bareAddr + "/bare"}}}, duration, workers), nil
}

func attack(sc scenario, duration time.Duration, workers uint64) result {
	var m vegeta.Metrics
	runAttack(sc, duration, workers, func(res *vegeta.Result) { m.Add(res) })
	m.Close()
	return resultOf(sc.name, &m)
}

// runAttack sends sc's requests for duration and hands each result to add.
func runAttack(sc scenario, duration time.Duration, workers uint64, add func(*vegeta.Result)) {
	targeter := vegeta.NewStaticTargeter(sc.targets...)
	attacker := vegeta.NewAttacker(
		vegeta.Workers(workers),
		vegeta.MaxWorkers(workers),
		vegeta.Connections(int(workers)),
		vegeta.KeepAlive(true),
		vegeta.Timeout(30*time.Second),
	)
	// Rate 0 with a fixed worker pool: each of the clients sends its next
	// request as soon as the previous one answered (closed-loop load).
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: 0}, duration, sc.name) {
		add(res)
	}
}

// resultOf summarises closed metrics.
func resultOf(name string, m *vegeta.Metrics) result {
	r := result{
		name: name, rps: m.Throughput, p50: m.Latencies.P50, p99: m.Latencies.P99,
		success: m.Success, requests: m.Requests, statusCodes: m.StatusCodes,
	}
	if len(m.Errors) > 0 {
		r.firstErrorMsg = m.Errors[0]
	}
	return r
}

// report prints the results in the order they ran, each as a share of bare
// gin's req/s and, for a gateway scenario with a Vault counterpart, as a
// multiple of Vault's; a postgres row as a multiple of the file backend's.
func report(w io.Writer, results []result, workers uint64, duration time.Duration, nSecrets int) {
	fmt.Fprintf(w, "\nload run: %d concurrent clients, %s per scenario, vegeta over HTTP/1.1 keep-alive on 127.0.0.1, in the order run;\n"+
		"a row compared with Vault dev ran interleaved with it in %d slices (A B, B A, ...), the range of the per-slice ratios in brackets\n", workers, duration, interleaveRounds)
	cycle := fmt.Sprintf("cycle through %d secrets", nSecrets)
	if nSecrets == 1 {
		cycle = "all go to one secret"
	}
	fmt.Fprintf(w, "GETs and PUTs %s of two keys on each side (a PUT replaces it with a new version)\n\n", cycle)
	byName := map[string]result{}
	var baseline float64
	for _, r := range results {
		byName[r.name] = r
		if strings.HasPrefix(r.name, "bare") {
			baseline = r.rps
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\treq/s\tp50\tp99\tsuccess\tvs bare gin\tvs Vault dev\tvs file backend\t")
	for _, r := range results {
		ofBare := "-"
		if baseline > 0 {
			ofBare = fmt.Sprintf("%.1f%%", 100*r.rps/baseline)
		}
		vsVault := multiple(r.rps, byName[r.vs].rps)
		if vsVault != "-" {
			vsVault += roundSpread(r, byName[r.vs])
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.2f%%\t%s\t%s\t%s\t\n", r.name, r.requests, r.rps,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.success*100, ofBare, vsVault, multiple(r.rps, byName[r.vsFile].rps))
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
