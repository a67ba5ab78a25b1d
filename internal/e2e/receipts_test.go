package e2e

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

// receiptedWrite is a write the gateway answered: its request id, and the
// version it created (0 when refused).
type receiptedWrite struct {
	id      string
	version int64
}

// TestAuditReceiptsRecoverAfterCrash: with audit receipts (the file
// backend keeps them; gateway/receipts.go) a write's records reach the log
// without an fsync of their own, so a machine that loses power may lose
// them from the log's file; the receipt committed with the write must bring
// them back. audit.receipt_sync is an hour, so no receipt is forgotten
// during the run; the gateway is SIGKILLed mid write storm, and the audit
// log is then emptied: every record that was not synced is gone, and more.
// After the restart, every write the gateway answered with success has its
// intent and its outcome (with its version) in the log, marked recovered,
// no write that was refused or never answered is recorded as a success it
// was not, and the canary value is nowhere. A clean stop then forgets the
// receipts: the next start recovers nothing.
func TestAuditReceiptsRecoverAfterCrash(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, testenv.Options{Dir: dir, AuditReceiptSync: "1h"})
	tok := srv.Token("admin")
	pids := srv.WaitPlugins(t, 1, 10*time.Second)
	canary := randomCanary(t)
	const names = 8
	for i := range names {
		r := srv.Do(t, "POST", "/v1/projects/default/secrets", tok, map[string]any{"name": fmt.Sprint("s", i), "data": map[string]string{"k": canary}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	}

	var mu sync.Mutex
	var acked, refused []receiptedWrite
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var r *testenv.Response
				var err error
				if i%5 == 4 {
					// A create of a name that exists: refused, no receipt.
					r, err = srv.Try("POST", "/v1/projects/default/secrets", tok, map[string]any{"name": fmt.Sprint("s", g%names), "data": map[string]string{"k": canary}})
				} else {
					r, err = srv.Try("PUT", fmt.Sprintf("/v1/projects/default/secrets/s%d", (g+i)%names), tok, map[string]any{"data": map[string]string{"k": canary, "i": fmt.Sprint(g, "-", i)}})
				}
				if err != nil {
					return // the gateway is gone: this write was never answered
				}
				id := r.Header.Get("X-Request-Id")
				mu.Lock()
				switch r.Status {
				case http.StatusOK:
					v, perr := strconv.ParseInt(strings.Trim(r.Header.Get("ETag"), `"`), 10, 64)
					if perr == nil {
						acked = append(acked, receiptedWrite{id: id, version: v})
					}
				case http.StatusConflict:
					refused = append(refused, receiptedWrite{id: id})
				}
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, syscall.Kill(srv.PID(), syscall.SIGKILL), "SIGKILL the gateway mid-storm")
	srv.Wait(t, 10*time.Second)
	close(stop)
	wg.Wait()
	require.GreaterOrEqual(t, len(acked), 100, "the storm must have acknowledged writes before the kill")
	require.NotEmpty(t, refused, "the storm must have refused creates of existing names")
	// The plugin dies with the gateway (and releases the database's lock).
	for _, pid := range pids {
		require.Eventually(t, func() bool { return !testenv.Alive(pid) }, 10*time.Second, 10*time.Millisecond, "plugin %d outlived the gateway", pid)
	}

	// A power loss takes what was not synced; this takes the whole file.
	require.NoError(t, os.Truncate(srv.AuditPath, 0))

	again := testenv.StartConfig(t, srv.ConfigPath, nil)
	again.AuditPath = srv.AuditPath
	recs := again.AuditRecords(t)
	type phases struct {
		intent, outcome bool
		version         float64
		outcomes        []string
	}
	byID := map[string]*phases{}
	recovered := 0
	for _, rec := range recs {
		id, _ := rec["request_id"].(string)
		if byID[id] == nil {
			byID[id] = &phases{}
		}
		p := byID[id]
		if rec["recovered"] == true {
			recovered++
		}
		switch rec["phase"] {
		case "intent":
			p.intent = true
		case "outcome":
			p.outcome = true
			p.version, _ = rec["version"].(float64)
			o, _ := rec["outcome"].(string)
			p.outcomes = append(p.outcomes, o)
		}
	}
	for _, a := range acked {
		p := byID[a.id]
		require.NotNil(t, p, "acknowledged write %s has no audit record after the crash", a.id)
		require.True(t, p.intent, "acknowledged write %s: intent record recovered", a.id)
		require.True(t, p.outcome, "acknowledged write %s: outcome record recovered", a.id)
		require.Equal(t, []string{"ok"}, p.outcomes, "acknowledged write %s", a.id)
		require.Equal(t, float64(a.version), p.version, "acknowledged write %s: the outcome names the version it created", a.id)
	}
	for _, r := range refused {
		if p := byID[r.id]; p != nil {
			require.NotContains(t, p.outcomes, "ok", "refused write %s recovered as a success", r.id)
		}
	}
	require.GreaterOrEqual(t, recovered, 2*len(acked), "every acknowledged write's two records come back marked recovered")
	require.Contains(t, again.Stderr(), "audit receipts recovered")
	metrics := string(again.Do(t, "GET", "/metrics", "", nil).Body)
	m := regexp.MustCompile(`secretgate_audit_receipts_recovered_total\{backend="local"\} (\d+)`).FindStringSubmatch(metrics)
	require.NotNil(t, m, "the recovered receipts are counted")
	n, _ := strconv.Atoi(m[1])
	require.GreaterOrEqual(t, n, len(acked))
	require.NotContains(t, again.Audit(), canary)
	require.NotContains(t, again.Stderr(), canary)

	// Still serving, and a clean stop forgets what it kept: the next start
	// recovers nothing more.
	require.Equal(t, http.StatusOK, again.Do(t, "PUT", "/v1/projects/default/secrets/s0", tok, map[string]any{"data": map[string]string{"k": "after"}}).Status)
	require.NoError(t, again.Signal(syscall.SIGTERM))
	require.Equal(t, 0, again.Wait(t, 20*time.Second))
	before := len(recs) + 2
	third := testenv.StartConfig(t, srv.ConfigPath, nil)
	third.AuditPath = srv.AuditPath
	require.Len(t, third.AuditRecords(t), before, "a clean stop must leave no receipt to recover")
	require.NotContains(t, third.Stderr(), "audit receipts recovered")
	t.Logf("%d acknowledged and %d refused writes; %d records recovered after SIGKILL and an emptied log", len(acked), len(refused), recovered)
}
