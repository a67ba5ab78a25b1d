package backendtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func invalidTests() []subtest {
	return []subtest{
		{"InvalidProject", testInvalidProject},
		{"InvalidName", testInvalidName},
		{"InvalidData", testInvalidData},
		{"InvalidRequest", testInvalidRequest},
	}
}

var badProjects = []string{"", "UPPER", "under_score", "-lead", "trail-", "has space", "sl/ash", "dot.ted", strings.Repeat("p", 64), "ünï", "bad\xffutf8"}

var badNames = []string{"", "-lead", "_lead", "has space", "sl/ash", "dot.ted", "new\nline", "ünï", "a:b", strings.Repeat("n", sdk.MaxNameLen+1), "..", "%2F", "bad\xffutf8"}

// everyCall runs each operation of the Backend on ref and requires ErrInvalid.
func everyCall(t *testing.T, s *suite, ref sdk.Ref, what string) {
	t.Helper()
	ctx := ctxFor(t)
	data := map[string]string{"k": "v"}
	for _, mode := range []sdk.WriteMode{sdk.WriteCreate, sdk.WriteReplace, sdk.WriteUpsert} {
		_, err := s.b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data, Mode: mode})
		requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("Write(%v) with %s", mode, what))
	}
	_, err := s.b.Read(ctx, ref)
	requireIs(t, err, sdk.ErrInvalid, "Read with "+what)
	_, err = s.b.Describe(ctx, ref)
	requireIs(t, err, sdk.ErrInvalid, "Describe with "+what)
	_, err = s.b.Versions(ctx, ref)
	requireIs(t, err, sdk.ErrInvalid, "Versions with "+what)
	requireIs(t, s.b.Delete(ctx, ref), sdk.ErrInvalid, "Delete with "+what)
}

func testInvalidProject(t *testing.T, s *suite) {
	for _, p := range badProjects {
		everyCall(t, s, sdk.Ref{Project: p, Name: "fine"}, fmt.Sprintf("project %q", p))
		_, err := s.b.List(ctxFor(t), sdk.ListRequest{Project: p})
		requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("List with project %q", p))
	}
}

func testInvalidName(t *testing.T, s *suite) {
	p := newProject(t)
	for _, n := range badNames {
		everyCall(t, s, sdk.Ref{Project: p, Name: n}, fmt.Sprintf("name %q", n))
	}
	// Nothing of the above may have created anything.
	page, err := s.b.List(ctxFor(t), sdk.ListRequest{Project: p})
	require.NoError(t, err, "List")
	require.Empty(t, page.Secrets, "writes refused for a bad name must create nothing")
}

func testInvalidData(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "target", map[string]string{"k": "v"}, nil)
	s.cleanup(t, p, "new")
	cases := map[string]map[string]string{
		"nil data":         nil,
		"empty data":       {},
		"empty key":        {"": "v"},
		"key with space":   {"has space": "v"},
		"key with slash":   {"a/b": "v"},
		"key with colon":   {"a:b": "v"},
		"non-ASCII key":    {"ключ": "v"},
		"key too long":     {strings.Repeat("k", sdk.MaxKeyLen+1): "v"},
		"bad key among ok": {"ok": "v", "not ok": "v"},
		"invalid UTF-8":    {"k": "\xff\xfe"},
	}
	for what, data := range cases {
		for _, name := range []string{"new", "target"} {
			mode := sdk.WriteUpsert
			_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: name, Data: data, Mode: mode})
			requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("Write(%v) of %q with %s", mode, name, what))
		}
	}
	_, err := s.b.Describe(ctx, sdk.Ref{Project: p, Name: "new"})
	requireIs(t, err, sdk.ErrNotFound, "refused writes must not create a secret")
	require.Equal(t, int64(1), s.describe(t, ctx, p, "target").Version, "refused writes must not add a version")
}

func testInvalidRequest(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "target", map[string]string{"k": "v"}, nil)
	data := map[string]string{"k": "v2"}
	_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "target", Data: data})
	requireIs(t, err, sdk.ErrInvalid, "Write without a mode")
	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "target", Data: data, Mode: sdk.WriteMode(99)})
	requireIs(t, err, sdk.ErrInvalid, "Write with an unknown mode")
	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "target", Data: data, Mode: sdk.WriteReplace, ExpectedVersion: -1})
	requireIs(t, err, sdk.ErrInvalid, "Write with a negative ExpectedVersion")
	_, err = s.b.Read(ctx, sdk.Ref{Project: p, Name: "target", Version: -1})
	requireIs(t, err, sdk.ErrInvalid, "Read of version -1")
	requireIs(t, s.b.Delete(ctx, sdk.Ref{Project: p, Name: "target", Version: -1}), sdk.ErrInvalid, "Delete with version -1")
	for _, req := range []sdk.ListRequest{
		{Project: p, PageSize: -1},
		{Project: p, PageSize: sdk.MaxPageSize + 1},
		{Project: p, Prefix: "bad prefix"},
		{Project: p, Prefix: "sl/ash"},
	} {
		_, err = s.b.List(ctx, req)
		requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("List(prefix=%q, page_size=%d)", req.Prefix, req.PageSize))
	}
	require.Equal(t, int64(1), s.describe(t, ctx, p, "target").Version, "refused requests must not add a version")
}
