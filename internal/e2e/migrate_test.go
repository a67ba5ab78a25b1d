package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

type migrationReport struct {
	ID       string            `json:"id"`
	State    string            `json:"state"`
	Source   string            `json:"source"`
	Target   string            `json:"target"`
	Projects []string          `json:"projects"`
	Total    int               `json:"total"`
	Copied   int               `json:"copied"`
	Skipped  int               `json:"skipped"`
	Failed   int               `json:"failed"`
	Verified int               `json:"verified"`
	Switched bool              `json:"switched"`
	DryRun   bool              `json:"dry_run"`
	Errors   map[string]string `json:"errors"`
}

// migrate starts a migration and waits for its end; it returns the report
// and the raw bodies seen.
func migrate(t *testing.T, srv *testenv.Server, token string, body map[string]any) (migrationReport, []string) {
	t.Helper()
	r := srv.Do(t, http.MethodPost, "/v1/migrations", token, body)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	var started struct {
		ID string `json:"id"`
	}
	r.JSON(t, &started)
	require.NotEmpty(t, started.ID)
	var bodies []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		g := srv.Do(t, http.MethodGet, "/v1/migrations/"+started.ID, token, nil)
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
		bodies = append(bodies, string(g.Body))
		var rep migrationReport
		g.JSON(t, &rep)
		if rep.State != "running" {
			require.Equal(t, started.ID, rep.ID)
			return rep, bodies
		}
		require.True(t, time.Now().Before(deadline), "migration %s still running: %s", started.ID, g.Body)
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMigrateFileToFile(t *testing.T) {
	dir := t.TempDir()
	backends := []testenv.Backend{testenv.FileBackend("src", dir), testenv.FileBackend("dst", dir)}
	subjects := []testenv.Subject{
		{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
		{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
		{Name: "outsider", Grants: []testenv.Grant{{Project: "other", Role: "admin"}}},
	}
	srv := testenv.Start(t, testenv.Options{
		Dir: dir, Backends: backends, Subjects: subjects,
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}, {Name: "other", Backend: "src"}},
	})
	admin := srv.Token("admin")
	canary := randomCanary(t)

	// 30 secrets; every fifth has three versions; unicode values; labels.
	want := map[string]map[string]string{}
	for i := range 30 {
		name := fmt.Sprintf("s%02d", i)
		data := map[string]string{"value": fmt.Sprintf("välue-ü-🔑-%d", i)}
		if i == 7 {
			data["canary"] = canary
		}
		labels := map[string]string{"team": "pay", "idx": fmt.Sprint(i)}
		r := srv.Do(t, http.MethodPost, pay, admin, map[string]any{"name": name, "data": data, "labels": labels})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		if i%5 == 0 {
			for v := 2; v <= 3; v++ {
				data = map[string]string{"value": fmt.Sprintf("välue-ü-%d-v%d", i, v)}
				r = srv.Do(t, http.MethodPut, pay+"/"+name, admin, map[string]any{"data": data})
				require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			}
		}
		want[name] = data
	}

	// Validation and authorization.
	valid := func() map[string]any {
		return map[string]any{"source": "src", "target": "dst", "projects": []string{"payments"}, "versions": "all", "on_conflict": "fail"}
	}
	for _, tc := range []struct {
		field string
		value any
	}{
		{"source", "nope"}, {"target", "src"}, {"projects", []string{}}, {"versions", "some"}, {"on_conflict", "merge"},
	} {
		b := valid()
		b[tc.field] = tc.value
		r := srv.Do(t, http.MethodPost, "/v1/migrations", admin, b)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", tc.field, r.Body)
		require.Contains(t, string(r.Body), tc.field)
	}
	r := srv.Do(t, http.MethodPost, "/v1/migrations", srv.Token("reader"), valid())
	require.Equal(t, http.StatusForbidden, r.Status, "%s", r.Body)
	r = srv.Do(t, http.MethodPost, "/v1/migrations", srv.Token("outsider"), valid())
	require.Equal(t, http.StatusNotFound, r.Status, "%s", r.Body)
	b := valid()
	b["source"] = "dst"
	r = srv.Do(t, http.MethodPost, "/v1/migrations", admin, b)
	require.Equal(t, http.StatusBadRequest, r.Status, "project not on source: %s", r.Body)

	var reports []string

	// A dry run counts and writes nothing: the real run after it copies all.
	b = valid()
	b["dry_run"] = true
	rep, bodies := migrate(t, srv, admin, b)
	reports = append(reports, bodies...)
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	require.True(t, rep.DryRun)
	require.Equal(t, 30, rep.Total)
	require.Equal(t, 30, rep.Copied)
	require.Zero(t, rep.Verified)

	b = valid()
	b["switch"] = true
	rep, bodies = migrate(t, srv, admin, b)
	reports = append(reports, bodies...)
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	require.Equal(t, 30, rep.Total)
	require.Equal(t, 30, rep.Copied, "a dry run must not have written anything: %+v", rep)
	require.Equal(t, 30, rep.Verified)
	require.Zero(t, rep.Skipped)
	require.Zero(t, rep.Failed)
	require.True(t, rep.Switched)

	// The project now serves from dst, with history and labels.
	for name, data := range want {
		g := srv.Do(t, http.MethodGet, pay+"/"+name, admin, nil)
		require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
		var sec struct {
			Data   map[string]string `json:"data"`
			Labels map[string]string `json:"labels"`
		}
		g.JSON(t, &sec)
		require.Equal(t, data, sec.Data, name)
		require.Equal(t, "pay", sec.Labels["team"], name)
	}
	var vs struct {
		Versions []struct {
			Version int64 `json:"version"`
		} `json:"versions"`
	}
	srv.Do(t, http.MethodGet, pay+"/s05/versions", admin, nil).JSON(t, &vs)
	require.Len(t, vs.Versions, 3)
	old := srv.Do(t, http.MethodGet, pay+"/s05?version=1", admin, nil)
	require.Equal(t, http.StatusOK, old.Status, "%s", old.Body)
	require.Contains(t, string(old.Body), "välue-ü-🔑-5")

	// Back to src: everything is already there and identical.
	back := func(mode string, dry bool) migrationReport {
		rep, bodies := migrate(t, srv, admin, map[string]any{"source": "dst", "target": "src", "projects": []string{"payments"},
			"versions": "latest", "on_conflict": mode, "dry_run": dry})
		reports = append(reports, bodies...)
		return rep
	}
	rep = back("fail", false)
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	require.Equal(t, 30, rep.Skipped)
	require.Zero(t, rep.Copied)

	// A change in dst makes a conflict with src.
	r = srv.Do(t, http.MethodPut, pay+"/s03", admin, map[string]any{"data": map[string]string{"value": "changed-" + canary}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	rep = back("overwrite", true)
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	require.Equal(t, 1, rep.Copied)
	require.Equal(t, 29, rep.Skipped)
	rep = back("fail", false) // the dry run above wrote nothing
	require.Equal(t, "failed", rep.State, "%+v", rep)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 29, rep.Skipped)
	require.Contains(t, rep.Errors, "s03")
	rep = back("skip", false)
	require.Equal(t, "succeeded", rep.State, "%+v", rep)
	require.Equal(t, 30, rep.Skipped)
	require.Zero(t, rep.Failed)

	list := srv.Do(t, http.MethodGet, "/v1/migrations", admin, nil)
	require.Equal(t, http.StatusOK, list.Status)
	var all struct {
		Migrations []migrationReport `json:"migrations"`
	}
	list.JSON(t, &all)
	require.Len(t, all.Migrations, 6)
	reports = append(reports, string(list.Body))
	outsiderList := srv.Do(t, http.MethodGet, "/v1/migrations", srv.Token("outsider"), nil)
	require.NotContains(t, string(outsiderList.Body), rep.ID)

	// Failed migrations never switch: payments still reads dst's change.
	g := srv.Do(t, http.MethodGet, pay+"/s03", admin, nil)
	require.Contains(t, string(g.Body), "changed-")

	require.Equal(t, 0, srv.Stop(t))
	for _, text := range append(reports, srv.Audit(), srv.Stdout(), srv.Stderr()) {
		require.NotContains(t, text, canary)
	}
	require.True(t, strings.Contains(srv.Audit(), "project.migrate"))

	// The switch survives a restart on the unchanged configuration (which
	// still binds payments to src) through the routing overlay.
	st, err := os.Stat(filepath.Join(dir, "routing-overlay.json"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	srv2 := testenv.Start(t, testenv.Options{
		Dir: dir, Backends: backends, Subjects: subjects[:1],
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}, {Name: "other", Backend: "src"}},
	})
	g = srv2.Do(t, http.MethodGet, pay+"/s03", srv2.Token("admin"), nil)
	require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
	require.Contains(t, string(g.Body), "changed-", "payments must read from dst after a restart")
	g = srv2.Do(t, http.MethodGet, pay+"/s07", srv2.Token("admin"), nil)
	require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
	require.Contains(t, string(g.Body), canary)
	require.Equal(t, 0, srv2.Stop(t))
	require.NotContains(t, srv2.Stderr(), canary)
	require.NotContains(t, srv2.Stdout(), canary)
}
