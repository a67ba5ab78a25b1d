package main

// The migrate scenario: migration throughput of the real gateway, in secrets
// per second, from a file backend to another file backend and from a file
// backend to a real Vault dev server.
//
// It writes its own configuration (backends "src" and "dst" of the file
// plugin and "vault" of the vault plugin; projects "mig-file" and
// "mig-vault", both on "src"), starts Vault (the binary `make testservers`
// builds into .bin/vault) and the gateway, seeds each project through the
// HTTP API, and times POST /v1/migrations up to the final report.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// migrateWriters is the number of concurrent clients seeding a project.
	migrateWriters = 16
	// migrateCopyWorkers is the migration's workers setting (secrets copied
	// at once), passed explicitly: the gateway's default (8) is sized for
	// cloud targets with per-minute write quotas, while between two local
	// backends more concurrent copies share more of each commit's fsyncs.
	migrateCopyWorkers = 32
	// migratePoll is how often the report is polled during a migration.
	migratePoll = 20 * time.Millisecond
	// migrateTimeout bounds one migration, from POST to the final report.
	migrateTimeout = 10 * time.Minute
	// vaultStartTimeout is generous: the 500 MB binary starts slowly on a
	// loaded machine.
	vaultStartTimeout = 90 * time.Second
	// vaultTokenEnv passes the Vault root token to the gateway, which
	// expands ${LOADTEST_VAULT_TOKEN} in the backend settings, so that the
	// token is neither on a command line nor in the config file.
	vaultTokenEnv = "LOADTEST_VAULT_TOKEN"
)

// migrateClient is the HTTP client of the scenario: keep-alive with enough
// idle connections for every writer (the default keeps 2 per host).
var migrateClient = &http.Client{
	Timeout: 60 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        2 * migrateWriters,
		MaxIdleConnsPerHost: 2 * migrateWriters,
		IdleConnTimeout:     30 * time.Second,
	},
}

// migrationReport is the part of GET /v1/migrations/{id} the scenario reads.
type migrationReport struct {
	ID         string            `json:"id"`
	State      string            `json:"state"`
	Total      int               `json:"total"`
	Copied     int               `json:"copied"`
	Skipped    int               `json:"skipped"`
	Failed     int               `json:"failed"`
	Verified   int               `json:"verified"`
	Errors     map[string]string `json:"errors"`
	StartedAt  string            `json:"started_at"`
	FinishedAt string            `json:"finished_at"`
}

// runMigrate runs the migrate scenario with n secrets per migration. bin is
// the secretgate binary, vaultBin the Vault server ("" = SECRETGATE_VAULT_BIN
// or <repo root>/.bin/vault). Everything it starts is stopped before it
// returns.
func runMigrate(w io.Writer, bin, vaultBin string, n int) error {
	dir, err := os.MkdirTemp("", "secretgate-loadtest-migrate-")
	if err != nil {
		return err
	}
	trackDir(dir)
	defer os.RemoveAll(dir)

	fmt.Fprintf(w, "\nmigration run: %d secrets per migration (seeded by %d concurrent writers), versions latest, on_conflict fail, workers %d\n\n",
		n, migrateWriters, migrateCopyWorkers)

	vaultBin, why := findVault(vaultBin)
	var vault *vaultServer
	if why == "" {
		if vault, err = startVault(vaultBin, filepath.Join(dir, "vault")); err != nil {
			return err
		}
		defer vault.stop()
	}

	token := "sg_loadtest_" + randomHex(16)
	cfgPath, err := writeMigrateConfig(dir, token, vault)
	if err != nil {
		return err
	}
	env := gatewayEnv()
	if vault != nil {
		env = append(env, vaultTokenEnv+"="+vault.rootToken)
	}
	gw, err := startGateway(bin, dir, env, "--config", cfgPath)
	if err != nil {
		return err
	}
	defer gw.stop()

	runs := []struct{ label, project, target string }{{"file→file", "mig-file", "dst"}}
	if vault != nil {
		runs = append(runs, struct{ label, project, target string }{"file→vault", "mig-vault", "vault"})
	}
	for _, r := range runs {
		if err := seed(gw.base, token, r.project, n); err != nil {
			return fmt.Errorf("seeding %s: %w%s", r.project, err, gw.logTail())
		}
		rep, elapsed, err := migrate(gw.base, token, "src", r.target, r.project)
		if err != nil {
			return fmt.Errorf("migrate %s: %w%s", r.label, err, gw.logTail())
		}
		fmt.Fprintf(w, "migrate %s  %d secrets  %.2f s  %.0f secrets/s  (copied %d, verified %d, failed %d)\n",
			r.label, rep.Total, elapsed.Seconds(), float64(rep.Total)/elapsed.Seconds(), rep.Copied, rep.Verified, rep.Failed)
		switch {
		case rep.State != "succeeded" || rep.Failed > 0:
			return fmt.Errorf("migrate %s: state %s, %d failed; errors: %s", r.label, rep.State, rep.Failed, firstErrors(rep.Errors, 5))
		case rep.Total != n || rep.Copied != n || rep.Verified != n:
			return fmt.Errorf("migrate %s: want %d secrets copied and verified, report says total %d, copied %d, skipped %d, verified %d",
				r.label, n, rep.Total, rep.Copied, rep.Skipped, rep.Verified)
		}
	}
	if vault == nil {
		fmt.Fprintf(w, "migrate file→vault  skipped: %s\n", why)
	}
	return nil
}

// findVault resolves the Vault binary; why says why there is none.
func findVault(bin string) (path, why string) {
	if bin == "" {
		bin = os.Getenv("SECRETGATE_VAULT_BIN")
	}
	if bin == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			return "", "cannot find the repository root (go env GOMOD) to look for .bin/vault; pass -vault-bin or set SECRETGATE_VAULT_BIN"
		}
		bin = filepath.Join(filepath.Dir(gomod), ".bin", "vault")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", err.Error()
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Sprintf("no Vault server binary at %s (run `make testservers`, which builds internal/testservers/vault into .bin/vault)", abs)
	}
	return abs, ""
}

// gatewayEnv is this process's environment without SECRETGATE_* variables,
// which would override the generated configuration.
func gatewayEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETGATE_") && !strings.HasPrefix(kv, vaultTokenEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// writeMigrateConfig writes the gateway configuration of the scenario into
// dir: file backends src and dst, the vault backend when vault is running,
// projects mig-file and mig-vault on src, one admin subject holding token.
func writeMigrateConfig(dir, token string, vault *vaultServer) (string, error) {
	type backend struct {
		Name     string            `yaml:"name"`
		Plugin   string            `yaml:"plugin"`
		Settings map[string]string `yaml:"settings"`
	}
	type project struct {
		Name    string `yaml:"name"`
		Backend string `yaml:"backend"`
	}
	type subject struct {
		Name        string `yaml:"name"`
		TokenSHA256 string `yaml:"token_sha256"`
	}
	type binding struct {
		Subject string `yaml:"subject"`
		Project string `yaml:"project"`
		Role    string `yaml:"role"`
	}
	type config struct {
		Listen string `yaml:"listen"`
		Audit  struct {
			Path string `yaml:"path"`
		} `yaml:"audit"`
		Backends []backend `yaml:"backends"`
		Projects []project `yaml:"projects"`
		Subjects []subject `yaml:"subjects"`
		Bindings []binding `yaml:"bindings"`
	}
	file := func(name string) backend {
		return backend{Name: name, Plugin: "file", Settings: map[string]string{
			"path":     filepath.Join(dir, name+".db"),
			"key_file": filepath.Join(dir, name+".key"),
		}}
	}
	sum := sha256.Sum256([]byte(token))
	cfg := config{
		Listen:   "127.0.0.1:0",
		Backends: []backend{file("src"), file("dst")},
		Projects: []project{{"mig-file", "src"}},
		Subjects: []subject{{"loadtest", hex.EncodeToString(sum[:])}},
		Bindings: []binding{{"loadtest", "*", "admin"}},
	}
	cfg.Audit.Path = filepath.Join(dir, "audit.log")
	if vault != nil {
		// KV v2 at secret/ is what dev mode mounts; the plugin's defaults
		// (mount secret, prefix secretgate/) fit it.
		cfg.Backends = append(cfg.Backends, backend{Name: "vault", Plugin: "vault", Settings: map[string]string{
			"address": vault.addr,
			"token":   "${" + vaultTokenEnv + "}",
		}})
		cfg.Projects = append(cfg.Projects, project{"mig-vault", "src"})
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "secretgate.yaml")
	return path, os.WriteFile(path, data, 0o600)
}

// seed creates n secrets in project with migrateWriters concurrent clients:
// two small keys and a label each.
func seed(base, token, project string, n int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := make(chan int)
	errs := make(chan error, migrateWriters)
	var wg sync.WaitGroup
	for range migrateWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body, _ := json.Marshal(map[string]any{
					"name":   fmt.Sprintf("mig-%05d", i),
					"data":   map[string]string{"username": fmt.Sprintf("svc-%d", i), "password": randomHex(16)},
					"labels": map[string]string{"team": "loadtest"},
				})
				if _, err := call(ctx, http.MethodPost, base+"/v1/projects/"+project+"/secrets", token, body, nil); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when no writer failed
}

// migrate starts a migration of project from source to target and polls it
// to the end; elapsed runs from the POST to the final report.
func migrate(base, token, source, target, project string) (migrationReport, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), migrateTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]any{
		"source": source, "target": target, "projects": []string{project},
		"versions": "latest", "on_conflict": "fail", "workers": migrateCopyWorkers,
	})
	start := time.Now()
	var started struct {
		ID string `json:"id"`
	}
	status, err := call(ctx, http.MethodPost, base+"/v1/migrations", token, body, &started)
	if err != nil {
		return migrationReport{}, 0, err
	}
	if status != http.StatusAccepted || started.ID == "" {
		return migrationReport{}, 0, fmt.Errorf("POST /v1/migrations: status %d, id %q (want 202 and an id)", status, started.ID)
	}
	for {
		var rep migrationReport
		if _, err := call(ctx, http.MethodGet, base+"/v1/migrations/"+started.ID, token, nil, &rep); err != nil {
			return rep, 0, err
		}
		if rep.State != "running" {
			return rep, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return rep, 0, fmt.Errorf("migration %s still running after %s (copied %d of %d)", started.ID, migrateTimeout, rep.Copied, rep.Total)
		case <-time.After(migratePoll):
		}
	}
}

// call sends a request with the bearer token and decodes a JSON answer into
// out (when not nil); a status of 300 or more is an error.
func call(ctx context.Context, method, url, token string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := migrateClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

func firstErrors(m map[string]string, max int) string {
	if len(m) == 0 {
		return "none reported"
	}
	var parts []string
	for k, v := range m {
		if len(parts) == max {
			parts = append(parts, fmt.Sprintf("(%d more)", len(m)-max))
			break
		}
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, "; ")
}
