package sdk_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// requirePageTokenError checks that err is the 400-worthy error a bad token
// must be: ErrInvalid, as a FieldError naming page_token.
func requirePageTokenError(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, sdk.ErrInvalid, msgAndArgs...)
	var fe *sdk.FieldError
	require.True(t, errors.As(err, &fe), "a bad page token is a *sdk.FieldError, got %T", err)
	require.Equal(t, "page_token", fe.Field)
}

func TestPageTokenRoundTrip(t *testing.T) {
	long := strings.Repeat("Z", sdk.MaxNameLen)
	cases := []struct {
		name string
		req  sdk.ListRequest
		last string
	}{
		{"no prefix", sdk.ListRequest{Project: "p"}, "db-main"},
		{"prefix", sdk.ListRequest{Project: "p", Prefix: "db"}, "db-main"},
		{"prefix is the name", sdk.ListRequest{Project: "p", Prefix: "db-main"}, "db-main"},
		{"longest name and prefix", sdk.ListRequest{Project: strings.Repeat("a", 63), Prefix: long}, long},
		{"page size is not bound", sdk.ListRequest{Project: "p", PageSize: 7}, "x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := sdk.EncodePageToken(c.req, c.last)
			require.True(t, strings.HasPrefix(tok, "n1."), "tokens carry a format version: %q", tok)
			for _, r := range tok {
				require.True(t, r < 128 && (r == '-' || r == '_' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'),
					"token %q must be URL-safe", tok)
			}
			req := c.req
			req.PageToken = tok
			req.PageSize = 1 // another page size on the next call is fine
			after, err := sdk.DecodePageToken(req)
			require.NoError(t, err)
			require.Equal(t, c.last, after)
		})
	}

	after, err := sdk.DecodePageToken(sdk.ListRequest{Project: "p"})
	require.NoError(t, err, "no token is the first page")
	require.Empty(t, after)
}

func TestDecodePageTokenRefuses(t *testing.T) {
	issued := sdk.ListRequest{Project: "p1", Prefix: "app"}
	tok := sdk.EncodePageToken(issued, "app-2")
	body := strings.TrimPrefix(tok, "n1.")
	raw, err := base64.RawURLEncoding.DecodeString(body)
	require.NoError(t, err)
	flipped := slices.Clone(raw)
	flipped[len(flipped)-1] ^= 0x01 // "app-2" -> "app-3": a valid name, another position
	tagFlipped := slices.Clone(raw)
	tagFlipped[0] ^= 0x80

	cases := []struct {
		name  string
		req   sdk.ListRequest
		token string
	}{
		{"another project", sdk.ListRequest{Project: "p2", Prefix: "app"}, tok},
		{"another prefix", sdk.ListRequest{Project: "p1", Prefix: "app-"}, tok},
		{"no prefix", sdk.ListRequest{Project: "p1"}, tok},
		{"project and prefix shifted", sdk.ListRequest{Project: "p1a", Prefix: "pp"}, tok},
		{"garbage", issued, "%%% not a page token %%%"},
		{"empty body", issued, "n1."},
		{"version only, no dot", issued, "n1"},
		{"unknown version", issued, "n2." + body},
		{"no version", issued, body},
		{"not base64url", issued, "n1." + strings.ReplaceAll(base64.StdEncoding.EncodeToString(raw), "A", "+")},
		{"truncated by one character", issued, tok[:len(tok)-1]},
		{"truncated by four characters", issued, tok[:len(tok)-4]},
		{"tag only", issued, "n1." + base64.RawURLEncoding.EncodeToString(raw[:12])},
		{"name altered", issued, "n1." + base64.RawURLEncoding.EncodeToString(flipped)},
		{"tag altered", issued, "n1." + base64.RawURLEncoding.EncodeToString(tagFlipped)},
		{"bound but not a name", issued, sdk.EncodePageToken(issued, "../etc")},
		{"bound but empty", issued, sdk.EncodePageToken(issued, "")},
		{"bound but outside the prefix", issued, sdk.EncodePageToken(issued, "b")},
		{"too long", issued, tok + strings.Repeat("A", 200)},
		{"the file plugin's old format", issued, "f1.YXBwLTI"},
		{"a bare base64 name, as gcp and memplugin issued", issued, "YXBwLTI"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := c.req
			req.PageToken = c.token
			after, err := sdk.DecodePageToken(req)
			requirePageTokenError(t, err)
			require.Empty(t, after)
			require.NotContains(t, err.Error(), "app-", "the error does not echo the token's name")
			_, _, err = sdk.PageNames([]string{"app-1", "app-2", "app-3"}, req)
			requirePageTokenError(t, err, "PageNames refuses what DecodePageToken refuses")
		})
	}
}

// walk pages through sorted with req until no token is left, returning the
// pages; it fails on an empty page that carries a token.
func walk(t *testing.T, sorted []string, req sdk.ListRequest) [][]string {
	t.Helper()
	var pages [][]string
	for {
		require.LessOrEqual(t, len(pages), len(sorted)+1, "the listing does not terminate")
		page, next, err := sdk.PageNames(sorted, req)
		require.NoError(t, err)
		pages = append(pages, page)
		if next == "" {
			return pages
		}
		require.NotEmpty(t, page, "an empty page must not carry a token")
		req.PageToken = next
	}
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

func TestPageNames(t *testing.T) {
	mixed := []string{"App", "a", "a-b", "a_b", "ab", "abc", "b", "ba"} // byte order
	cases := []struct {
		name   string
		sorted []string
		prefix string
		size   int
		want   [][]string
	}{
		{"empty slice", nil, "", 2, [][]string{{}}},
		{"prefix matches nothing", mixed, "zz", 2, [][]string{{}}},
		{"prefix sorts past everything", mixed, "c", 1, [][]string{{}}},
		{"one partial page", []string{"a", "b"}, "", 5, [][]string{{"a", "b"}}},
		{"page boundaries", []string{"a", "b", "c", "d", "e"}, "", 2, [][]string{{"a", "b"}, {"c", "d"}, {"e"}}},
		{"exact multiple ends without an empty page", []string{"a", "b", "c", "d"}, "", 2, [][]string{{"a", "b"}, {"c", "d"}}},
		{"exact single page", []string{"a", "b"}, "", 2, [][]string{{"a", "b"}}},
		{"prefix in the middle", mixed, "a", 2, [][]string{{"a", "a-b"}, {"a_b", "ab"}, {"abc"}}},
		{"prefix narrower", mixed, "ab", 1, [][]string{{"ab"}, {"abc"}}},
		{"prefix is case-sensitive", mixed, "A", 10, [][]string{{"App"}}},
		{"prefix at the end", mixed, "b", 1, [][]string{{"b"}, {"ba"}}},
		{"size 0 is the default", seq("s", sdk.DefaultPageSize+1), "", 0, [][]string{seq("s", sdk.DefaultPageSize), {fmt.Sprintf("s%05d", sdk.DefaultPageSize)}}},
		{"size is capped", seq("s", sdk.MaxPageSize+1), "", sdk.MaxPageSize + 5, [][]string{seq("s", sdk.MaxPageSize), {fmt.Sprintf("s%05d", sdk.MaxPageSize)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := walk(t, c.sorted, sdk.ListRequest{Project: "p", Prefix: c.prefix, PageSize: c.size})
			require.Len(t, got, len(c.want), "pages: %q", got)
			for i := range got {
				require.Equal(t, c.want[i], append([]string{}, got[i]...), "page %d", i+1)
			}
		})
	}
}

func TestPageNamesContinuesAfterTheName(t *testing.T) {
	req := sdk.ListRequest{Project: "p", PageSize: 2}
	cases := []struct {
		name   string
		sorted []string
		after  string
		want   []string
		more   bool
	}{
		{"the name is still there", []string{"a", "b", "c", "d"}, "b", []string{"c", "d"}, false},
		{"the name was deleted", []string{"a", "c", "d", "e"}, "b", []string{"c", "d"}, true},
		{"nothing follows any more", []string{"a", "b"}, "b", nil, false},
		{"everything left sorts before it", []string{"a"}, "b", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := req
			r.PageToken = sdk.EncodePageToken(req, c.after)
			page, next, err := sdk.PageNames(c.sorted, r)
			require.NoError(t, err)
			require.Equal(t, c.want, append([]string(nil), page...))
			require.Equal(t, c.more, next != "", "a token only when more names follow")
		})
	}
}

// A page is a window on the caller's slice; appending to it must not
// overwrite the names that follow.
func TestPageNamesDoesNotAliasAppends(t *testing.T) {
	sorted := []string{"a", "b", "c"}
	page, _, err := sdk.PageNames(sorted, sdk.ListRequest{Project: "p", PageSize: 1})
	require.NoError(t, err)
	_ = append(page, "zzz")
	require.Equal(t, []string{"a", "b", "c"}, sorted)
}
