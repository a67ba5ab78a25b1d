package idtoken

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults and limits of an Issuer.
const (
	// DefaultLeeway absorbs clock skew between the issuer and the gateway
	// when exp, nbf and iat are compared. A minute is what go-jose, Vault's
	// JWT auth and most OIDC libraries use.
	DefaultLeeway = 60 * time.Second
	// MaxLeeway bounds Leeway: a larger one would keep expired tokens
	// usable long enough to defeat their short lifetime.
	MaxLeeway = 5 * time.Minute
	// DefaultAlgorithm is the one algorithm accepted when Algorithms is
	// empty: GitHub, GitLab and Kubernetes all sign with RS256.
	DefaultAlgorithm = "RS256"

	maxClaimNameLen  = 256
	maxClaimSegments = 16
)

// Issuer is one trusted issuer of workload identity tokens: one entry of the
// configuration's auth.jwt list. The yaml tags let the gateway decode the
// section straight into it; durations are Go durations ("60s", "2h").
type Issuer struct {
	// Name identifies the issuer in identities, errors and logs (a-z, 0-9, '-').
	Name string `yaml:"name"`
	// IssuerURL must equal the token's iss claim exactly.
	IssuerURL string `yaml:"issuer"`
	// Exactly one key source: OIDC discovery under IssuerURL, a JWKS URL,
	// or a JWKS file.
	Discovery bool   `yaml:"discovery"`
	JWKSURL   string `yaml:"jwks_url"`
	JWKSFile  string `yaml:"jwks_file"`
	// Audiences: the token's aud must contain at least one. Required.
	Audiences []string `yaml:"audiences"`
	// Algorithms allowed in the token header; empty means [RS256]. "none"
	// and the HMAC algorithms are refused.
	Algorithms []string `yaml:"algorithms"`
	// Leeway for exp, nbf and iat; 0 means DefaultLeeway.
	Leeway time.Duration `yaml:"leeway"`
	// MaxTokenLifetime refuses tokens whose exp - iat (exp - now without
	// iat) exceeds it; 0 means no limit.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	// AuditClaims are copied into Identity.AuditClaims for the audit log.
	AuditClaims []string `yaml:"audit_claims"`
	// Rules map a token to a subject; the first rule whose claims all match wins.
	Rules []Rule `yaml:"rules"`
}

// Rule maps the tokens whose claims all match to a subject.
//
// A claim name is a top-level claim ("repository"), a JSON pointer
// ("/kubernetes.io/namespace"), a slash path without the leading slash
// ("kubernetes.io/namespace"), or a dotted path ("kubernetes.io.namespace"),
// resolved as described in claimLookup. A value is a glob in path.Match
// syntax, except that '*' and '?' also match '/'. An array claim matches
// when one of its elements does.
type Rule struct {
	Subject string            `yaml:"subject"`
	Claims  map[string]string `yaml:"claims"`
}

// FieldError is a configuration problem. Field is relative to the issuer
// entry ("issuer", "rules[1].claims.ref") when it comes from Issuer.Validate,
// and absolute ("auth.jwt[0].issuer") from ValidateIssuers and NewVerifier.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// algorithms this package verifies. Asymmetric only: with an HMAC algorithm
// the verification key would be a shared secret, and the classic
// "algorithm confusion" forgery signs HS256 with the issuer's public key.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// Problems lists every configuration problem of the issuer, fields relative
// to the entry. A nil result means the issuer is valid.
func (i Issuer) Problems() []*FieldError {
	var out []*FieldError
	add := func(field, format string, args ...any) {
		out = append(out, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !nameRe.MatchString(i.Name) {
		add("name", "must be 1-63 characters of a-z, 0-9 and '-' (got %q)", i.Name)
	}
	if i.IssuerURL == "" {
		add("issuer", "is required: the exact iss claim of the tokens")
	} else if err := checkURL(i.IssuerURL); err != nil {
		add("issuer", "%v", err)
	}

	sources := 0
	if i.Discovery {
		sources++
	}
	if i.JWKSURL != "" {
		sources++
		if err := checkURL(i.JWKSURL); err != nil {
			add("jwks_url", "%v", err)
		}
	}
	if i.JWKSFile != "" {
		sources++
	}
	switch {
	case sources == 0:
		add("discovery", "one key source is required: discovery: true, jwks_url or jwks_file")
	case sources > 1:
		add("discovery", "discovery, jwks_url and jwks_file are exclusive: set exactly one")
	}

	if len(i.Audiences) == 0 {
		add("audiences", "at least one audience is required: a token minted for another service must not work here")
	}
	for k, a := range i.Audiences {
		if strings.TrimSpace(a) == "" {
			add(fmt.Sprintf("audiences[%d]", k), "must not be empty")
		}
	}

	for k, a := range i.Algorithms {
		if err := checkAlgorithm(a); err != nil {
			add(fmt.Sprintf("algorithms[%d]", k), "%v", err)
		}
	}

	switch {
	case i.Leeway < 0:
		add("leeway", "must not be negative")
	case i.Leeway > MaxLeeway:
		add("leeway", "%s is too long: at most %s", i.Leeway, MaxLeeway)
	}
	if i.MaxTokenLifetime < 0 {
		add("max_token_lifetime", "must not be negative (0 means no limit)")
	}

	for k, c := range i.AuditClaims {
		if err := checkClaimName(c); err != nil {
			add(fmt.Sprintf("audit_claims[%d]", k), "%v", err)
		}
	}

	if len(i.Rules) == 0 {
		add("rules", "at least one rule is required: a token no rule maps to a subject is refused anyway")
	}
	for k, r := range i.Rules {
		f := fmt.Sprintf("rules[%d]", k)
		if r.Subject == "" {
			add(f+".subject", "is required")
		}
		if len(r.Claims) == 0 {
			add(f+".claims", "at least one claim is required: a rule without claims would admit every token of the issuer")
		}
		for _, name := range sortedKeys(r.Claims) {
			cf := f + ".claims." + name
			if err := checkClaimName(name); err != nil {
				add(cf, "%v", err)
			}
			pattern := r.Claims[name]
			if pattern == "" {
				add(cf, "must not be empty (\"*\" matches any value)")
			} else if _, err := compileGlob(pattern); err != nil {
				add(cf, "%v", err)
			}
		}
	}
	return out
}

// Validate reports the issuer's configuration problems, nil when there is
// none. Each one is a *FieldError (errors.As finds the first; the result
// joins all of them).
func (i Issuer) Validate() error {
	return joinFieldErrors(i.Problems())
}

// ValidateIssuers validates every issuer and what only the list can tell:
// unique names and unique issuer URLs (a token's iss must select one entry).
// Fields are absolute: "auth.jwt[0].issuer".
func ValidateIssuers(issuers []Issuer) error {
	var all []*FieldError
	names := map[string]int{}
	urls := map[string]int{}
	for k, is := range issuers {
		prefix := fmt.Sprintf("auth.jwt[%d].", k)
		for _, p := range is.Problems() {
			all = append(all, &FieldError{Field: prefix + p.Field, Reason: p.Reason})
		}
		if j, dup := names[is.Name]; dup && is.Name != "" {
			all = append(all, &FieldError{Field: prefix + "name", Reason: fmt.Sprintf("%q is already the name of auth.jwt[%d]", is.Name, j)})
		} else {
			names[is.Name] = k
		}
		if j, dup := urls[is.IssuerURL]; dup && is.IssuerURL != "" {
			all = append(all, &FieldError{Field: prefix + "issuer", Reason: fmt.Sprintf("%q is already the issuer of auth.jwt[%d]: put all its rules in one entry", is.IssuerURL, j)})
		} else {
			urls[is.IssuerURL] = k
		}
	}
	return joinFieldErrors(all)
}

func joinFieldErrors(list []*FieldError) error {
	if len(list) == 0 {
		return nil
	}
	errs := make([]error, len(list))
	for k, p := range list {
		errs[k] = p
	}
	return errors.Join(errs...)
}

// algorithms returns the issuer's allow-list with the default applied.
func (i Issuer) algorithms() []string {
	if len(i.Algorithms) == 0 {
		return []string{DefaultAlgorithm}
	}
	return i.Algorithms
}

func (i Issuer) leeway() time.Duration {
	if i.Leeway == 0 {
		return DefaultLeeway
	}
	return i.Leeway
}

func checkAlgorithm(a string) error {
	switch {
	case strings.EqualFold(a, "none"):
		return errors.New(`"none" is refused: an unsigned token proves nothing`)
	case strings.HasPrefix(strings.ToUpper(a), "HS"):
		return fmt.Errorf("%q is refused: HMAC algorithms need a shared secret, and accepting them allows forging tokens with the issuer's public key", a)
	case !slices.Contains(supportedAlgorithms, a):
		return fmt.Errorf("unknown algorithm %q: supported are %s", a, strings.Join(supportedAlgorithms, ", "))
	}
	return nil
}

// checkURL accepts https:// URLs, and http:// ones only on a loopback
// address, where nobody on the network can swap the keys (tests, local
// development).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("must be an https:// URL (or http:// on a loopback address)")
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && u.Host != "" && isLoopback(u.Hostname()):
	default:
		return fmt.Errorf("%q must be https:// (or http:// on a loopback address)", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry credentials, a query or a fragment", raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkClaimName(name string) error {
	switch {
	case name == "":
		return errors.New("claim name must not be empty")
	case len(name) > maxClaimNameLen:
		return fmt.Errorf("claim name is longer than %d bytes", maxClaimNameLen)
	case name == "/":
		return errors.New(`claim name "/" names no claim`)
	}
	if strings.Count(name, ".")+1 > maxClaimSegments || strings.Count(name, "/") > maxClaimSegments {
		return fmt.Errorf("claim name %q has more than %d segments", name, maxClaimSegments)
	}
	if strings.Contains(name, "/") {
		p := name
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if _, err := parsePointer(p); err != nil {
			return fmt.Errorf("claim name %q: %w", name, err)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
