package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

// TestMigrateResumesAfterKill: the gateway is SIGKILLed in the middle of a
// migration; started again on the same configuration it resumes the
// migration from its journal, keeps the project read-only until the copy is
// done, finishes it without duplicating a version, and switches.
func TestMigrateResumesAfterKill(t *testing.T) {
	opts := srcDstOptions(t)
	srv := testenv.Start(t, opts)
	admin := srv.Token("admin")
	canary := randomCanary(t)

	const n = 400
	want := seedForResume(t, srv, admin, n, canary)

	// One worker makes the copy last long enough to be cut.
	r := srv.Do(t, http.MethodPost, "/v1/migrations", admin, map[string]any{"source": "src", "target": "dst", "projects": []string{"payments"},
		"versions": "all", "on_conflict": "fail", "switch": true, "workers": 1})
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	var started struct{ ID string }
	r.JSON(t, &started)
	var rep migrationReport
	require.Eventually(t, func() bool {
		srv.Do(t, http.MethodGet, "/v1/migrations/"+started.ID, admin, nil).JSON(t, &rep)
		return rep.Copied >= 10 || rep.State != "running"
	}, 30*time.Second, 2*time.Millisecond)
	require.Equal(t, "running", rep.State, "the migration ended before it could be interrupted: %+v", rep)
	late := srv.CLI(t, admin, "", "secret", "update", "r001", "value=late", "-p", "payments")
	require.Equal(t, 8, late.Code, "a write while the project migrates: stdout %s stderr %s", late.Stdout, late.Stderr)
	require.Contains(t, late.Stderr, "migration_in_progress")
	plugins := srv.PluginPIDs()
	srv.Kill()
	for _, pid := range plugins {
		require.Eventually(t, func() bool { return !testenv.Alive(pid) }, 10*time.Second, 20*time.Millisecond, "plugin %d outlived the gateway", pid)
	}
	journal, err := os.ReadFile(filepath.Join(opts.Dir, "migrations.json"))
	require.NoError(t, err)
	require.Contains(t, string(journal), started.ID)
	require.NotContains(t, string(journal), canary)
	t.Logf("killed at %d of %d copied", rep.Copied, n)

	srv2 := testenv.Start(t, opts)
	admin = srv2.Token("admin")
	var reports []string
	for {
		g := srv2.Do(t, http.MethodGet, "/v1/migrations/"+started.ID, admin, nil)
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
		reports = append(reports, string(g.Body))
		g.JSON(t, &rep)
		if rep.State != "running" {
			break
		}
		// Resumed, the project is read-only again until the copy is done.
		w := srv2.Do(t, http.MethodPut, pay+"/r001", admin, map[string]any{"data": map[string]string{"value": "late"}})
		if w.Status != http.StatusConflict {
			// Only the switch may have happened in between.
			srv2.Do(t, http.MethodGet, "/v1/migrations/"+started.ID, admin, nil).JSON(t, &rep)
			require.True(t, rep.Switched, "a write was accepted while the migration copied: %d %s", w.Status, w.Body)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for rep.State == "running" {
		time.Sleep(20 * time.Millisecond)
		srv2.Do(t, http.MethodGet, "/v1/migrations/"+started.ID, admin, nil).JSON(t, &rep)
	}
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	var full struct {
		Resumed int `json:"resumed"`
	}
	require.NoError(t, json.Unmarshal([]byte(reports[len(reports)-1]), &full))
	require.Equal(t, 1, full.Resumed)
	require.Equal(t, n, rep.Total)
	require.Equal(t, n, rep.Copied+rep.Skipped)
	require.Equal(t, rep.Copied, rep.Verified)
	require.NotZero(t, rep.Skipped, "what was copied before the kill is skipped")
	require.True(t, rep.Switched)

	// Every secret reads from dst as it was, and no version was doubled.
	for i, data := range want {
		name := fmt.Sprintf("r%03d", i)
		if name == "r001" {
			continue // may hold the write made after the switch
		}
		g := srv2.Do(t, http.MethodGet, pay+"/"+name, admin, nil)
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
		var sec struct {
			Version int64             `json:"version"`
			Data    map[string]string `json:"data"`
			Labels  map[string]string `json:"labels"`
		}
		g.JSON(t, &sec)
		require.Equal(t, data, sec.Data, name)
		require.Equal(t, fmt.Sprint(i), sec.Labels["i"], name)
		wantVersion := int64(1)
		if i%10 == 0 {
			wantVersion = 3
		}
		require.Equal(t, wantVersion, sec.Version, "%s: versions copied once each, numbers kept", name)
	}
	require.Equal(t, 0, srv2.Stop(t))
	for _, text := range append(reports, srv.Stdout(), srv.Stderr(), srv2.Stdout(), srv2.Stderr(), srv2.Audit()) {
		require.NotContains(t, text, canary)
	}
}

// seedForResume writes n secrets r000.. into payments with 8 clients, every
// tenth with three versions, one holding the canary; it returns each
// secret's latest data.
func seedForResume(t *testing.T, srv *testenv.Server, admin string, n int, canary string) []map[string]string {
	t.Helper()
	want := make([]map[string]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				name := fmt.Sprintf("r%03d", i)
				data := map[string]string{"value": fmt.Sprintf("wert-ß-%d", i)}
				if i == 123 {
					data["canary"] = canary
				}
				r, err := srv.Try(http.MethodPost, pay, admin, map[string]any{"name": name, "data": data, "labels": map[string]string{"i": fmt.Sprint(i)}})
				if err == nil && r.Status != http.StatusCreated {
					err = fmt.Errorf("create %s: %d %s", name, r.Status, r.Body)
				}
				for v := 2; err == nil && i%10 == 0 && v <= 3; v++ {
					data = map[string]string{"value": fmt.Sprintf("wert-%d-v%d", i, v)}
					r, err = srv.Try(http.MethodPut, pay+"/"+name, admin, map[string]any{"data": data})
					if err == nil && r.Status != http.StatusOK {
						err = fmt.Errorf("update %s: %d %s", name, r.Status, r.Body)
					}
				}
				if err != nil {
					errs <- err
					return
				}
				want[i] = data
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	return want
}

// TestMigrateCLIWatchesThroughRestart: `secretgate migrate` keeps watching
// while the gateway is killed and started again on the same address and
// configuration, and ends with the resumed migration's report and exit 0.
func TestMigrateCLIWatchesThroughRestart(t *testing.T) {
	srv := testenv.Start(t, srcDstOptions(t))
	admin := srv.Token("admin")
	canary := randomCanary(t)
	const n = 300
	seedForResume(t, srv, admin, n, canary)

	cli := exec.Command(testenv.Binary(t), "migrate", "--from", "src", "--to", "dst", "-p", "payments",
		"--all-versions", "--switch", "--workers", "1", "--poll", "50ms", "-o", "json")
	cli.Env = []string{"SECRETGATE_ADDR=" + srv.URL, "SECRETGATE_TOKEN=" + admin, "PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cli.Stdout, cli.Stderr = &stdout, &stderr
	require.NoError(t, cli.Start())
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()
	t.Cleanup(func() {
		if cli.ProcessState == nil {
			_ = cli.Process.Kill()
			<-exited
		}
	})

	// Kill once the copy is under way, then start again where it listened.
	var list struct {
		Migrations []migrationReport `json:"migrations"`
	}
	require.Eventually(t, func() bool {
		srv.Do(t, http.MethodGet, "/v1/migrations", admin, nil).JSON(t, &list)
		return len(list.Migrations) == 1 && list.Migrations[0].Copied >= 5
	}, 30*time.Second, 2*time.Millisecond)
	require.Equal(t, "running", list.Migrations[0].State)
	plugins := srv.PluginPIDs()
	srv.Kill()
	for _, pid := range plugins {
		require.Eventually(t, func() bool { return !testenv.Alive(pid) }, 10*time.Second, 20*time.Millisecond, "plugin %d outlived the gateway", pid)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv2 := testenv.StartConfig(t, srv.ConfigPath, nil, "--listen", addr)

	select {
	case err := <-exited:
		require.NoError(t, err, "stdout %s\nstderr %s", stdout.String(), stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("migrate did not finish; stderr so far:\n%s", stderr.String())
	}
	var rep struct {
		migrationReport
		Resumed int `json:"resumed"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, list.Migrations[0].ID, rep.ID)
	require.Equal(t, "succeeded", rep.State)
	require.Equal(t, 1, rep.Resumed)
	require.Equal(t, n, rep.Copied+rep.Skipped)
	require.True(t, rep.Switched)
	require.Contains(t, stderr.String(), "the gateway does not answer")
	require.Regexp(t, `(?m)^migration \S+: 300/300 done \(\d+ copied, \d+ skipped, 0 failed\)$`, stderr.String(),
		"off a terminal, a plain line per 100 secrets")

	// The report stays reachable from the CLI after the restart.
	st := srv2.CLI(t, admin, "", "migrate", "status", rep.ID)
	require.Equal(t, 0, st.Code, "stdout %s stderr %s", st.Stdout, st.Stderr)
	require.Regexp(t, `(?m)^state\s+succeeded$`, st.Stdout)
	require.Regexp(t, `(?m)^resumed\s+1 time\(s\) after a gateway restart$`, st.Stdout)
	ls := srv2.CLI(t, admin, "", "migrate", "list")
	require.Equal(t, 0, ls.Code, "stdout %s stderr %s", ls.Stdout, ls.Stderr)
	require.Regexp(t, `(?m)^`+rep.ID+`\s+succeeded\s+src\s+dst\s+payments\s+300/300\s+0\s`, ls.Stdout)
	missing := srv2.CLI(t, admin, "", "migrate", "status", "no-such-migration")
	require.Equal(t, 4, missing.Code, missing.Stderr)

	g := srv2.Do(t, http.MethodGet, pay+"/r123", admin, nil)
	require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
	require.Contains(t, string(g.Body), canary, "served from dst after the switch")
	require.Equal(t, 0, srv2.Stop(t))
	for _, text := range []string{stdout.String(), stderr.String(), srv.Stdout(), srv.Stderr(), srv2.Stdout(), srv2.Stderr(), srv2.Audit()} {
		require.NotContains(t, text, canary)
	}
}
