package gcptest

import (
	"strings"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
)

// The subset of Google's list filtering language
// (https://cloud.google.com/secret-manager/docs/filtering) this server
// implements. Terms are joined by whitespace or AND (both mean AND):
//
//	labels.KEY=VALUE   the label KEY is exactly VALUE ("quotes" allowed)
//	labels.KEY:*       the label KEY is present
//	labels.KEY:VALUE   same as labels.KEY=VALUE
//	name:TEXT          the resource name contains TEXT; '*' in TEXT matches any run
//	state:STATE        (versions only) ENABLED, DISABLED or DESTROYED; '=' works too
//
// Anything else (OR, NOT, '-', parentheses, comparisons, other fields) is
// refused with INVALID_ARGUMENT rather than ignored, so that a client that
// relies on a filter this server does not understand finds out at once.

type secretTerm = func(s *secretmanagerpb.Secret) bool
type versionTerm = func(v *secretmanagerpb.SecretVersion) bool

func splitTerms(filter string) ([]string, error) {
	var terms []string
	for _, f := range strings.Fields(filter) {
		switch {
		case f == "AND":
			continue
		case f == "OR" || f == "NOT" || strings.HasPrefix(f, "-") || strings.ContainsAny(f, "()"):
			return nil, invalid("filter %q: %q is not supported by this test server (supported: terms joined by AND)", filter, f)
		}
		terms = append(terms, f)
	}
	return terms, nil
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// wildcardContains reports whether s contains pattern, where '*' in pattern
// matches any run of characters.
func wildcardContains(s, pattern string) bool {
	for _, part := range strings.Split(pattern, "*") {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

func parseSecretFilter(filter string) ([]secretTerm, error) {
	terms, err := splitTerms(filter)
	if err != nil {
		return nil, err
	}
	var out []secretTerm
	for _, t := range terms {
		switch {
		case strings.HasPrefix(t, "labels."):
			rest := strings.TrimPrefix(t, "labels.")
			i := strings.IndexAny(rest, "=:")
			if i <= 0 {
				return nil, invalid("filter term %q: want labels.KEY=VALUE or labels.KEY:*", t)
			}
			key, op, val := rest[:i], rest[i], unquote(rest[i+1:])
			if op == ':' && val == "*" {
				out = append(out, func(s *secretmanagerpb.Secret) bool { _, ok := s.GetLabels()[key]; return ok })
				continue
			}
			out = append(out, func(s *secretmanagerpb.Secret) bool {
				v, ok := s.GetLabels()[key]
				return ok && v == val
			})
		case strings.HasPrefix(t, "name:"):
			val := unquote(strings.TrimPrefix(t, "name:"))
			if val == "" {
				return nil, invalid("filter term %q: empty name", t)
			}
			out = append(out, func(s *secretmanagerpb.Secret) bool { return wildcardContains(s.GetName(), val) })
		default:
			return nil, invalid("filter term %q is not supported by this test server (supported: labels.KEY=VALUE, labels.KEY:*, name:TEXT)", t)
		}
	}
	return out, nil
}

func parseVersionFilter(filter string) ([]versionTerm, error) {
	terms, err := splitTerms(filter)
	if err != nil {
		return nil, err
	}
	var out []versionTerm
	for _, t := range terms {
		var val string
		switch {
		case strings.HasPrefix(t, "state:"):
			val = strings.TrimPrefix(t, "state:")
		case strings.HasPrefix(t, "state="):
			val = strings.TrimPrefix(t, "state=")
		default:
			return nil, invalid("filter term %q is not supported by this test server (supported: state:STATE)", t)
		}
		st, ok := secretmanagerpb.SecretVersion_State_value[unquote(val)]
		if !ok || st == 0 {
			return nil, invalid("filter term %q: unknown state", t)
		}
		want := secretmanagerpb.SecretVersion_State(st)
		out = append(out, func(v *secretmanagerpb.SecretVersion) bool { return v.GetState() == want })
	}
	return out, nil
}
