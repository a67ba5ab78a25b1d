package backendtest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func listTests() []subtest {
	return []subtest{
		{"ListPagination", testListPagination},
		{"ListPrefix", testListPrefix},
		{"ListEmptyProject", testListEmptyProject},
		{"ListBadPageToken", testListBadPageToken},
		{"ListPageTokenReplay", testListPageTokenReplay},
	}
}

// listAll follows NextPageToken to the end, checking page sizes and that the
// listing terminates.
func listAll(t *testing.T, ctx context.Context, s *suite, req sdk.ListRequest) []sdk.Meta {
	t.Helper()
	var all []sdk.Meta
	limit := sdk.PageSize(req.PageSize)
	// A correct backend needs at most total/limit+1 pages; a few empty pages
	// are tolerated, an endless listing is not.
	for pages := 0; ; pages++ {
		require.LessOrEqual(t, pages, 2*len(all)+10, "List(prefix=%q, page_size=%d) does not terminate", req.Prefix, req.PageSize)
		page, err := s.b.List(ctx, req)
		require.NoError(t, err, "List(prefix=%q, page_size=%d) page %d", req.Prefix, req.PageSize, pages+1)
		require.LessOrEqual(t, len(page.Secrets), limit, "List page %d holds more than page_size=%d secrets", pages+1, req.PageSize)
		all = append(all, page.Secrets...)
		if page.NextPageToken == "" {
			return all
		}
		req.PageToken = page.NextPageToken
	}
}

func names(ms []sdk.Meta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// createMany creates the named secrets with a bounded worker pool: remote
// backends answer slowly one at a time but handle a few calls at once.
func (s *suite) createMany(t *testing.T, ctx context.Context, project string, names []string) {
	t.Helper()
	const workers = 8
	s.cleanup(t, project, names...)
	work := make(chan string)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				_, err := s.b.Write(ctx, sdk.WriteRequest{Project: project, Name: n, Data: map[string]string{"name": n}, Mode: sdk.WriteCreate})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("create %q: %w", n, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	require.Empty(t, errs, "creating %d secrets in %q", len(names), project)
}

// paginationNames returns 250 names whose byte order differs from their
// creation order and mixes case, '-' and '_' (which sort differently in
// byte order than in most collations).
func paginationNames() []string {
	stems := []string{"alpha-", "alpha_", "alpha", "Alpha", "B", "beta-x"}
	out := make([]string, 0, 250)
	for i := 0; i < 250; i++ {
		out = append(out, fmt.Sprintf("%s%03d", stems[i%len(stems)], (i*97)%250))
	}
	return out
}

func testListPagination(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	created := paginationNames()
	s.createMany(t, ctx, p, created)
	want := append([]string(nil), created...)
	sort.Strings(want)

	for _, size := range []int{1, 7, 100, 0} {
		got := listAll(t, ctx, s, sdk.ListRequest{Project: p, PageSize: size})
		seen := map[string]int{}
		for _, m := range got {
			seen[m.Name]++
			require.Equal(t, p, m.Project, "page_size=%d: list entry %q names another project", size, m.Name)
		}
		for _, n := range created {
			require.Equal(t, 1, seen[n], "page_size=%d: secret %q listed %d times, want exactly once", size, n, seen[n])
		}
		require.Equal(t, want, names(got), "page_size=%d: the listing must hold each secret once, sorted by name (byte order)", size)
	}
}

func testListPrefix(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	all := []string{"app", "app-api", "app-web", "app_worker", "apple", "ap", "b-app", "db-main", "App-upper"}
	s.createMany(t, ctx, p, all)
	cases := []struct {
		prefix string
		want   []string
	}{
		{"app", []string{"app", "app-api", "app-web", "app_worker", "apple"}},
		{"app-", []string{"app-api", "app-web"}},
		{"ap", []string{"ap", "app", "app-api", "app-web", "app_worker", "apple"}},
		{"app-web", []string{"app-web"}},
		{"db", []string{"db-main"}},
		{"zzz", nil},
		{"", []string{"App-upper", "ap", "app", "app-api", "app-web", "app_worker", "apple", "b-app", "db-main"}},
	}
	for _, c := range cases {
		for _, size := range []int{1, 100} {
			got := names(listAll(t, ctx, s, sdk.ListRequest{Project: p, Prefix: c.prefix, PageSize: size}))
			if c.want == nil {
				require.Empty(t, got, "List(prefix=%q, page_size=%d) must match nothing", c.prefix, size)
				continue
			}
			require.Equal(t, c.want, got, "List(prefix=%q, page_size=%d)", c.prefix, size)
		}
	}
}

func testListEmptyProject(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	page, err := s.b.List(ctx, sdk.ListRequest{Project: p})
	require.NoError(t, err, "List of a project with no secrets is not an error")
	require.Empty(t, page.Secrets, "List of a project with no secrets")
	require.Empty(t, page.NextPageToken, "List of a project with no secrets has no next page")
}

// testListBadPageToken: a token the backend never issued is bad input, so
// the gateway can answer 400 rather than 500.
func testListBadPageToken(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "one", map[string]string{"k": "v"}, nil)
	_, err := s.b.List(ctx, sdk.ListRequest{Project: p, PageToken: "%%% not a page token \x01 %%%"})
	requireIs(t, err, sdk.ErrInvalid, "List with a page token the backend never issued")
}

// testListPageTokenReplay: a page token continues only the listing it came
// from. Replayed with another project or prefix it is bad input, not a
// position to list from: otherwise a token names a place in a listing the
// caller was never given (the gateway scopes lists by project and glob).
func testListPageTokenReplay(t *testing.T, s *suite) {
	ctx, p, q := ctxFor(t), newProject(t), newProject(t)
	created := []string{"app-1", "app-2", "app-3"}
	// The other project holds the same names, so a backend that ignores the
	// binding would answer a plausible page rather than fail by accident.
	s.createMany(t, ctx, p, created)
	s.createMany(t, ctx, q, created)

	issued := sdk.ListRequest{Project: p, Prefix: "app", PageSize: 1}
	first, err := s.b.List(ctx, issued)
	require.NoError(t, err, "List(prefix=%q, page_size=1)", issued.Prefix)
	require.NotEmpty(t, first.NextPageToken, "List of 3 secrets with page_size=1 has a next page")

	cont := issued
	cont.PageToken = first.NextPageToken
	cont.PageSize = 0 // the page size is the caller's to change between pages
	page, err := s.b.List(ctx, cont)
	require.NoError(t, err, "the token continues the listing it came from")
	require.Equal(t, []string{"app-2", "app-3"}, names(page.Secrets), "the page after the token")

	for _, c := range []struct {
		what string
		req  sdk.ListRequest
	}{
		{"another project", sdk.ListRequest{Project: q, Prefix: "app"}},
		{"no prefix", sdk.ListRequest{Project: p}},
		{"a longer prefix", sdk.ListRequest{Project: p, Prefix: "app-"}},
		{"a shorter prefix", sdk.ListRequest{Project: p, Prefix: "ap"}},
		{"another project and no prefix", sdk.ListRequest{Project: q}},
	} {
		c.req.PageToken = first.NextPageToken
		c.req.PageSize = 1
		page, err := s.b.List(ctx, c.req)
		requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("List with a page token issued for project %q prefix %q, replayed on %s (answered %d secrets)", p, issued.Prefix, c.what, len(page.Secrets)))
	}
}
