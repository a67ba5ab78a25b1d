package main

// The postgres scenario: the GET, LIST and PUT load of the file backend's
// scenarios, with the same attacker, clients, duration and secrets, against
// a second gateway whose project is on the postgres backend, backed by a
// PostgreSQL 15 that internal/pgtest starts (fsync and synchronous_commit
// on). Each postgres row runs right after its file backend row and is
// printed as a multiple of it.
//
// The gateway runs from a configuration file shaped like --dev's (audit
// log, one backend, project "default", one admin subject), so that the
// backend is the only difference between the two.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/internal/pgtest"
)

const (
	pgGetName  = "postgres: " + getName
	pgListName = "postgres: " + listName
	pgPutName  = "postgres: PUT (new version, commit)"
	// pgDatabase holds the backend's schema (and, for the replicas, the
	// shared state's).
	pgDatabase = "secretgate"
	// pgProject is the project of the postgres gateways, as --dev's.
	pgProject = "default"
	// stateSchema is the schema of the replicas' shared gateway state.
	stateSchema = "secretgate_state"
)

// launchPostgres starts a PostgreSQL server with an empty database
// pgDatabase and returns it with that database's DSN. When PostgreSQL is
// not installed and the scenario is not required, it prints why the
// scenario is skipped and returns skipped; required, that is an error.
func launchPostgres(w io.Writer, scenario string, required bool) (pg *pgtest.Server, dsn string, skipped bool, err error) {
	pg, err = pgtest.Launch()
	switch {
	case errors.Is(err, pgtest.ErrNotInstalled) && !required:
		fmt.Fprintf(w, "\n%s scenario skipped: %v\n", scenario, err)
		return nil, "", true, nil
	case err != nil:
		return nil, "", false, fmt.Errorf("%s scenario: %w", scenario, err)
	}
	// On an interrupt the handler removes the directory and the server
	// dies of its parent death signal when the load test exits.
	trackDir(pg.Dir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pg.Exec(ctx, "postgres", "CREATE DATABASE "+pgDatabase); err != nil {
		pg.Stop()
		return nil, "", false, fmt.Errorf("%s scenario: creating database %s: %w", scenario, pgDatabase, err)
	}
	return pg, pg.DSN(pgDatabase), false, nil
}

// writePostgresConfig writes, into dir, the configuration of a gateway
// serving pgProject from the postgres backend at dsn (schema "secretgate",
// key keyFile shared by every replica), its audit log in dir, one admin
// subject holding token.
func writePostgresConfig(dir, dsn, keyFile, token string, sharedState bool) (string, error) {
	sum := sha256.Sum256([]byte(token))
	cfg := map[string]any{
		"listen": "127.0.0.1:0",
		"audit":  map[string]string{"path": filepath.Join(dir, "audit.log")},
		"backends": []map[string]any{{"name": "pg", "plugin": "postgres", "settings": map[string]string{
			"dsn": dsn, "key_file": keyFile, "schema": "secretgate",
		}}},
		"projects": []map[string]string{{"name": pgProject, "backend": "pg"}},
		"subjects": []map[string]string{{"name": "loadtest", "token_sha256": hex.EncodeToString(sum[:])}},
		"bindings": []map[string]string{{"subject": "loadtest", "project": "*", "role": "admin"}},
	}
	if sharedState {
		cfg["state"] = map[string]any{"postgres": map[string]string{"dsn": dsn, "schema": stateSchema}}
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "secretgate.yaml")
	return path, os.WriteFile(path, data, 0o600)
}

// startPostgresGateway starts a gateway from writePostgresConfig in dir
// (created), logging into dir.
func startPostgresGateway(bin, dir, dsn, keyFile, token string, sharedState bool) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfgPath, err := writePostgresConfig(dir, dsn, keyFile, token, sharedState)
	if err != nil {
		return nil, err
	}
	return startGateway(bin, dir, gatewayEnv(), "--config", cfgPath)
}

// loadAuth is the headers of every request of the load scenarios.
func loadAuth(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
}

// seedSecrets creates secrets in project through the gateway at base.
func seedSecrets(base, project string, auth http.Header, secrets []loadSecret) error {
	for _, s := range secrets {
		body, err := json.Marshal(map[string]any{"name": s.name, "data": s.data})
		if err != nil {
			return err
		}
		if err := do(http.MethodPost, base+"/v1/projects/"+project+"/secrets", auth, string(body)); err != nil {
			return fmt.Errorf("seed %s: %w", s.name, err)
		}
	}
	return nil
}

// loadTargets are the GET and PUT targets of secrets on the gateway at
// base, one per secret, and its LIST of listSize.
func loadTargets(base, project string, auth http.Header, secrets []loadSecret) (gets, puts, list []vegeta.Target) {
	for _, s := range secrets {
		url := base + "/v1/projects/" + project + "/secrets/" + s.name
		gets = append(gets, vegeta.Target{Method: http.MethodGet, URL: url, Header: auth})
		puts = append(puts, vegeta.Target{Method: http.MethodPut, URL: url, Header: auth, Body: s.put})
	}
	list = []vegeta.Target{{Method: http.MethodGet, URL: fmt.Sprintf("%s/v1/projects/%s/secrets?page_size=%d", base, project, listSize), Header: auth}}
	return gets, puts, list
}

// pgLoad is the postgres scenario's server and gateway, seeded, with its
// targets.
type pgLoad struct {
	pg               *pgtest.Server
	gw               *gateway
	gets, puts, list []vegeta.Target
}

// startPostgresLoad starts PostgreSQL and a gateway on it in dir, seeds
// secrets and returns the targets of the first nSecrets of them. It returns
// nil, nil when PostgreSQL is missing and the scenario is not required
// (after printing why). The caller stops it; on error it is stopped.
func startPostgresLoad(w io.Writer, bin, dir string, secrets []loadSecret, nSecrets int, required bool) (_ *pgLoad, err error) {
	pg, dsn, skipped, err := launchPostgres(w, "postgres", required)
	if skipped || err != nil {
		return nil, err
	}
	l := &pgLoad{pg: pg}
	defer func() {
		if err != nil {
			l.stop()
		}
	}()
	token := "sg_loadtest_" + randomHex(16)
	if l.gw, err = startPostgresGateway(bin, filepath.Join(dir, "postgres"), dsn, filepath.Join(dir, "postgres.key"), token, false); err != nil {
		return nil, fmt.Errorf("postgres scenario: %w", err)
	}
	auth := loadAuth(token)
	if err := seedSecrets(l.gw.base, pgProject, auth, secrets); err != nil {
		return nil, fmt.Errorf("postgres scenario: %w%s", err, l.gw.logTail())
	}
	l.gets, l.puts, l.list = loadTargets(l.gw.base, pgProject, auth, secrets[:nSecrets])
	return l, nil
}

// stop stops the gateway, then PostgreSQL. Safe on a partly started load.
func (l *pgLoad) stop() {
	if l.gw != nil {
		l.gw.stop()
	}
	if l.pg != nil {
		l.pg.Stop()
	}
}

// load returns the run of the postgres row name (pgGetName, pgListName or
// pgPutName), its result compared with the file backend's row; nil on a
// nil load, whose steps do not run. The postgres gateway has no read cache,
// so its GET is compared with the file backend's uncached GET.
func (l *pgLoad) load(name string, duration time.Duration, workers uint64) func() (result, error) {
	if l == nil {
		return nil
	}
	targets, vsFile := l.gets, getNoCacheName
	switch name {
	case pgListName:
		targets, vsFile = l.list, listName
	case pgPutName:
		targets, vsFile = l.puts, putName
	}
	return func() (result, error) {
		r := attack(scenario{name, targets}, duration, workers)
		r.vsFile = vsFile
		return r, nil
	}
}

// multiple formats rps as a multiple of ref, "-" without a reference.
func multiple(rps, ref float64) string {
	if ref <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", rps/ref)
}
