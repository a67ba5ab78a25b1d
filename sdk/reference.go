package sdk

import (
	"strconv"
	"strings"
)

// ReferenceScheme starts every secret reference.
const ReferenceScheme = "sg://"

// maxReferenceQuote bounds how much of a malformed reference an error
// quotes: enough to find it, not a whole value pasted where a reference was
// expected.
const maxReferenceQuote = 80

// Reference names one key of one secret: sg://PROJECT/SECRET/KEY, with
// ?version=N to pin a version. It names a secret and never holds a value,
// so it is safe to commit. Project, secret and key names never contain '/',
// so the parse is unambiguous.
type Reference struct {
	Project string
	Secret  string
	Key     string
	// Version is the pinned version; 0 is the latest.
	Version int64
}

// IsReference reports whether s is meant as a reference (it starts with
// sg://); ParseReference says whether it is a valid one.
func IsReference(s string) bool { return strings.HasPrefix(s, ReferenceScheme) }

// ParseReference parses sg://PROJECT/SECRET/KEY[?version=N]. The only query
// parameter is version, a positive integer without leading zeros, so that a
// valid reference has exactly one spelling: String gives back the input.
// Errors are *FieldError of field "reference" quoting the reference,
// truncated.
func ParseReference(s string) (Reference, error) {
	rest, ok := strings.CutPrefix(s, ReferenceScheme)
	if !ok {
		return Reference{}, badReference(s, "must start with "+ReferenceScheme)
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	parts := strings.Split(path, "/")
	if len(parts) != 3 {
		return Reference{}, badReference(s, "must be "+ReferenceScheme+"PROJECT/SECRET/KEY, optionally followed by ?version=N")
	}
	ref := Reference{Project: parts[0], Secret: parts[1], Key: parts[2]}
	if err := ValidateProject(ref.Project); err != nil {
		return Reference{}, badReference(s, "project "+reason(err))
	}
	if err := ValidateName(ref.Secret); err != nil {
		return Reference{}, badReference(s, "secret "+reason(err))
	}
	if !validKey(ref.Key) {
		// Not ValidateKey's message, which would quote the key a second time.
		return Reference{}, badReference(s, "key must be 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'")
	}
	if hasQuery {
		v, ok := strings.CutPrefix(query, "version=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
			return Reference{}, badReference(s, "the only query allowed is ?version=N, N a positive integer without leading zeros")
		}
		ref.Version = n
	}
	return ref, nil
}

// String is the reference's one spelling.
func (r Reference) String() string {
	s := ReferenceScheme + r.Project + "/" + r.Secret + "/" + r.Key
	if r.Version > 0 {
		s += "?version=" + strconv.FormatInt(r.Version, 10)
	}
	return s
}

// Ref is the secret (and version) the reference reads.
func (r Reference) Ref() Ref { return Ref{Project: r.Project, Name: r.Secret, Version: r.Version} }

func badReference(s, why string) error {
	return Invalid("reference", "%q %s", truncate(s, maxReferenceQuote), why)
}

func reason(err error) string {
	if fe, ok := err.(*FieldError); ok {
		return fe.Reason
	}
	return "is invalid"
}
