package main

// The watchers scenario: N concurrent event-stream watchers
// (GET /v1/projects/{p}/events) on one real gateway, measuring
//   - memory per watcher: the gateway's RSS (VmRSS) with every watcher
//     connected and idle, minus its RSS before, divided by N;
//   - fan-out latency: for each of K writes (PUT through the gateway), the
//     time from the write's acknowledgement to the moment each watcher has
//     parsed its event, over all watcher×write samples;
//   - backend calls caused by watchers, counted by the counting plugin
//     (countplugin.go): the calls made while the watchers connect and idle,
//     plus those of the K measured writes minus those of K identical writes
//     made before any watcher existed.
//
// The load test and the gateway share the machine: a watcher's latency
// includes the load test's own scheduling of 10,000 reading goroutines.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	watchProject   = "watch"
	countedBackend = "counted"
	fanoutSecret   = "fanout"
	calibSecret    = "calib"
	// watcherFDHeadroom: descriptors beyond one per watcher, for the load
	// test's HTTP clients, pipes and files (and, in the gateway, the plugin
	// connection, the audit log, the listener).
	watcherFDHeadroom = 512
	// fanoutTimeout bounds the wait for one write's event at every watcher.
	fanoutTimeout = 60 * time.Second
	// writeSpacing separates a write from the end of the previous fan-out,
	// so that each write is measured on its own.
	writeSpacing = 200 * time.Millisecond
	// Memory targets and latency targets of issue 14.
	targetKiBPerWatcher = 32
	targetP99           = 500 * time.Millisecond
)

func runWatchers(w io.Writer, bin, dir string, n, writes int) error {
	load := loadAverage()
	need := n + watcherFDHeadroom
	soft, hard, err := raiseNoFile()
	if err != nil {
		return err
	}
	if soft < uint64(need) {
		return fmt.Errorf("watchers: %d watchers need %d open files in the load test, and its RLIMIT_NOFILE hard limit is %d: raise the hard limit (ulimit -Hn as root, limits.conf, or LimitNOFILE= of the service) or pass a smaller -watchers", n, need, hard)
	}

	wdir := filepath.Join(dir, "watchers")
	if err := os.MkdirAll(wdir, 0o700); err != nil {
		return err
	}
	token := "sg_loadtest_" + randomHex(16)
	cfgPath, err := writeWatchersConfig(wdir, token)
	if err != nil {
		return err
	}
	g, err := startGateway(bin, wdir, append(gatewayEnv(), countPluginEnv+"=1"), "--config", cfgPath)
	if err != nil {
		return err
	}
	defer g.stop()
	pid := g.cmd.Process.Pid
	// Go raises its soft limit to the hard one at start; check that the
	// gateway did, rather than find out from accept errors.
	gwSoft, err := openFilesLimit(pid)
	if err != nil {
		return err
	}
	if gwSoft < uint64(need) {
		return fmt.Errorf("watchers: the gateway (pid %d) may open %d files, and %d watchers need %d", pid, gwSoft, n, need)
	}
	counter, err := waitCounter(filepath.Join(wdir, "counts.addr"), 30*time.Second)
	if err != nil {
		return err
	}

	secrets := g.base + "/v1/projects/" + watchProject + "/secrets"
	var meta struct {
		Version int64 `json:"version"`
	}
	for _, name := range []string{calibSecret, fanoutSecret} {
		if _, err := call(context.Background(), "POST", secrets, token, fmt.Appendf(nil, `{"name":%q,"data":{"k":%q}}`, name, randomHex(16)), &meta); err != nil {
			return fmt.Errorf("seed %s: %w", name, err)
		}
	}
	base := meta.Version // of fanoutSecret
	put := func(name string) (int64, error) {
		_, err := call(context.Background(), "PUT", secrets+"/"+name, token, fmt.Appendf(nil, `{"data":{"k":%q}}`, randomHex(16)), &meta)
		return meta.Version, err
	}

	// Calibration: what K writes cost the backend without any watcher.
	snap := func() (callSnap, error) { return snapCalls(counter, g.base) }
	c0, err := snap()
	if err != nil {
		return err
	}
	for range writes {
		if _, err := put(calibSecret); err != nil {
			return fmt.Errorf("calibration write: %w", err)
		}
		time.Sleep(writeSpacing)
	}
	c1, err := snap()
	if err != nil {
		return err
	}
	if d := callDelta(c0.plugin, c1.plugin); d["Write"] < int64(writes) {
		// The count would then prove nothing about the watchers.
		return fmt.Errorf("watchers: the counting plugin saw %d Write calls for %d writes", d["Write"], writes)
	}

	time.Sleep(time.Second)
	rssBefore, err := sampleRSS(pid)
	if err != nil {
		return err
	}
	c2, err := snap()
	if err != nil {
		return err
	}
	f := newFanout(n, writes, fanoutSecret, base)
	defer f.close()
	connectStart := time.Now()
	if err := f.connect(strings.TrimPrefix(g.base, "http://"), watchProject, token); err != nil {
		return fmt.Errorf("watchers: %w%s", err, g.logTail())
	}
	connectTime := time.Since(connectStart)
	// Idle: let the connections settle before measuring.
	time.Sleep(2 * time.Second)
	rssAfter, err := sampleRSS(pid)
	if err != nil {
		return err
	}
	c3, err := snap()
	if err != nil {
		return err
	}

	gwThreads, err := threads(pid)
	if err != nil {
		return err
	}
	gwCPU0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	selfCPU0, err := cpuTime(os.Getpid())
	if err != nil {
		return err
	}
	ack, sent := make([]int64, writes), make([]int64, writes)
	for k := range writes {
		time.Sleep(writeSpacing)
		sent[k] = f.now()
		v, err := put(fanoutSecret)
		ack[k] = f.now()
		if err != nil {
			return fmt.Errorf("write %d: %w", k+1, err)
		}
		if v != base+int64(k)+1 {
			return fmt.Errorf("write %d made version %d, want %d (someone else writing?)", k+1, v, base+int64(k)+1)
		}
		select {
		case <-f.all[k]:
		case <-time.After(fanoutTimeout):
			return fmt.Errorf("watchers: write %d reached %d of %d watchers within %s (%d streams lost)", k+1, f.got[k].Load(), n, fanoutTimeout, f.lost.Load())
		}
	}
	gwCPU1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	selfCPU1, err := cpuTime(os.Getpid())
	if err != nil {
		return err
	}
	c4, err := snap()
	if err != nil {
		return err
	}
	f.close()
	if p := f.firstErr.Load(); p != nil {
		return fmt.Errorf("watchers: %w", *p)
	}
	lat, missing := f.latencies(ack)
	if missing > 0 {
		return fmt.Errorf("watchers: %d of %d events missing", missing, n*writes)
	}
	latFromSend, _ := f.latencies(sent)

	rep := watchersReport{
		n: n, writes: writes, pid: pid, gwFiles: gwSoft, connectTime: connectTime,
		rssBefore: rssBefore, rssAfter: rssAfter, lat: lat, latFromSend: latFromSend,
		gwThreads: gwThreads, gwCPU: gwCPU1 - gwCPU0, selfCPU: selfCPU1 - selfCPU0, load: load,
		calib: callDelta(c0.plugin, c1.plugin), idle: callDelta(c2.plugin, c3.plugin), during: callDelta(c3.plugin, c4.plugin),
	}
	rep.caused, rep.causedTotal = causedCalls(rep.calib, rep.idle, rep.during)
	if c0.gatewayOK {
		rep.gwCaused, rep.gwCausedTotal = causedCalls(callDelta(c0.gateway, c1.gateway), callDelta(c2.gateway, c3.gateway), callDelta(c3.gateway, c4.gateway))
	}
	rep.gwMetric = c0.gatewayOK
	reportWatchers(w, rep)
	return nil
}

// causedCalls is what watchers cost the backend: the calls made while they
// connected and idled, plus those of the writes made while they watched
// minus those of as many writes made without them. Ping is left out: the
// host's health check, once a second whatever the load.
func causedCalls(calib, idle, during map[string]int64) (map[string]int64, int64) {
	caused := map[string]int64{}
	var total int64
	for _, m := range backendMethods {
		if m == "Ping" {
			continue
		}
		caused[m] = idle[m] + during[m] - calib[m]
		total += caused[m]
	}
	return caused, total
}

// callSnap is the backend calls so far, counted on both sides of the plugin
// boundary: by the counting plugin, and by the gateway's own
// secretgate_backend_calls_total when it has one (gatewayOK).
type callSnap struct {
	plugin, gateway map[string]uint64
	gatewayOK       bool
}

func snapCalls(counter *backendCounter, base string) (callSnap, error) {
	var s callSnap
	var err error
	if s.plugin, err = counter.read(); err != nil {
		return s, err
	}
	s.gateway, s.gatewayOK, err = gatewayCalls(base, countedBackend)
	return s, err
}

type watchersReport struct {
	n, writes           int
	pid                 int
	gwFiles             uint64
	connectTime         time.Duration
	rssBefore, rssAfter rssSample
	lat                 []time.Duration
	latFromSend         []time.Duration
	calib, idle, during map[string]int64
	caused              map[string]int64
	causedTotal         int64
	gwMetric            bool
	gwCaused            map[string]int64
	gwCausedTotal       int64
	gwThreads           int
	gwCPU, selfCPU      time.Duration // during the measured writes
	load                string        // load average at the start
}

func reportWatchers(w io.Writer, r watchersReport) {
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration { return percentile(r.lat, p) }
	perWatcher := float64(r.rssAfter.median-r.rssBefore.median) / float64(r.n)
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISSED"
	}
	early := sort.Search(len(r.lat), func(i int) bool { return r.lat[i] >= 0 })

	fmt.Fprintf(w, "\nevent-stream watchers: %d on one gateway (pid %d, may open %d files), connected in %s in batches of %d; %d writes (PUT) through the gateway, %s apart\n",
		r.n, r.pid, r.gwFiles, r.connectTime.Round(time.Millisecond), connectBatch, r.writes, writeSpacing)
	fmt.Fprintf(w, "load test and gateway share %d CPUs (load average %s at the start): latencies include the load test's own scheduling of its %d readers\n\n", runtime.NumCPU(), r.load, r.n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tmeasured\ttarget\t\t")
	fmt.Fprintf(tw, "memory per watcher (RSS delta / N)\t%.1f KiB\t< %d KiB\t%s\t\n", perWatcher, targetKiBPerWatcher, verdict(perWatcher < targetKiBPerWatcher))
	fmt.Fprintf(tw, "fan-out latency p50 (ack to parsed event)\t%s\t\t\t\n", pct(0.50).Round(time.Microsecond))
	fmt.Fprintf(tw, "fan-out latency p99\t%s\t< %s\t%s\t\n", pct(0.99).Round(time.Microsecond), targetP99, verdict(pct(0.99) < targetP99))
	fmt.Fprintf(tw, "fan-out latency max\t%s\t\t\t\n", r.lat[len(r.lat)-1].Round(time.Microsecond))
	fmt.Fprintf(tw, "backend calls caused by watchers\t%d\t0\t%s\t\n", r.causedTotal, verdict(r.causedTotal == 0))
	tw.Flush()
	fmt.Fprintf(w, "\n  gateway RSS: %s before, %s with %d watchers idle (median of %d samples, %s apart)\n",
		r.rssBefore, r.rssAfter, r.n, rssSamples, rssInterval)
	fmt.Fprintf(w, "  gateway threads with %d watchers: %d; CPU during the %d fan-outs: gateway %s, load test %s\n", r.n, r.gwThreads, r.writes, r.gwCPU, r.selfCPU)
	fmt.Fprintf(w, "  latency samples: %d (watchers × writes); %d parsed before the writer had its response (the gateway publishes a write before its audit record is synced and the response sent)\n", len(r.lat), early)
	slices.Sort(r.latFromSend)
	fmt.Fprintf(w, "  from the PUT being sent instead of its response: p50 %s, p99 %s, max %s\n",
		percentile(r.latFromSend, 0.50).Round(time.Microsecond), percentile(r.latFromSend, 0.99).Round(time.Microsecond), r.latFromSend[len(r.latFromSend)-1].Round(time.Microsecond))
	fmt.Fprintf(w, "  backend calls (counting plugin, by method; Ping is the host's health check every second):\n")
	fmt.Fprintf(w, "    %-34s %s\n", fmt.Sprintf("%d writes, no watcher:", r.writes), formatCalls(r.calib))
	fmt.Fprintf(w, "    %-34s %s\n", "watchers connecting and idle:", formatCalls(r.idle))
	fmt.Fprintf(w, "    %-34s %s\n", fmt.Sprintf("%d writes, %d watchers:", r.writes, r.n), formatCalls(r.during))
	fmt.Fprintf(w, "    caused by watchers (idle + with watchers - no watcher, Ping excluded): %s\n", formatCalls(r.caused))
	if r.gwMetric {
		fmt.Fprintf(w, "    the same from the gateway's secretgate_backend_calls_total: %d (%s)\n", r.gwCausedTotal, formatCalls(r.gwCaused))
	} else {
		fmt.Fprintf(w, "    (this gateway exports no secretgate_backend_calls_total: counted by the plugin only)\n")
	}
	fmt.Fprintf(w, "    the counted backend has watch_poll_interval 0, the default of the file backend it stands for (never polled)\n")
}

// percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func formatCalls(m map[string]int64) string {
	var parts []string
	for _, k := range backendMethods {
		if v, ok := m[k]; ok && v != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// writeWatchersConfig writes the scenario's gateway configuration: one
// project on the file backend served by the counting plugin (this
// executable, pinned by its SHA-256 as every external plugin must be), one
// admin subject holding token. watch_poll_interval is 0: the counted
// backend stands for the file backend, which is not polled (an external
// plugin otherwise is, every 60 s).
func writeWatchersConfig(dir, token string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	exe, err := os.ReadFile(self)
	if err != nil {
		return "", err
	}
	exeSum := sha256.Sum256(exe)
	tokSum := sha256.Sum256([]byte(token))
	type backend struct {
		Name     string            `yaml:"name"`
		Plugin   string            `yaml:"plugin"`
		SHA256   string            `yaml:"sha256"`
		Settings map[string]string `yaml:"settings"`
		// WatchPollInterval is quoted: a bare 0 would be an integer.
		WatchPollInterval string `yaml:"watch_poll_interval"`
	}
	b := backend{Name: countedBackend, Plugin: self, SHA256: hex.EncodeToString(exeSum[:]), WatchPollInterval: "0", Settings: map[string]string{
		"path":               filepath.Join(dir, "counted.db"),
		"key_file":           filepath.Join(dir, "counted.key"),
		countAddrFileSetting: filepath.Join(dir, "counts.addr"),
	}}
	cfg := map[string]any{
		"listen":   "127.0.0.1:0",
		"audit":    map[string]string{"path": filepath.Join(dir, "audit.log")},
		"backends": []backend{b},
		"projects": []map[string]string{{"name": watchProject, "backend": countedBackend}},
		"subjects": []map[string]string{{"name": "loadtest", "token_sha256": hex.EncodeToString(tokSum[:])}},
		"bindings": []map[string]string{{"subject": "loadtest", "project": "*", "role": "admin"}},
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "secretgate.yaml")
	return path, os.WriteFile(path, data, 0o600)
}
