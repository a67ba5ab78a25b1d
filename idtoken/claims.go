package idtoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxAuditValue bounds one audit claim's value: an audit record must not
// grow with whatever the issuer puts in a token.
const maxAuditValue = 256

// matcher matches one claim value.
type matcher struct {
	literal string         // when re is nil: the value must equal it
	re      *regexp.Regexp // a glob
}

func (m matcher) match(s string) bool {
	if m.re == nil {
		return s == m.literal
	}
	return m.re.MatchString(s)
}

// compileGlob turns a pattern in path.Match syntax into a matcher. '*' and
// '?' also match '/', unlike path.Match: claims such as sub
// ("repo:acme/api:ref:refs/heads/main") and ref are full of slashes, and a
// rule "repo:acme/api:*" must mean what it says. The pattern becomes an
// anchored regular expression, which Go matches in linear time.
func compileGlob(p string) (matcher, error) {
	if !strings.ContainsAny(p, `*?[\`) {
		return matcher{literal: p}, nil
	}
	var b strings.Builder
	b.WriteString(`\A(?s:`)
	for i := 0; i < len(p); {
		switch p[i] {
		case '*':
			for i < len(p) && p[i] == '*' {
				i++
			}
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
			i++
		case '[':
			n, class, err := globClass(p[i+1:])
			if err != nil {
				return matcher{}, err
			}
			b.WriteString(class)
			i += 1 + n
		case '\\':
			if i+1 == len(p) {
				return matcher{}, fmt.Errorf("bad glob %q: trailing backslash", p)
			}
			r, w := utf8.DecodeRuneInString(p[i+1:])
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += 1 + w
		default:
			r, w := utf8.DecodeRuneInString(p[i:])
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += w
		}
	}
	b.WriteString(`)\z`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return matcher{}, fmt.Errorf("bad glob %q: %w", p, err)
	}
	return matcher{re: re}, nil
}

// globClass translates a path.Match character class, s being what follows
// its '['. It returns how many bytes of s the class used (up to and with
// its ']') and the regexp class.
func globClass(s string) (int, string, error) {
	bad := fmt.Errorf("bad glob: malformed character class [%s", s)
	var b strings.Builder
	b.WriteByte('[')
	i := 0
	if i < len(s) && s[i] == '^' {
		b.WriteByte('^')
		i++
	}
	ranges := 0
	for {
		if i == len(s) {
			return 0, "", bad
		}
		if s[i] == ']' && ranges > 0 {
			b.WriteByte(']')
			return i + 1, b.String(), nil
		}
		lo, n, ok := classChar(s[i:])
		if !ok {
			return 0, "", bad
		}
		i += n
		hi := lo
		if i < len(s) && s[i] == '-' {
			if hi, n, ok = classChar(s[i+1:]); !ok {
				return 0, "", bad
			}
			i += 1 + n
		}
		if hi < lo {
			return 0, "", bad
		}
		fmt.Fprintf(&b, `\x{%x}-\x{%x}`, lo, hi)
		ranges++
	}
}

// classChar reads one character of a class, as path.Match's getEsc: '-'
// and ']' must be escaped there.
func classChar(s string) (rune, int, bool) {
	if s == "" || s[0] == '-' || s[0] == ']' {
		return 0, 0, false
	}
	n := 0
	if s[0] == '\\' {
		n = 1
		if len(s) == 1 {
			return 0, 0, false
		}
	}
	r, w := utf8.DecodeRuneInString(s[n:])
	if r == utf8.RuneError && w == 1 {
		return 0, 0, false
	}
	return r, n + w, true
}

// parsePointer splits an RFC 6901 JSON pointer ("/a/b~1c") into its
// unescaped tokens.
func parsePointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("a JSON pointer starts with '/'")
	}
	parts := strings.Split(p[1:], "/")
	for k, part := range parts {
		for j := 0; j < len(part); j++ {
			if part[j] == '~' && (j+1 == len(part) || (part[j+1] != '0' && part[j+1] != '1')) {
				return nil, errors.New("'~' must be followed by 0 or 1 in a JSON pointer")
			}
		}
		parts[k] = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// claimLookup finds a claim by its configured name:
//
//   - "/a/b": a JSON pointer, exact and unambiguous;
//   - a top-level claim of exactly that name, dots and slashes included;
//   - "a/b" (a slash, no leading one): the JSON pointer "/a/b", so that
//     "kubernetes.io/namespace" reads the namespace inside "kubernetes.io";
//   - "a.b.c": a dotted path, where a dot may also be part of a key: at each
//     level the longest run of segments naming a key is tried first, so
//     "kubernetes.io.namespace" finds "kubernetes.io" then "namespace".
func claimLookup(claims map[string]any, name string) (any, bool) {
	if strings.HasPrefix(name, "/") {
		parts, err := parsePointer(name)
		if err != nil {
			return nil, false
		}
		return walkPointer(claims, parts)
	}
	if v, ok := claims[name]; ok {
		return v, true
	}
	if strings.Contains(name, "/") {
		parts, err := parsePointer("/" + name)
		if err != nil {
			return nil, false
		}
		return walkPointer(claims, parts)
	}
	if strings.Contains(name, ".") {
		return walkDotted(claims, strings.Split(name, "."))
	}
	return nil, false
}

func walkPointer(v any, parts []string) (any, bool) {
	for _, part := range parts {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[part]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			// RFC 6901: decimal, no leading zeros.
			if part == "" || (len(part) > 1 && part[0] == '0') {
				return nil, false
			}
			k, err := strconv.Atoi(part)
			if err != nil || k < 0 || k >= len(node) {
				return nil, false
			}
			v = node[k]
		default:
			return nil, false
		}
	}
	return v, true
}

func walkDotted(v any, segs []string) (any, bool) {
	if len(segs) == 0 {
		return v, true
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	for n := len(segs); n >= 1; n-- {
		child, ok := m[strings.Join(segs[:n], ".")]
		if !ok {
			continue
		}
		if found, ok := walkDotted(child, segs[n:]); ok {
			return found, true
		}
	}
	return nil, false
}

// scalarString renders a claim value that a glob can match: strings as they
// are, numbers as in the token, booleans as true/false. Objects and null
// match nothing.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// matchValue reports whether the claim value, or one element of an array
// claim, matches.
func matchValue(m matcher, v any) bool {
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if s, ok := scalarString(e); ok && m.match(s) {
				return true
			}
		}
		return false
	}
	s, ok := scalarString(v)
	return ok && m.match(s)
}

// claimMatcher is one compiled "name: pattern" of a rule.
type claimMatcher struct {
	name string
	m    matcher
}

type compiledRule struct {
	subject string
	claims  []claimMatcher
}

func compileRules(rules []Rule) ([]compiledRule, error) {
	out := make([]compiledRule, 0, len(rules))
	for k, r := range rules {
		cr := compiledRule{subject: r.Subject}
		for _, name := range sortedKeys(r.Claims) {
			m, err := compileGlob(r.Claims[name])
			if err != nil {
				return nil, &FieldError{Field: fmt.Sprintf("rules[%d].claims.%s", k, name), Reason: err.Error()}
			}
			cr.claims = append(cr.claims, claimMatcher{name: name, m: m})
		}
		out = append(out, cr)
	}
	return out, nil
}

func (r compiledRule) matches(claims map[string]any) bool {
	for _, c := range r.claims {
		v, ok := claimLookup(claims, c.name)
		if !ok || !matchValue(c.m, v) {
			return false
		}
	}
	return true
}

// auditValue renders a claim for the audit record: scalars as text, arrays
// and objects as compact JSON, cut to maxAuditValue bytes.
func auditValue(v any) string {
	s, ok := scalarString(v)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		s = string(b)
	}
	if len(s) > maxAuditValue {
		cut := maxAuditValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
