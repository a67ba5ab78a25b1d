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
	dir := t.TempDir()
	srv := testenv.Start(t, testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{testenv.FileBackend("src", dir), testenv.FileBackend("dst", dir)},
		Subjects: []testenv.Subject{{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}}},
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}},
	})
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
