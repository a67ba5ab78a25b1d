package backendtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func crudTests() []subtest {
	return []subtest{
		{"Ping", testPing},
		{"CRUD", testCRUD},
		{"CreateExisting", testCreateExisting},
		{"Missing", testMissing},
		{"Upsert", testUpsert},
		{"ReplaceDropsKeys", testReplaceDropsKeys},
		{"DeleteRemovesEveryVersion", testDeleteRemovesEveryVersion},
		{"NoAliasing", testNoAliasing},
		{"CancelledContext", testCancelledContext},
		{"ProjectIsolation", testProjectIsolation},
	}
}

func testPing(t *testing.T, s *suite) {
	require.NoError(t, s.b.Ping(ctxFor(t)), "Ping of a configured backend")
}

// testCRUD walks one secret through create, read, describe, list, replace
// and delete.
func testCRUD(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	data := map[string]string{"username": "admin", "password": "hunter2"}
	m := s.create(t, ctx, p, "database-config", data, nil)
	require.Equal(t, p, m.Project, "Write must answer with the project")
	require.Equal(t, "database-config", m.Name, "Write must answer with the name")
	require.Equal(t, []string{"password", "username"}, m.Keys, "Write must answer with the sorted keys")

	sec := s.read(t, ctx, p, "database-config", 0)
	requireData(t, data, sec.Data, "Read after create")
	require.Equal(t, int64(1), sec.Version, "Read after create: version")
	require.Equal(t, p, sec.Project, "Read: project")
	require.Equal(t, "database-config", sec.Name, "Read: name")

	d := s.describe(t, ctx, p, "database-config")
	require.Equal(t, int64(1), d.Version, "Describe after create: version")
	require.Equal(t, []string{"password", "username"}, d.Keys, "Describe after create: keys")

	page, err := s.b.List(ctx, sdk.ListRequest{Project: p})
	require.NoError(t, err, "List")
	require.Len(t, page.Secrets, 1, "List of a project with one secret")
	require.Equal(t, "database-config", page.Secrets[0].Name, "List entry name")
	require.Equal(t, p, page.Secrets[0].Project, "List entry project")
	require.Equal(t, int64(1), page.Secrets[0].Version, "List entry version")
	require.Equal(t, []string{"password", "username"}, page.Secrets[0].Keys, "List entry keys")
	require.Empty(t, page.NextPageToken, "List of one secret must not have a next page")

	data2 := map[string]string{"username": "admin", "password": "correct horse battery staple"}
	m2 := s.replace(t, ctx, p, "database-config", data2)
	require.Equal(t, int64(2), m2.Version, "replace must answer with version 2")
	requireData(t, data2, s.read(t, ctx, p, "database-config", 0).Data, "Read after replace")
	require.Equal(t, int64(2), s.describe(t, ctx, p, "database-config").Version, "Describe after replace")

	require.NoError(t, s.b.Delete(ctx, sdk.Ref{Project: p, Name: "database-config"}), "Delete")
	_, err = s.b.Describe(ctx, sdk.Ref{Project: p, Name: "database-config"})
	requireIs(t, err, sdk.ErrNotFound, "Describe after Delete")
	page, err = s.b.List(ctx, sdk.ListRequest{Project: p})
	require.NoError(t, err, "List after Delete")
	require.Empty(t, page.Secrets, "List after Delete must be empty")
}

func testCreateExisting(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	orig := map[string]string{"k": "original"}
	s.create(t, ctx, p, "dup", orig, nil)
	_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "dup", Data: map[string]string{"k": "other"}, Mode: sdk.WriteCreate})
	requireIs(t, err, sdk.ErrAlreadyExists, "Write(create) on an existing secret")
	sec := s.read(t, ctx, p, "dup", 0)
	require.Equal(t, int64(1), sec.Version, "a refused create must not add a version")
	requireData(t, orig, sec.Data, "a refused create must not change the data")
}

// testMissing checks every operation on a secret that does not exist, and on
// a version that does not exist.
func testMissing(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	ref := sdk.Ref{Project: p, Name: "never-created"}
	data := map[string]string{"k": "v"}

	_, err := s.b.Describe(ctx, ref)
	requireIs(t, err, sdk.ErrNotFound, "Describe of a missing secret")
	_, err = s.b.Read(ctx, ref)
	requireIs(t, err, sdk.ErrNotFound, "Read of a missing secret")
	_, err = s.b.Read(ctx, sdk.Ref{Project: p, Name: "never-created", Version: 1})
	requireIs(t, err, sdk.ErrNotFound, "Read of version 1 of a missing secret")
	_, err = s.b.Versions(ctx, ref)
	requireIs(t, err, sdk.ErrNotFound, "Versions of a missing secret")
	requireIs(t, s.b.Delete(ctx, ref), sdk.ErrNotFound, "Delete of a missing secret")
	requireIs(t, s.b.Delete(ctx, sdk.Ref{Project: p, Name: "never-created", Version: 1}), sdk.ErrNotFound,
		"conditional Delete of a missing secret")
	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "never-created", Data: data, Mode: sdk.WriteReplace})
	requireIs(t, err, sdk.ErrNotFound, "Write(replace) of a missing secret")
	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "never-created", Data: data, Mode: sdk.WriteUpsert, ExpectedVersion: 1})
	requireIs(t, err, sdk.ErrNotFound, "Write(upsert) with ExpectedVersion 1 of a missing secret")
	_, err = s.b.Describe(ctx, ref)
	requireIs(t, err, sdk.ErrNotFound, "refused writes must not have created the secret")

	// Versions that were never written, on a secret that exists.
	s.create(t, ctx, p, "exists", data, nil)
	s.replace(t, ctx, p, "exists", data)
	for _, v := range []int64{3, 4, 1000} {
		_, err = s.b.Read(ctx, sdk.Ref{Project: p, Name: "exists", Version: v})
		requireIs(t, err, sdk.ErrNotFound, "Read of a version never written")
	}
}

func testUpsert(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.cleanup(t, p, "upserted")
	v1 := map[string]string{"a": "1"}
	m, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "upserted", Data: v1, Mode: sdk.WriteUpsert})
	require.NoError(t, err, "Write(upsert) of a missing secret creates it")
	require.Equal(t, int64(1), m.Version, "upsert that creates must answer with version 1")
	v2 := map[string]string{"b": "2"}
	m, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "upserted", Data: v2, Mode: sdk.WriteUpsert})
	require.NoError(t, err, "Write(upsert) of an existing secret replaces it")
	require.Equal(t, int64(2), m.Version, "upsert that replaces must answer with version 2")
	requireData(t, v2, s.read(t, ctx, p, "upserted", 0).Data, "Read after upsert")
	m, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "upserted", Data: v1, Mode: sdk.WriteUpsert, ExpectedVersion: 2})
	require.NoError(t, err, "Write(upsert) with the current ExpectedVersion")
	require.Equal(t, int64(3), m.Version, "upsert with ExpectedVersion 2 must answer with version 3")
}

// testReplaceDropsKeys: a write holds exactly its Data; keys it leaves out
// are gone from the new version but stay in the old one.
func testReplaceDropsKeys(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	v1 := map[string]string{"a": "1", "b": "2", "c": "3"}
	s.create(t, ctx, p, "shrinks", v1, nil)
	v2 := map[string]string{"d": "4"}
	m := s.replace(t, ctx, p, "shrinks", v2)
	require.Equal(t, []string{"d"}, m.Keys, "replace must answer with the new version's keys only")
	sec := s.read(t, ctx, p, "shrinks", 0)
	requireData(t, v2, sec.Data, "Read after a replace that drops keys")
	require.Equal(t, []string{"d"}, sec.Keys, "Read: keys of the latest version")
	if !s.caps.Versions {
		return
	}
	old := s.read(t, ctx, p, "shrinks", 1)
	requireData(t, v1, old.Data, "Read of version 1 after a replace")
	require.Equal(t, []string{"a", "b", "c"}, old.Keys, "Read of version 1: Keys are that version's keys")
	require.Equal(t, int64(1), old.Version, "Read of version 1: Version is the version read")
}

func testDeleteRemovesEveryVersion(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "short-lived", map[string]string{"gen": "1"}, nil)
	s.replace(t, ctx, p, "short-lived", map[string]string{"gen": "2"})
	s.replace(t, ctx, p, "short-lived", map[string]string{"gen": "3"})
	require.NoError(t, s.b.Delete(ctx, sdk.Ref{Project: p, Name: "short-lived"}), "Delete")

	for v := int64(0); v <= 3; v++ {
		_, err := s.b.Read(ctx, sdk.Ref{Project: p, Name: "short-lived", Version: v})
		requireIs(t, err, sdk.ErrNotFound, "Read after Delete (every version must be gone)")
	}
	_, err := s.b.Versions(ctx, sdk.Ref{Project: p, Name: "short-lived"})
	requireIs(t, err, sdk.ErrNotFound, "Versions after Delete")

	// The name is free again at once (or within the DeletePropagation the
	// backend declares), and the new secret starts from scratch.
	fresh := map[string]string{"gen": "new"}
	s.createAfterDelete(t, ctx, p, "short-lived", fresh, time.Now())
	sec := s.read(t, ctx, p, "short-lived", 0)
	require.Equal(t, int64(1), sec.Version, "a re-created secret starts at version 1")
	requireData(t, fresh, sec.Data, "Read of a re-created secret")
	_, err = s.b.Read(ctx, sdk.Ref{Project: p, Name: "short-lived", Version: 2})
	requireIs(t, err, sdk.ErrNotFound, "Read of version 2 of a re-created secret (old versions must not come back)")
	vs, err := s.b.Versions(ctx, sdk.Ref{Project: p, Name: "short-lived"})
	require.NoError(t, err, "Versions of a re-created secret")
	require.Len(t, vs, 1, "a re-created secret has exactly one version")
	require.Equal(t, int64(1), vs[0].Version, "the one version of a re-created secret")
}

// testNoAliasing: a backend must copy maps in and out, so that neither the
// caller nor the backend can change the other's data afterwards.
func testNoAliasing(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	data := map[string]string{"k": "v"}
	labels := map[string]string{"env": "prod"}
	if !s.caps.Labels {
		labels = nil
	}
	s.create(t, ctx, p, "aliased", data, labels)
	data["k"], data["extra"] = "changed by caller", "x"
	if labels != nil {
		labels["env"] = "changed"
	}
	sec := s.read(t, ctx, p, "aliased", 0)
	requireData(t, map[string]string{"k": "v"}, sec.Data, "Read after the caller changed its map")
	if labels != nil {
		require.Equal(t, map[string]string{"env": "prod"}, sec.Labels, "labels after the caller changed its map")
	}
	sec.Data["k"] = "changed by reader"
	requireData(t, map[string]string{"k": "v"}, s.read(t, ctx, p, "aliased", 0).Data, "Read after a reader changed its copy")
}

// testCancelledContext: a call with a cancelled context fails, and a write
// that failed did not happen.
func testCancelledContext(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.cleanup(t, p, "cancelled")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.b.Write(cctx, sdk.WriteRequest{Project: p, Name: "cancelled", Data: map[string]string{"k": "v"}, Mode: sdk.WriteCreate})
	require.Error(t, err, "Write with a cancelled context must fail")
	_, err = s.b.Describe(ctx, sdk.Ref{Project: p, Name: "cancelled"})
	requireIs(t, err, sdk.ErrNotFound, "a Write that failed on a cancelled context must not have created the secret")
}

// testProjectIsolation: the same name in two projects is two secrets. The
// second project's name extends the first's, so that a mapping that joins
// project and name with '-' (not injective) is caught: "p" + "x-db" and
// "p-x" + "db" would both be "p-x-db".
func testProjectIsolation(t *testing.T, s *suite) {
	ctx, p1 := ctxFor(t), newProject(t)
	p2 := p1 + "-x"
	d1 := map[string]string{"owner": "one"}
	d2 := map[string]string{"owner": "two"}
	s.create(t, ctx, p1, "shared-name", d1, nil)
	s.create(t, ctx, p2, "shared-name", d2, nil)
	s.create(t, ctx, p1, "x-db", map[string]string{"which": "p1/x-db"}, nil)
	s.create(t, ctx, p2, "db", map[string]string{"which": "p2/db"}, nil)

	requireData(t, d1, s.read(t, ctx, p1, "shared-name", 0).Data, "the first project's secret")
	requireData(t, d2, s.read(t, ctx, p2, "shared-name", 0).Data, "the second project's secret of the same name")
	requireData(t, map[string]string{"which": "p1/x-db"}, s.read(t, ctx, p1, "x-db", 0).Data, "project/name mapping must be injective")
	requireData(t, map[string]string{"which": "p2/db"}, s.read(t, ctx, p2, "db", 0).Data, "project/name mapping must be injective")
	_, err := s.b.Describe(ctx, sdk.Ref{Project: p1, Name: "db"})
	requireIs(t, err, sdk.ErrNotFound, "a secret of one project must not be visible in another")

	for _, c := range []struct {
		project string
		want    []string
	}{{p1, []string{"shared-name", "x-db"}}, {p2, []string{"db", "shared-name"}}} {
		got := listAll(t, ctx, s, sdk.ListRequest{Project: c.project})
		require.Equal(t, c.want, names(got), "List of project %q must show exactly its own secrets", c.project)
		for _, m := range got {
			require.Equal(t, c.project, m.Project, "List entry of project %q names another project", c.project)
		}
	}

	require.NoError(t, s.b.Delete(ctx, sdk.Ref{Project: p1, Name: "shared-name"}), "Delete in the first project")
	requireData(t, d2, s.read(t, ctx, p2, "shared-name", 0).Data, "a delete in one project must not touch another")
	require.Equal(t, int64(1), s.describe(t, ctx, p2, "shared-name").Version, "a delete in one project must not touch another")
}

// createAfterDelete creates a secret whose name was just deleted. A backend
// that declares Capabilities.DeletePropagation may refuse with
// ErrUnavailable until that long after the delete; any other error, or
// ErrUnavailable past the declared delay, fails.
func (s *suite) createAfterDelete(t *testing.T, ctx context.Context, project, name string, data map[string]string, deleted time.Time) {
	t.Helper()
	for {
		m, err := s.b.Write(ctx, sdk.WriteRequest{Project: project, Name: name, Data: data, Mode: sdk.WriteCreate})
		if err == nil {
			require.Equal(t, int64(1), m.Version, "a re-created secret starts at version 1")
			return
		}
		if !errors.Is(err, sdk.ErrUnavailable) || time.Since(deleted) > s.caps.DeletePropagation {
			require.NoError(t, err, "Write (create) of a deleted name (Capabilities.DeletePropagation is %v)", s.caps.DeletePropagation)
		}
		select {
		case <-ctx.Done():
			require.NoError(t, ctx.Err(), "waiting for a deleted name to be free")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
