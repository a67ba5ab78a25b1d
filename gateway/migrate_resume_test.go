package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

func seed(t *testing.T, b *memBackend, project string, n int, value func(i int) string) {
	t.Helper()
	for i := range n {
		_, err := b.Write(context.Background(), sdk.WriteRequest{Project: project, Name: fmt.Sprintf("k%02d", i),
			Data: map[string]string{"v": value(i)}, Labels: map[string]string{"n": fmt.Sprint(i)}, Mode: sdk.WriteCreate})
		require.NoError(t, err)
	}
}

func (e *migrateEnv) start(t *testing.T, body map[string]any) string {
	t.Helper()
	r := e.h.do(t, "POST", "/v1/migrations", "t-admin", body)
	require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
	var started struct{ ID string }
	require.NoError(t, json.Unmarshal(r.body, &started))
	return started.ID
}

func TestMigrationRequestValidation(t *testing.T) {
	e := newMigrateEnv(t)
	base := map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"workers too many", with("workers", 65), "invalid workers"},
		{"workers negative", with("workers", -1), "invalid workers"},
		{"delete without switch", with("delete_source", true), "invalid delete_source"},
		{"delete on a dry run", with("delete_source", true, "switch", true, "dry_run", true), "invalid delete_source"},
		{"unknown versions", with("versions", "some"), "invalid versions"},
		{"unknown on_conflict", with("on_conflict", "merge"), "invalid on_conflict"},
		{"same backend", with("target", "a"), "invalid target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.h.do(t, "POST", "/v1/migrations", "t-admin", tc.body)
			require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
			require.Contains(t, string(r.body), tc.field)
		})
	}
	rep := e.wait(t, e.start(t, base))
	require.Equal(t, defaultMigrateWorkers, rep.Workers, "workers defaults to 8")
}

// delete_source removes from the source exactly the secrets whose target
// copy matches, after the switch; a secret kept different by on_conflict
// skip stays in the source.
func TestMigrationDeleteSource(t *testing.T) {
	e := newMigrateEnv(t)
	ctx := context.Background()
	seed(t, e.src.memBackend, "payments", 10, func(i int) string { return fmt.Sprint("v", i) })
	seed(t, e.src.memBackend, "other", 3, func(i int) string { return "untouched" })
	_, err := e.dst.memBackend.Write(ctx, sdk.WriteRequest{Project: "payments", Name: "k03", Data: map[string]string{"v": "target's own"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)

	rep := e.wait(t, e.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"},
		"on_conflict": "skip", "switch": true, "delete_source": true, "workers": 3}))
	require.Equal(t, api.MigrationSucceeded, rep.State, "%+v", rep)
	require.True(t, rep.Switched)
	require.Equal(t, 9, rep.Deleted)
	require.Equal(t, 1, rep.Kept)
	require.Equal(t, 3, rep.Workers)

	page, err := e.src.memBackend.List(ctx, sdk.ListRequest{Project: "payments"})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 1)
	require.Equal(t, "k03", page.Secrets[0].Name, "the secret the target holds differently stays in the source")
	page, err = e.src.memBackend.List(ctx, sdk.ListRequest{Project: "other"})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 3, "other projects are never touched")
	for i := range 10 {
		_, err := e.dst.memBackend.Read(ctx, sdk.Ref{Project: "payments", Name: fmt.Sprintf("k%02d", i)})
		require.NoError(t, err)
	}
}

// A migration with a failure never switches, and so never deletes: neither
// after a conflict (found before anything is written) nor after a copy
// that was written and then failed its read-back verification.
func TestMigrationDeleteSourceNeedsCleanRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prepare  func(t *testing.T, e *migrateEnv)
		copied   int
		verified int
		err      string
	}{
		{
			name: "a conflict",
			prepare: func(t *testing.T, e *migrateEnv) {
				_, err := e.dst.memBackend.Write(context.Background(), sdk.WriteRequest{Project: "payments", Name: "k01",
					Data: map[string]string{"v": "different"}, Mode: sdk.WriteCreate})
				require.NoError(t, err)
			},
			copied: 3, verified: 3, err: "different content",
		},
		{
			name:    "a copy that fails to verify",
			prepare: func(t *testing.T, e *migrateEnv) { e.dst.readBack = readBackOther("k01") },
			copied:  4, verified: 3, err: errVerify.Error(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMigrateEnv(t)
			ctx := context.Background()
			seed(t, e.src.memBackend, "payments", 4, func(i int) string { return fmt.Sprint("v", i) })
			tc.prepare(t, e)
			rep := e.wait(t, e.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"},
				"on_conflict": "fail", "switch": true, "delete_source": true}))
			require.Equal(t, api.MigrationFailed, rep.State)
			require.Equal(t, tc.copied, rep.Copied)
			require.Equal(t, tc.verified, rep.Verified)
			require.Equal(t, 1, rep.Failed)
			require.False(t, rep.Switched)
			require.Zero(t, rep.Deleted)
			require.Contains(t, rep.Errors["k01"], tc.err)
			page, err := e.src.memBackend.List(ctx, sdk.ListRequest{Project: "payments"})
			require.NoError(t, err)
			require.Len(t, page.Secrets, 4)
			rt, _ := e.srv.Routing().Lookup("payments")
			require.Equal(t, "a", rt.Backend)
			require.False(t, rt.ReadOnly, "writes resume after a failed run")
		})
	}
}

// A gateway shut down mid-migration journals it as running; the next one
// resumes it, finishes the copy, switches, and lists it with resumed 1.
func TestMigrationResumesAfterShutdown(t *testing.T) {
	dir := t.TempDir()
	src := &hookedBackend{memBackend: newMemBackend(), gate: make(chan struct{})}
	dst := &hookedBackend{memBackend: newMemBackend()}
	seed(t, src.memBackend, "payments", 25, func(i int) string { return canary + fmt.Sprint(i) })

	first := newMigrateEnvAt(t, dir, src, dst, "a")
	id := first.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "versions": "all", "switch": true})
	// Source reads hang at the gate: the copy is mid-way when we stop.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, first.srv.Shutdown(ctx))

	journal := filepath.Join(dir, journalFile)
	fi, err := os.Stat(journal)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	raw, err := os.ReadFile(journal)
	require.NoError(t, err)
	require.NotContains(t, string(raw), canary, "the journal holds names and counts only")
	var j migrationJournal
	require.NoError(t, json.Unmarshal(raw, &j))
	require.Len(t, j.Migrations, 1)
	require.Equal(t, api.MigrationRunning, j.Migrations[0].State)
	require.False(t, j.Migrations[0].Switched)

	close(src.gate)
	second := newMigrateEnvAt(t, dir, src, dst, "a")
	rep := second.wait(t, id)
	require.Equal(t, api.MigrationSucceeded, rep.State, "%+v", rep)
	require.Equal(t, 1, rep.Resumed)
	require.Equal(t, 25, rep.Total)
	require.Equal(t, 25, rep.Copied+rep.Skipped)
	require.True(t, rep.Switched)
	rt, _ := second.srv.Routing().Lookup("payments")
	require.Equal(t, Route{Project: "payments", Backend: "b"}, rt)

	// A third start lists the finished migration and resumes nothing.
	require.NoError(t, second.srv.Shutdown(context.Background()))
	third := newMigrateEnvAt(t, dir, src, dst, "a")
	r := third.h.do(t, "GET", "/v1/migrations", "t-admin", nil)
	require.Equal(t, http.StatusOK, r.code)
	var list struct{ Migrations []api.MigrationReport }
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Migrations, 1)
	require.Equal(t, api.MigrationSucceeded, list.Migrations[0].State)
	require.Equal(t, 1, list.Migrations[0].Resumed)
	rt, _ = third.srv.Routing().Lookup("payments")
	require.Equal(t, "b", rt.Backend, "the overlay still applies")
	require.NotContains(t, first.logs.String()+second.logs.String(), canary)
}

// An interrupted migration whose project was rebound meanwhile (a config
// edit) is not resumed: it ends failed and says why.
func TestMigrationNotResumedAfterRebind(t *testing.T) {
	dir := t.TempDir()
	src := &hookedBackend{memBackend: newMemBackend(), gate: make(chan struct{})}
	dst := &hookedBackend{memBackend: newMemBackend()}
	seed(t, src.memBackend, "payments", 3, func(i int) string { return "x" })
	first := newMigrateEnvAt(t, dir, src, dst, "a")
	id := first.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}})
	require.NoError(t, first.srv.Shutdown(context.Background()))
	close(src.gate)

	second := newMigrateEnvAt(t, dir, src, dst, "b")
	rep := second.wait(t, id)
	require.Equal(t, api.MigrationFailed, rep.State)
	require.Contains(t, rep.Errors["resume"], `project "payments" is bound to backend "b"`)
	rt, _ := second.srv.Routing().Lookup("payments")
	require.False(t, rt.ReadOnly)
}

// The journal and the list keep the last journalKeep finished migrations.
func TestMigrationListIsBounded(t *testing.T) {
	dir := t.TempDir()
	src := &hookedBackend{memBackend: newMemBackend()}
	dst := &hookedBackend{memBackend: newMemBackend()}
	e := newMigrateEnvAt(t, dir, src, dst, "a")
	var first, last string
	for i := range journalKeep + 5 {
		id := e.start(t, map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}, "dry_run": true})
		require.Equal(t, api.MigrationSucceeded, e.wait(t, id).State)
		if i == 0 {
			first = id
		}
		last = id
	}
	r := e.h.do(t, "GET", "/v1/migrations", "t-admin", nil)
	var list struct{ Migrations []api.MigrationReport }
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Migrations, journalKeep)
	require.Equal(t, last, list.Migrations[journalKeep-1].ID)
	r = e.h.do(t, "GET", "/v1/migrations/"+first, "t-admin", nil)
	require.Equal(t, http.StatusNotFound, r.code)
	require.NoError(t, e.srv.Shutdown(context.Background()))
	raw, err := os.ReadFile(filepath.Join(dir, journalFile))
	require.NoError(t, err)
	var j migrationJournal
	require.NoError(t, json.Unmarshal(raw, &j))
	require.Len(t, j.Migrations, journalKeep)
}

// A gateway that died between saving the overlay and journalling the switch
// resumes into a finished switch: every project is already on the target,
// so the copy is not redone and delete_source goes on from there.
func TestMigrationResumeRecognisesALandedSwitch(t *testing.T) {
	dir := t.TempDir()
	src := &hookedBackend{memBackend: newMemBackend()}
	dst := &hookedBackend{memBackend: newMemBackend()}
	seed(t, src.memBackend, "payments", 3, func(i int) string { return fmt.Sprint("v", i) })
	seed(t, dst.memBackend, "payments", 3, func(i int) string { return fmt.Sprint("v", i) })
	rep := api.MigrationReport{ID: "0b7e6a53-5d35-4d4e-9a8a-2f9c3f1d6c11", State: api.MigrationRunning,
		Source: "a", Target: "b", Projects: []string{"payments"}, Versions: "latest",
		OnConflict: "fail", Switch: true, DeleteSource: true, Workers: 2,
		Total: 3, Copied: 3, Verified: 3, Errors: map[string]string{}, StartedBy: "admin"}
	require.NoError(t, writeState(filepath.Join(dir, journalFile), migrationJournal{Migrations: []api.MigrationReport{rep}}))
	require.NoError(t, writeState(filepath.Join(dir, routingOverlayFile), routingOverlay{Projects: map[string]string{"payments": "b"}}))

	e := newMigrateEnvAt(t, dir, src, dst, "a")
	got := e.wait(t, rep.ID)
	require.Equal(t, api.MigrationSucceeded, got.State, "%+v", got)
	require.True(t, got.Switched)
	require.Equal(t, 1, got.Resumed)
	require.Equal(t, 3, got.Copied, "the copy was not redone")
	require.Equal(t, 3, got.Deleted, "delete_source went on after the landed switch")
	page, err := src.memBackend.List(context.Background(), sdk.ListRequest{Project: "payments"})
	require.NoError(t, err)
	require.Empty(t, page.Secrets)
	rt, _ := e.srv.Routing().Lookup("payments")
	require.Equal(t, Route{Project: "payments", Backend: "b"}, rt, "writable, on the target")
}
