package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

// TestMigrateCLI drives `secretgate migrate` against the real gateway: the
// dry run, the verified copy with --switch, the report table and JSON, and a
// non-zero exit when the migration cannot run.
func TestMigrateCLI(t *testing.T) {
	srv := testenv.Start(t, srcDstOptions(t))
	admin := srv.Token("admin")
	canary := randomCanary(t)
	for i := range 5 {
		data := map[string]string{"v": fmt.Sprintf("value-%d", i), "canary": canary}
		r := srv.Do(t, http.MethodPost, pay, admin, map[string]any{"name": fmt.Sprintf("c%d", i), "data": data})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	}

	dry := srv.CLI(t, admin, "", "migrate", "--from", "src", "--to", "dst", "-p", "payments", "--dry-run")
	require.Equal(t, 0, dry.Code, "stdout %s stderr %s", dry.Stdout, dry.Stderr)
	require.Regexp(t, `(?m)^total\s+5$`, dry.Stdout)
	require.Regexp(t, `(?m)^switched\s+false$`, dry.Stdout)

	run := srv.CLI(t, admin, "", "migrate", "--from", "src", "--to", "dst", "-p", "payments", "--all-versions", "--switch", "-o", "json")
	require.Equal(t, 0, run.Code, "stdout %s stderr %s", run.Stdout, run.Stderr)
	var rep migrationReport
	require.NoError(t, json.Unmarshal([]byte(run.Stdout), &rep), run.Stdout)
	require.Equal(t, "succeeded", rep.State)
	require.Equal(t, 5, rep.Copied)
	require.Equal(t, 5, rep.Verified)
	require.True(t, rep.Switched)

	// The project now lives on dst, so a second run from src is refused.
	again := srv.CLI(t, admin, "", "migrate", "--from", "src", "--to", "dst", "-p", "payments")
	require.NotEqual(t, 0, again.Code)
	require.Contains(t, again.Stderr, "src")

	missing := srv.CLI(t, admin, "", "migrate", "--to", "dst", "-p", "payments")
	require.Equal(t, 2, missing.Code, missing.Stderr)
	require.Contains(t, missing.Stderr, "--from")

	for _, out := range []string{dry.Stdout, dry.Stderr, run.Stdout, run.Stderr, again.Stdout, again.Stderr, srv.Stdout(), srv.Stderr(), srv.Audit()} {
		require.False(t, strings.Contains(out, canary), "canary leaked")
	}
}

// TestSecretCopyCLI: `secretgate secret copy` moves one secret across
// projects on different backends without printing its value, and the
// permission rule (secrets.read on the source or project.migrate) holds.
func TestSecretCopyCLI(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{testenv.FileBackend("src", dir), testenv.FileBackend("dst", dir)},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "pipeline", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}, {Project: "billing", Role: "editor"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "payments", Role: "editor"}, {Project: "billing", Role: "editor"}}},
		},
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}, {Name: "billing", Backend: "dst"}},
	})
	admin := srv.Token("admin")
	canary := randomCanary(t)
	r := srv.Do(t, http.MethodPost, pay, admin, map[string]any{"name": "stripe-key", "data": map[string]string{"api_key": canary}, "labels": map[string]string{"team": "pay"}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)

	pl := srv.CLI(t, srv.Token("pipeline"), "", "project", "list")
	require.Equal(t, 0, pl.Code, pl.Stderr)
	require.Regexp(t, `(?m)^billing\s+secrets.list, secrets.create, secrets.update, secrets.delete$`, pl.Stdout)
	require.Regexp(t, `(?m)^payments\s+secrets.list, secrets.read$`, pl.Stdout)

	cp := srv.CLI(t, srv.Token("pipeline"), "", "secret", "copy", "stripe-key", "--from-project", "payments", "--to-project", "billing", "--as", "stripe")
	require.Equal(t, 0, cp.Code, "stdout %s stderr %s", cp.Stdout, cp.Stderr)
	require.Regexp(t, `(?m)^project\s+billing$`, cp.Stdout)
	require.Regexp(t, `(?m)^name\s+stripe$`, cp.Stdout)
	require.Regexp(t, `(?m)^labels\s+team=pay$`, cp.Stdout)

	g := srv.Do(t, http.MethodGet, "/v1/projects/billing/secrets/stripe", admin, nil)
	require.Equal(t, http.StatusOK, g.Status, "%s", g.Body)
	require.Contains(t, string(g.Body), canary, "the copy holds the value")

	again := srv.CLI(t, srv.Token("pipeline"), "", "secret", "copy", "stripe-key", "--from-project", "payments", "--to-project", "billing", "--as", "stripe")
	require.Equal(t, 5, again.Code, "already exists: %s", again.Stderr)
	denied := srv.CLI(t, srv.Token("editor"), "", "secret", "copy", "stripe-key", "--from-project", "payments", "--to-project", "billing")
	require.Equal(t, 3, denied.Code, "an editor cannot read, so cannot copy: %s", denied.Stderr)
	self := srv.CLI(t, admin, "", "secret", "copy", "stripe-key", "-p", "payments")
	require.Equal(t, 2, self.Code, self.Stderr)
	over := srv.CLI(t, admin, "", "secret", "copy", "stripe-key", "-p", "payments", "--to-project", "billing", "--as", "stripe", "--overwrite", "-o", "json")
	require.Equal(t, 0, over.Code, "stdout %s stderr %s", over.Stdout, over.Stderr)
	require.Contains(t, over.Stdout, `"version": 2`)

	for _, out := range []string{cp.Stdout, cp.Stderr, again.Stderr, denied.Stderr, over.Stdout, srv.Stdout(), srv.Stderr(), srv.Audit()} {
		require.False(t, strings.Contains(out, canary), "canary leaked")
	}
}

// TestMigrateDeleteSourceCLI: --delete-source empties the source after a
// verified switch, shown by a migration back that has to copy everything.
func TestMigrateDeleteSourceCLI(t *testing.T) {
	srv := testenv.Start(t, srcDstOptions(t))
	admin := srv.Token("admin")
	for i := range 12 {
		r := srv.Do(t, http.MethodPost, pay, admin, map[string]any{"name": fmt.Sprintf("d%02d", i), "data": map[string]string{"v": fmt.Sprint(i)}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	}
	bad := srv.CLI(t, admin, "", "migrate", "--from", "src", "--to", "dst", "-p", "payments", "--delete-source")
	require.Equal(t, 2, bad.Code, bad.Stderr)
	require.Contains(t, bad.Stderr, "--switch")

	run := srv.CLI(t, admin, "", "migrate", "--from", "src", "--to", "dst", "-p", "payments", "--switch", "--delete-source", "--workers", "3")
	require.Equal(t, 0, run.Code, "stdout %s stderr %s", run.Stdout, run.Stderr)
	require.Regexp(t, `(?m)^deleted from source\s+12$`, run.Stdout)
	require.Regexp(t, `(?m)^kept in source\s+0$`, run.Stdout)

	back := srv.CLI(t, admin, "", "migrate", "--from", "dst", "--to", "src", "-p", "payments", "-o", "json")
	require.Equal(t, 0, back.Code, "stdout %s stderr %s", back.Stdout, back.Stderr)
	var rep migrationReport
	require.NoError(t, json.Unmarshal([]byte(back.Stdout), &rep), back.Stdout)
	require.Equal(t, 12, rep.Copied, "the source held nothing any more")
	require.Zero(t, rep.Skipped)
}

// srcDstOptions: a gateway with file backends src and dst in a fresh temp
// dir, project payments on src, and an admin.
func srcDstOptions(t *testing.T) testenv.Options {
	t.Helper()
	dir := t.TempDir()
	return testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{testenv.FileBackend("src", dir), testenv.FileBackend("dst", dir)},
		Subjects: []testenv.Subject{{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}}},
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}},
	}
}
