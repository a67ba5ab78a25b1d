package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
	"github.com/secretgate/secretgate/sdk"
)

// Shape of the seeded project.
const (
	pairsSecrets  = 300
	pairsEveryNth = 10 // every pairsEveryNth secret has pairsVersions versions
	pairsVersions = 5
	pairsWorkers  = 8
)

// pairsSecret is what was seeded for one secret: its versions' data, oldest
// first (the last is the latest), and its labels (per secret, not per
// version).
type pairsSecret struct {
	name     string
	versions []map[string]string
	labels   map[string]string
}

// TestMigrateAcrossBackends runs one gateway with every backend kind at
// once (three file backends, a real Vault dev server, AWS Secrets Manager on
// moto, GCP Secret Manager on the in-process fake), seeds project
// "payments" with 300 secrets (varied names, unicode, multi-line and empty
// values, labels, 30 secrets with 5 versions, a canary), and moves it along
// file→file→vault→aws→gcp→file with versions "all", on_conflict "fail" and
// switch. After each hop every secret, every version and every label is read
// back through the gateway and compared with what was seeded; at the end the
// canary must not appear in the server's output, its audit log, or any
// migration report.
//
// Every backend keeps the 5 versions with their numbers: file keeps 10 by
// default (max_versions), Vault's KV v2 keeps 10 by default, AWS keeps the
// 100 most recent (moto keeps all), GCP prunes nothing; and migrate.go
// numbers versions 1..n in an empty target, which matches the seeded 1..5.
func TestMigrateAcrossBackends(t *testing.T) {
	began := time.Now()
	// The external servers first: when one cannot run here the test skips
	// at once, saying why, and under CI=true it fails (the helpers decide).
	vault := vaulttest.Start(t)
	moto := mototest.Start(t)
	sm := gcptest.Start(t)
	t.Logf("vault, moto and the GCP fake up in %s", time.Since(began).Round(time.Millisecond))

	dir := t.TempDir()
	env := []string{"SG_TEST_VAULT_TOKEN=" + vault.RootToken}
	for k, v := range mototest.DummyCredentials {
		env = append(env, k+"="+v)
	}
	backends := []testenv.Backend{
		testenv.FileBackend("file-a", dir),
		testenv.FileBackend("file-b", dir),
		{Name: "hcv", Plugin: "vault", Settings: map[string]string{
			"address": vault.Addr, "token": "${SG_TEST_VAULT_TOKEN}", "prefix": "pairs/",
		}},
		{Name: "moto", Plugin: "aws", Settings: map[string]string{
			"region": mototest.Region, "endpoint": moto.Endpoint, "prefix": "pairs/", "tags": "suite=e2e-pairs",
		}},
		{Name: "google", Plugin: "gcp", Settings: map[string]string{
			"gcp_project": "e2e-pairs", "endpoint": sm.Addr, "insecure": "true", "prefix": "pairs",
		}},
		testenv.FileBackend("file-c", dir),
	}
	srv := testenv.Start(t, testenv.Options{
		Dir: dir, Backends: backends, Env: env,
		Projects: []testenv.Project{{Name: "payments", Backend: "file-a"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
		},
	})
	admin, reader := srv.Token("admin"), srv.Token("reader")
	canary := randomCanary(t)

	seedStart := time.Now()
	secrets := pairsSeedPlan(canary)
	pairsSeed(t, srv, admin, secrets)
	t.Logf("seeded %d secrets (%d with %d versions) in %s", len(secrets), pairsSecrets/pairsEveryNth, pairsVersions,
		time.Since(seedStart).Round(time.Millisecond))
	verifyStart := time.Now()
	pairsVerify(t, srv, reader, "seed (file-a)", secrets)
	t.Logf("verified the seed in %s", time.Since(verifyStart).Round(time.Millisecond))

	var reportBodies []string
	chain := []string{"file-a", "file-b", "hcv", "moto", "google", "file-c"}
	for i := 0; i+1 < len(chain); i++ {
		source, target := chain[i], chain[i+1]
		hop := source + "→" + target
		body := map[string]any{
			"source": source, "target": target, "projects": []string{"payments"},
			"versions": "all", "on_conflict": "fail", "dry_run": false, "switch": true,
		}
		hopStart := time.Now()
		// migrate waits up to 90 s; the hops through moto take 10-15 s here
		// (2 cores, -race), so its bound is enough.
		rep, bodies := migrate(t, srv, admin, body)
		took := time.Since(hopStart)
		reportBodies = append(reportBodies, bodies...)
		require.Equal(t, "succeeded", rep.State, "hop %s: %+v", hop, rep)
		require.Equal(t, source, rep.Source, hop)
		require.Equal(t, target, rep.Target, hop)
		require.Equal(t, pairsSecrets, rep.Total, "hop %s: %+v", hop, rep)
		require.Equal(t, pairsSecrets, rep.Copied, "hop %s: %+v", hop, rep)
		require.Equal(t, pairsSecrets, rep.Verified, "hop %s: %+v", hop, rep)
		require.Zero(t, rep.Skipped, "hop %s: %+v", hop, rep)
		require.Zero(t, rep.Failed, "hop %s: %+v", hop, rep)
		require.Empty(t, rep.Errors, "hop %s", hop)
		require.True(t, rep.Switched, "hop %s: %+v", hop, rep)

		verifyStart := time.Now()
		pairsVerify(t, srv, reader, "after "+hop, secrets)
		t.Logf("hop %-16s migration %6s, read-back of every secret and version %6s",
			hop, took.Round(time.Millisecond), time.Since(verifyStart).Round(time.Millisecond))
	}

	list := srv.Do(t, http.MethodGet, "/v1/migrations", admin, nil)
	require.Equal(t, http.StatusOK, list.Status, "%s", list.Body)
	reportBodies = append(reportBodies, string(list.Body))

	require.Equal(t, 0, srv.Stop(t))
	var migrated []string
	for _, rec := range srv.AuditRecords(t) {
		if rec["action"] == "project.migrate" && rec["phase"] == "outcome" && rec["outcome"] == "ok" {
			require.Equal(t, "payments", rec["project"])
			migrated = append(migrated, fmt.Sprint(rec["backend"]))
		}
	}
	require.Equal(t, chain[1:], migrated, "one successful project.migrate outcome per hop, naming its target")
	for what, text := range map[string]string{
		"stdout": srv.Stdout(), "stderr": srv.Stderr(), "audit log": srv.Audit(),
		"migration reports": strings.Join(reportBodies, "\n"),
	} {
		require.False(t, strings.Contains(text, canary), "the canary value appeared in the server's %s", what)
	}
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

// pairsName gives secret i a name from the whole allowed charset
// (sdk.ValidateName: [A-Za-z0-9][A-Za-z0-9_-]{0,127}), shapes varied.
func pairsName(i int) string {
	switch {
	case i == 0:
		return "x" // the shortest name
	case i == 1:
		return "9"
	case i == 2: // the longest name
		s := "Max-Len_002-"
		return s + strings.Repeat("z", sdk.MaxNameLen-len(s))
	}
	switch i % 6 {
	case 0:
		return fmt.Sprintf("svc%03d", i)
	case 1:
		return fmt.Sprintf("API_KEY_%03d", i)
	case 2:
		return fmt.Sprintf("db-password-%03d", i)
	case 3:
		return fmt.Sprintf("%03d-starts-with-digits", i)
	case 4:
		return fmt.Sprintf("Mixed_Case-Name_%03d", i)
	default:
		return fmt.Sprintf("stripe-%03d_", i) + strings.Repeat("k", 40+i%50)
	}
}

// pairsSeedPlan decides every secret's versions and labels.
func pairsSeedPlan(canary string) []pairsSecret {
	out := make([]pairsSecret, 0, pairsSecrets)
	for i := range pairsSecrets {
		data := map[string]string{"value": fmt.Sprintf("välue-ü-🔑-日本-%d", i)}
		switch {
		case i%3 == 0:
			data["user"] = fmt.Sprintf("user_%d", i)
			data["dsn"] = fmt.Sprintf("postgres://u:p%%40ss@db.internal:5432/pay?sslmode=require&i=%d", i)
		case i == 7:
			data["canary"] = canary
		case i == 11: // multi-line, with tabs, CRLF and a trailing newline
			data["pem"] = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg+kqhkiG9w0BAQEFAASC/ü\n\tindented line 日本\r\nlast line\n-----END PRIVATE KEY-----\n"
		case i == 13: // empty-ish values
			data["empty"] = ""
			data["space"] = " "
			data["newline"] = "\n"
		case i == 17: // characters JSON, HTML and shells care about
			data["json"] = `{"nested":"json","quote":"\"","backslash":"\\"}`
			data["html"] = `<script>alert('&amp;')</script>`
			data["shell"] = "$(rm -rf /) `id` ${HOME} 'q' \"dq\""
		case i == 19: // the most keys allowed, key charset included
			for k := range sdk.MaxKeys - 1 {
				data[fmt.Sprintf("k.%02d_key-%d", k, k)] = fmt.Sprintf("v%d-é", k)
			}
		case i == 23: // a large value (~48 KB of 3-byte runes)
			data["blob"] = strings.Repeat("日本語", 5300)
		}
		var labels map[string]string
		if i%7 != 0 { // most secrets have labels; every 7th has none
			labels = map[string]string{"team": "payments", "idx": fmt.Sprint(i), "tier": []string{"gold", "silver", "bronze"}[i%3]}
			if i%11 == 0 {
				labels["empty"] = ""
			}
			if i%13 == 0 {
				labels["owner"] = "Zürich Ops Team" // not a GCP label value: kept in the annotation
			}
		}
		s := pairsSecret{name: pairsName(i), versions: []map[string]string{data}, labels: labels}
		if i%pairsEveryNth == 0 {
			for v := 2; v <= pairsVersions; v++ {
				d := map[string]string{"value": fmt.Sprintf("välue-ü-🔑-日本-%d-v%d", i, v), "rev": fmt.Sprint(v)}
				if v == 3 {
					d["extra"] = fmt.Sprintf("only in v3 of %d", i) // key sets change between versions
				}
				if i == 10 && v == 2 {
					d["old_canary"] = canary // the canary in an old version only
				}
				s.versions = append(s.versions, d)
			}
		}
		out = append(out, s)
	}
	return out
}

// pairsSeed writes the plan through the API: POST the first version with its
// labels, then PUT each later version (labels nil: kept).
func pairsSeed(t *testing.T, srv *testenv.Server, token string, secrets []pairsSecret) {
	t.Helper()
	names := map[string]bool{}
	for _, s := range secrets {
		require.NoError(t, sdk.ValidateName(s.name))
		require.False(t, names[s.name], "duplicate name %s", s.name)
		names[s.name] = true
	}
	errs := pairsParallel(len(secrets), func(i int) []string {
		s := secrets[i]
		body := map[string]any{"name": s.name, "data": s.versions[0]}
		if s.labels != nil {
			body["labels"] = s.labels
		}
		r, err := srv.Try(http.MethodPost, pay, token, body)
		if err != nil {
			return []string{fmt.Sprintf("create %s: %v", s.name, err)}
		}
		if r.Status != http.StatusCreated {
			return []string{fmt.Sprintf("create %s: %d %s", s.name, r.Status, r.Body)}
		}
		for v, d := range s.versions[1:] {
			r, err := srv.Try(http.MethodPut, pay+"/"+s.name, token, map[string]any{"data": d}, "If-Match", fmt.Sprintf(`"%d"`, v+1))
			if err != nil {
				return []string{fmt.Sprintf("update %s to v%d: %v", s.name, v+2, err)}
			}
			if r.Status != http.StatusOK {
				return []string{fmt.Sprintf("update %s to v%d: %d %s", s.name, v+2, r.Status, r.Body)}
			}
		}
		return nil
	})
	pairsRequireNone(t, "seeding", errs)
}

// pairsVerify reads every secret through the gateway as a reader and
// compares it with the plan: the listing (paged), each secret's latest data,
// keys, labels and version, and for multi-version secrets the versions list
// and every version's data.
func pairsVerify(t *testing.T, srv *testenv.Server, token, when string, secrets []pairsSecret) {
	t.Helper()
	// The listing, 64 per page: exactly the seeded names, in byte order.
	var listed []string
	pageToken := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 20, "%s: too many pages", when)
		q := url.Values{"page_size": {"64"}}
		if pageToken != "" {
			q.Set("page_token", pageToken)
		}
		r := srv.Do(t, http.MethodGet, pay+"?"+q.Encode(), token, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s: list: %s", when, r.Body)
		var page struct {
			Secrets []struct {
				Name    string `json:"name"`
				Version int64  `json:"version"`
			} `json:"secrets"`
			NextPageToken string `json:"next_page_token"`
		}
		r.JSON(t, &page)
		for _, m := range page.Secrets {
			listed = append(listed, m.Name)
		}
		if page.NextPageToken == "" {
			break
		}
		pageToken = page.NextPageToken
	}
	want := make([]string, 0, len(secrets))
	for _, s := range secrets {
		want = append(want, s.name)
	}
	sort.Strings(want)
	require.Equal(t, want, listed, "%s: the listing", when)

	errs := pairsParallel(len(secrets), func(i int) []string {
		s := secrets[i]
		var out []string
		bad := func(format string, args ...any) {
			out = append(out, fmt.Sprintf("%s: ", s.name)+fmt.Sprintf(format, args...))
		}
		latest := int64(len(s.versions))
		var got struct {
			Name    string            `json:"name"`
			Version int64             `json:"version"`
			Keys    []string          `json:"keys"`
			Labels  map[string]string `json:"labels"`
			Data    map[string]string `json:"data"`
		}
		read := func(path string) bool {
			r, err := srv.Try(http.MethodGet, path, token, nil)
			if err != nil {
				bad("GET %s: %v", path, err)
				return false
			}
			if r.Status != http.StatusOK {
				bad("GET %s: %d %s", path, r.Status, r.Body)
				return false
			}
			got.Data, got.Labels, got.Keys = nil, nil, nil
			if err := json.Unmarshal(r.Body, &got); err != nil {
				bad("GET %s: %v", path, err)
				return false
			}
			if etag := r.Header.Get("ETag"); etag != fmt.Sprintf(`"%d"`, got.Version) {
				bad("GET %s: ETag %s for version %d", path, etag, got.Version)
			}
			return true
		}
		wantLabels := s.labels
		if wantLabels == nil {
			wantLabels = map[string]string{}
		}
		check := func(what string, v int64, data map[string]string) {
			if got.Name != s.name {
				bad("%s: name %q", what, got.Name)
			}
			if got.Version != v {
				bad("%s: version %d, want %d", what, got.Version, v)
			}
			if !maps.Equal(got.Data, data) {
				bad("%s: data differs: got %s, want %s", what, pairsShow(got.Data), pairsShow(data))
			}
			if keys := sdk.SortedKeys(data); !slices.Equal(got.Keys, keys) {
				bad("%s: keys %v, want %v", what, got.Keys, keys)
			}
			if !maps.Equal(got.Labels, wantLabels) {
				bad("%s: labels %v, want %v", what, got.Labels, wantLabels)
			}
		}
		if read(pay + "/" + s.name) {
			check("latest", latest, s.versions[latest-1])
		}
		if latest == 1 {
			return out
		}
		r, err := srv.Try(http.MethodGet, pay+"/"+s.name+"/versions", token, nil)
		if err != nil {
			bad("versions: %v", err)
			return out
		}
		if r.Status != http.StatusOK {
			bad("versions: %d %s", r.Status, r.Body)
			return out
		}
		var vs struct {
			Versions []struct {
				Version int64 `json:"version"`
			} `json:"versions"`
		}
		if err := json.Unmarshal(r.Body, &vs); err != nil {
			bad("versions: %v", err)
			return out
		}
		var nums []int64
		for _, v := range vs.Versions {
			nums = append(nums, v.Version)
		}
		var wantNums []int64
		for v := int64(1); v <= latest; v++ {
			wantNums = append(wantNums, v)
		}
		if !slices.Equal(nums, wantNums) {
			bad("versions %v, want %v", nums, wantNums)
		}
		for v := int64(1); v <= latest; v++ {
			if read(fmt.Sprintf("%s/%s?version=%d", pay, s.name, v)) {
				check(fmt.Sprintf("version %d", v), v, s.versions[v-1])
			}
		}
		if r, err := srv.Try(http.MethodGet, fmt.Sprintf("%s/%s?version=%d", pay, s.name, latest+1), token, nil); err != nil {
			bad("version %d: %v", latest+1, err)
		} else if r.Status != http.StatusNotFound {
			bad("version %d (never written): status %d, want 404", latest+1, r.Status)
		}
		return out
	})
	pairsRequireNone(t, when, errs)
}

// pairsShow describes a data map for a failure message: its keys and value
// lengths, never values (one of them is the canary).
func pairsShow(data map[string]string) string {
	var parts []string
	for _, k := range sdk.SortedKeys(data) {
		parts = append(parts, fmt.Sprintf("%s(%d bytes)", k, len(data[k])))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// pairsParallel runs f(0..n-1) on pairsWorkers goroutines and gathers the
// problems it reports.
func pairsParallel(n int, f func(i int) []string) []string {
	var (
		mu   sync.Mutex
		all  []string
		wg   sync.WaitGroup
		work = make(chan int)
	)
	for range pairsWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if errs := f(i); len(errs) > 0 {
					mu.Lock()
					all = append(all, errs...)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	sort.Strings(all)
	return all
}

func pairsRequireNone(t *testing.T, when string, errs []string) {
	t.Helper()
	if len(errs) == 0 {
		return
	}
	shown := errs
	if len(shown) > 25 {
		shown = shown[:25]
	}
	t.Fatalf("%s: %d problems, the first %d:\n  %s", when, len(errs), len(shown), strings.Join(shown, "\n  "))
}
