package idtoken

import (
	"bytes"
	"encoding/json"
	"path"
	"testing"

	"github.com/stretchr/testify/require"
)

func decodeTestClaims(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&m))
	return m
}

func TestClaimLookup(t *testing.T) {
	claims := decodeTestClaims(t, `{
		"sub": "system:serviceaccount:payments:api",
		"kubernetes.io": {"namespace": "payments", "pod": {"name": "api-1"}, "serviceaccount": {"name": "api"}},
		"kubernetes.io.namespace": "top-level wins",
		"a/b": "slash key",
		"a": {"b": "nested"},
		"x~y": {"p/q": "escaped"},
		"list": [{"name": "first"}, {"name": "second"}],
		"n": 42,
		"deep": {"x.y": {"z": "mixed"}}
	}`)
	tests := []struct {
		name  string
		claim string
		want  any // nil = not found
	}{
		{"top-level", "sub", "system:serviceaccount:payments:api"},
		{"JSON pointer", "/kubernetes.io/namespace", "payments"},
		{"slash path", "kubernetes.io/pod/name", "api-1"},
		{"dotted path, dotted key first", "kubernetes.io.serviceaccount.name", "api"},
		{"top-level key with dots beats the path", "kubernetes.io.namespace", "top-level wins"},
		{"pointer to the same path is exact", "/kubernetes.io/namespace", "payments"},
		{"top-level key with a slash", "a/b", "slash key"},
		{"pointer into a/b", "/a/b", "nested"},
		{"pointer escapes", "/x~0y/p~1q", "escaped"},
		{"pointer array index", "/list/1/name", "second"},
		{"pointer index out of range", "/list/2/name", nil},
		{"pointer index with leading zero", "/list/01/name", nil},
		{"dotted path into a dotted key", "deep.x.y.z", "mixed"},
		{"number", "n", json.Number("42")},
		{"missing", "nope", nil},
		{"missing nested", "kubernetes.io.nope", nil},
		{"through a scalar", "/sub/x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := claimLookup(claims, tt.claim)
			if tt.want == nil {
				require.False(t, ok, "found %v", got)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"acme/api", "acme/api", true},
		{"acme/api", "acme/api2", false},
		{"*", "", true},
		{"*", "repo:acme/api:ref:refs/heads/main", true},
		{"repo:acme/api:*", "repo:acme/api:ref:refs/heads/main", true},
		{"repo:acme/api:*", "repo:acme/apix:ref:refs/heads/main", false},
		{"refs/heads/release-*", "refs/heads/release-1/fix", true},
		{"refs/heads/release-*", "refs/tags/release-1", false},
		{"runner-?", "runner-7", true},
		{"runner-?", "runner-77", false},
		{"a?b", "a/b", true},
		{"[a-c]x", "bx", true},
		{"[^a-c]x", "dx", true},
		{"[^a-c]x", "ax", false},
		{`\*`, "*", true},
		{`\*`, "x", false},
		{`a.b`, "axb", false}, // regexp metacharacters are literal
		{`(a|b)`, "a", false},
		{"é*", "été", true},
		{"*\n", "a\n", true},
		{"[\\]]", "]", true},
		{"[\\-]", "-", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.value, func(t *testing.T) {
			m, err := compileGlob(tt.pattern)
			require.NoError(t, err)
			require.Equal(t, tt.want, m.match(tt.value))
		})
	}
}

// The glob is path.Match's syntax: on values without '/', where the one
// difference cannot show, both agree, and both refuse the same patterns.
func TestGlobAgreesWithPathMatch(t *testing.T) {
	patterns := []string{"*", "a*", "*b", "a?c", "[abc]", "[^abc]", "[a-z]*", `\a`, `[\]]`, "a*b*c",
		"[", "[]", "[^]", "a[", `a\`, "[a-]", "[-a]", "[]a]", "**", "?*?", "[a-c-e]"}
	values := []string{"", "a", "b", "abc", "axbxc", "z", "]", "-", "aa", "ab", "abcd", "xyz"}
	for _, p := range patterns {
		m, err := compileGlob(p)
		_, perr := path.Match(p, "")
		if perr == nil {
			for _, v := range values {
				if _, perr = path.Match(p, v); perr != nil {
					break
				}
			}
		}
		require.Equal(t, perr != nil, err != nil, "pattern %q: path.Match error %v, ours %v", p, perr, err)
		if err != nil {
			continue
		}
		for _, v := range values {
			want, _ := path.Match(p, v)
			require.Equal(t, want, m.match(v), "pattern %q value %q", p, v)
		}
	}
	// Stricter than path.Match, which takes a reversed range for a class
	// that matches nothing: in a rule it can only be a mistake.
	_, err := compileGlob("[z-a]")
	require.ErrorContains(t, err, "malformed character class")
}

func TestMatchValue(t *testing.T) {
	claims := decodeTestClaims(t, `{"groups": ["devs", 7, {"x": 1}, "admins"], "flag": true, "n": 42, "obj": {"a": "b"}, "null": null}`)
	tests := []struct {
		claim, pattern string
		want           bool
	}{
		{"groups", "admins", true},
		{"groups", "7", true},
		{"groups", "ops", false},
		{"flag", "true", true},
		{"n", "4?", true},
		{"obj", "*", false},
		{"null", "*", false},
		{"missing", "*", false},
	}
	for _, tt := range tests {
		t.Run(tt.claim+"="+tt.pattern, func(t *testing.T) {
			m, err := compileGlob(tt.pattern)
			require.NoError(t, err)
			r := compiledRule{subject: "s", claims: []claimMatcher{{name: tt.claim, m: m}}}
			require.Equal(t, tt.want, r.matches(claims))
		})
	}
}

func TestAuditValue(t *testing.T) {
	require.Equal(t, "x", auditValue("x"))
	require.Equal(t, "12", auditValue(json.Number("12")))
	require.Equal(t, "false", auditValue(false))
	require.Equal(t, `{"a":["b"]}`, auditValue(map[string]any{"a": []any{"b"}}))
	require.Equal(t, "null", auditValue(nil))
}
