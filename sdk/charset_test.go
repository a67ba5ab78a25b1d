package sdk

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The byte-class checks must accept exactly what the documented patterns
// accept: edge cases, then random strings over an alphabet of every allowed
// character plus neighbours and multi-byte runes.
func TestCharsetMatchesPatterns(t *testing.T) {
	rules := []struct {
		pattern string
		check   func(string) bool
	}{
		{`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`, validProject},
		{`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`, validName},
		{`^[A-Za-z0-9_-]{1,128}$`, validPrefix},
		{`^[A-Za-z0-9_.-]{1,128}$`, validKey},
		{labelKeyPattern, validLabelKey},
	}
	edge := []string{"", "a", "A", "0", "-", "_", ".", "a-", "-a", "a-b", "a_b", "a.b", "Ab", "aB", "é", "aé", "a\n", "\na", "a b",
		"a\x00", strings.Repeat("a", 62), strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 127),
		strings.Repeat("a", 128), strings.Repeat("a", 129), "a" + strings.Repeat("-", 61) + "a", "a" + strings.Repeat("-", 62) + "a",
		"Z" + strings.Repeat("_", 127), "/", "@", "`", "{", "[", ":", "\u0430", "ａ"}
	alphabet := []string{"a", "z", "A", "Z", "0", "9", "-", "_", ".", "/", "@", "`", "{", "[", ":", " ", "\n", "é", "日", "\x00", "\xff"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range rules {
		re := regexp.MustCompile(r.pattern)
		cases := append([]string(nil), edge...)
		for range 20000 {
			n := rng.IntN(8)
			if rng.IntN(10) == 0 {
				n = 55 + rng.IntN(80)
			}
			var b strings.Builder
			for range n {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			cases = append(cases, b.String())
		}
		for _, s := range cases {
			if got, want := r.check(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: check says %t, pattern says %t", r.pattern, s, got, want)
			}
		}
	}
}
