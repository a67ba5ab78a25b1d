package e2e

// Helpers of replicas_test.go: several real gateway processes serving the
// same projects from one PostgreSQL.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/internal/pgtest"
	"github.com/secretgate/secretgate/internal/testenv"
)

// startPostgres starts n PostgreSQL servers at once, while the gateway
// binary builds: on a loaded machine each initdb takes seconds.
func startPostgres(t *testing.T, n int) []*pgtest.Server {
	t.Helper()
	pgtest.BinDir(t) // skips (fails under CI) as pgtest.Start does
	type launched struct {
		s   *pgtest.Server
		err error
	}
	ch := make(chan launched, n)
	for range n {
		go func() {
			s, err := pgtest.Launch()
			ch <- launched{s, err}
		}()
	}
	testenv.Binary(t)
	var out []*pgtest.Server
	var errs []error
	for range n {
		l := <-ch
		if l.s != nil {
			t.Cleanup(l.s.Stop)
			out = append(out, l.s)
		}
		errs = append(errs, l.err)
	}
	require.NoError(t, errors.Join(errs...))
	return out
}

// replicaSpec is what every replica of a set is configured with.
type replicaSpec struct {
	storageDSN string
	// backends are postgres backends, each named after its schema; project
	// payments is bound to the first.
	backends []string
	// stateDSN is the state section's database; "" leaves the section out
	// (each replica keeps its routing and journal in local files).
	stateDSN string
	lease    time.Duration
}

// replicas is a set of gateways with identical configurations but for
// their audit files, started from their own directories.
type replicas struct {
	spec  replicaSpec
	token string // the admin's, the same on every replica
	keys  string // the KEK files, shared by all replicas
	dirs  []string
	srv   []*testenv.Server
	// every process ever started, killed and restarted ones included, for
	// the final look through the logs
	all []*testenv.Server
}

// startReplicas configures n replicas and starts them one after the other
// (the first creates the schemas and the key files the others then use).
func startReplicas(t *testing.T, n int, spec replicaSpec) *replicas {
	t.Helper()
	rs := &replicas{spec: spec, token: testenv.NewToken(), keys: t.TempDir()}
	// Runs after the replicas stopped, before their directories go.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, s := range rs.all {
			t.Logf("replica %s stderr (%s):\n%s", s.URL, s.StderrPath, lastLines(s.Stderr(), 40))
		}
	})
	for i := range n {
		rs.dirs = append(rs.dirs, t.TempDir())
		rs.writeConfig(t, i)
		rs.srv = append(rs.srv, nil)
		rs.start(t, i)
	}
	return rs
}

func (rs *replicas) configPath(i int) string { return filepath.Join(rs.dirs[i], "secretgate.yaml") }

func (rs *replicas) writeConfig(t *testing.T, i int) {
	t.Helper()
	var backends []map[string]any
	for _, schema := range rs.spec.backends {
		backends = append(backends, map[string]any{
			"name":   schema,
			"plugin": "postgres",
			"settings": map[string]string{
				"dsn": rs.spec.storageDSN, "schema": schema,
				"key_file": filepath.Join(rs.keys, schema+".key"), "max_versions": "0",
			},
			// Polling would let a replica find another's writes by
			// itself; off, an event can only come through the state.
			"watch_poll_interval": "0",
		})
	}
	cfg := map[string]any{
		"listen":   "127.0.0.1:0",
		"audit":    map[string]string{"path": filepath.Join(rs.dirs[i], "audit.log")},
		"backends": backends,
		"projects": []map[string]string{{"name": "payments", "backend": rs.spec.backends[0]}},
		"subjects": []map[string]string{{"name": "admin", "token_sha256": testenv.TokenSHA256(rs.token)}},
		"bindings": []map[string]string{{"subject": "admin", "project": "*", "role": "admin"}},
	}
	if rs.spec.stateDSN != "" {
		cfg["state"] = map[string]any{"postgres": map[string]string{"dsn": rs.spec.stateDSN, "lease": rs.spec.lease.String()}}
	}
	data, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rs.configPath(i), data, 0o600))
}

// start starts replica i (again) from its configuration.
func (rs *replicas) start(t *testing.T, i int) *testenv.Server {
	t.Helper()
	s := testenv.StartConfig(t, rs.configPath(i), nil)
	s.AuditPath = filepath.Join(rs.dirs[i], "audit.log")
	rs.srv[i] = s
	rs.all = append(rs.all, s)
	return s
}

// restartAll stops the live replicas and starts every one again.
func (rs *replicas) restartAll(t *testing.T) {
	t.Helper()
	for _, s := range rs.srv {
		if !s.Exited() {
			require.Equal(t, 0, s.Stop(t), "stderr:\n%s", s.Stderr())
		}
	}
	for i := range rs.srv {
		rs.start(t, i)
	}
}

// requireNoCanary looks for canary in every replica's output and audit file.
func (rs *replicas) requireNoCanary(t *testing.T, canary string) {
	t.Helper()
	for _, s := range rs.all {
		require.NotContains(t, s.Stdout(), canary, s.StdoutPath)
		require.NotContains(t, s.Stderr(), canary, s.StderrPath)
		require.NotContains(t, s.Audit(), canary, s.AuditPath)
	}
}

// secretBody is a secret as GET answers it.
type secretBody struct {
	Version int64             `json:"version"`
	Data    map[string]string `json:"data"`
	Labels  map[string]string `json:"labels"`
}

func getSecret(t *testing.T, s *testenv.Server, token, name string) secretBody {
	t.Helper()
	r := s.Do(t, http.MethodGet, pay+"/"+name, token, nil)
	require.Equal(t, http.StatusOK, r.Status, "GET %s from %s: %s", name, s.URL, r.Body)
	var sec secretBody
	r.JSON(t, &sec)
	return sec
}

// requireSecret requires that s reads name at version with data.
func requireSecret(t *testing.T, s *testenv.Server, token, name string, version int64, data map[string]string) {
	t.Helper()
	sec := getSecret(t, s, token, name)
	require.Equal(t, version, sec.Version, "%s on %s", name, s.URL)
	require.Equal(t, data, sec.Data, "%s on %s", name, s.URL)
}

// raceAcross sends the requests of writers at once, writer i through
// replica i mod len(srvs), and returns each answer's status.
func raceAcross(t *testing.T, srvs []*testenv.Server, writers int, send func(s *testenv.Server, i int) (*testenv.Response, error)) []int {
	t.Helper()
	statuses := make([]int, writers)
	errs := make([]error, writers)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate // every writer ready before the first request leaves
			r, err := send(srvs[i%len(srvs)], i)
			if err != nil {
				errs[i] = err
				return
			}
			statuses[i] = r.Status
		}()
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}
	return statuses
}

// ifMatchRaceAcross is ifMatchRace over several replicas: writers PUT path
// at once with If-Match version, spread over srvs; exactly one may win, the
// others get 412. It returns the winner's value.
func ifMatchRaceAcross(t *testing.T, srvs []*testenv.Server, path, token, canary string, version int64, writers int) string {
	t.Helper()
	value := func(i int) string { return fmt.Sprintf("%s-v%d-w%d", canary, version, i) }
	statuses := raceAcross(t, srvs, writers, func(s *testenv.Server, i int) (*testenv.Response, error) {
		return s.Try(http.MethodPut, path, token, map[string]any{"data": map[string]string{"api_key": value(i)}},
			"If-Match", fmt.Sprintf("%q", fmt.Sprint(version)))
	})
	winner := -1
	for i, st := range statuses {
		switch st {
		case http.StatusOK:
			require.Equal(t, -1, winner, "two winners of version %d: statuses %v", version+1, statuses)
			winner = i
		case http.StatusPreconditionFailed:
		default:
			require.Failf(t, "unexpected status", "writer %d (replica %d): %d; statuses %v", i, i%len(srvs), st, statuses)
		}
	}
	require.NotEqual(t, -1, winner, "no winner of version %d: statuses %v", version+1, statuses)
	return value(winner)
}

// waitReadyz polls /readyz of every replica until each answers want, and
// returns how long that took; it fails after limit.
func waitReadyz(t *testing.T, srvs []*testenv.Server, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last := make([]string, len(srvs))
	for {
		done := true
		for i, s := range srvs {
			r, err := s.Try(http.MethodGet, "/readyz", "", nil)
			switch {
			case err != nil:
				last[i], done = err.Error(), false
			case r.Status != want:
				last[i], done = fmt.Sprintf("%d %s", r.Status, r.Body), false
			}
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			require.Failf(t, "readyz", "not every replica answered %d within %s; last answers: %q", want, limit, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastLines keeps the end of a log.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// dbName is the database of a pgtest DSN.
func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, dsn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) {
		require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n), sql)
	})
	return n
}

// execSQL runs statements on a database.
func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	})
}

// withConn runs f on a connection of its own, within 30 s.
func withConn(t *testing.T, dsn string, f func(context.Context, *pgx.Conn)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	f(ctx, conn)
}

// requireDumpClean dumps a database as SQL text and requires that canary
// appears nowhere in it.
func requireDumpClean(t *testing.T, pg *pgtest.Server, dsn, canary string) {
	t.Helper()
	out, err := pg.Command("pg_dump", "--no-owner", dbName(t, dsn)).Output()
	require.NoError(t, err)
	require.NotEmpty(t, out)
	require.NotContains(t, string(out), canary)
}

// ackLog records what writers had acknowledged (2xx).
type ackLog struct {
	mu    sync.Mutex
	acked map[string]string // name -> value
	// sent is when the request of each acknowledged name left
	sent   map[string]time.Time
	counts map[int]int // status -> answers; 0 = no answer
}

func newAckLog() *ackLog {
	return &ackLog{acked: map[string]string{}, sent: map[string]time.Time{}, counts: map[int]int{}}
}

// writeLoop creates a new secret through s every interval until stop is
// closed, recording acknowledged ones; each value holds canary.
func (a *ackLog) writeLoop(s *testenv.Server, token, prefix, canary string, interval time.Duration, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		name := fmt.Sprintf("%s-%04d", prefix, i)
		value := fmt.Sprintf("%s-%s", canary, name)
		sent := time.Now()
		r, err := s.Try(http.MethodPost, pay, token, map[string]any{"name": name, "data": map[string]string{"value": value}})
		a.mu.Lock()
		switch {
		case err != nil:
			a.counts[0]++
		default:
			a.counts[r.Status]++
			if r.Status/100 == 2 {
				a.acked[name] = value
				a.sent[name] = sent
			}
		}
		a.mu.Unlock()
	}
}

func (a *ackLog) ackedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}
