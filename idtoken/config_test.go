package idtoken

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func validIssuer() Issuer {
	return Issuer{
		Name:       "github",
		IssuerURL:  "https://token.actions.githubusercontent.com",
		Discovery:  true,
		Audiences:  []string{"secretgate"},
		Algorithms: []string{"RS256", "ES256"},
		Rules:      []Rule{{Subject: "deploy-api", Claims: map[string]string{"repository": "acme/api"}}},
	}
}

func TestIssuerValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Issuer)
		want string // "" = valid; else the first problem, "field: reason" prefix
	}{
		{"valid", func(*Issuer) {}, ""},
		{"loopback http issuer", func(i *Issuer) { i.IssuerURL = "http://127.0.0.1:8080" }, ""},
		{"localhost http issuer", func(i *Issuer) { i.IssuerURL = "http://localhost:8080/issuer" }, ""},
		{"IPv6 loopback", func(i *Issuer) { i.IssuerURL = "http://[::1]:1234" }, ""},
		{"jwks_url source", func(i *Issuer) { i.Discovery, i.JWKSURL = false, "https://k8s.example/openid/v1/jwks" }, ""},
		{"jwks_file source", func(i *Issuer) { i.Discovery, i.JWKSFile = false, "/etc/secretgate/k8s-jwks.json" }, ""},
		{"default algorithms", func(i *Issuer) { i.Algorithms = nil }, ""},
		{"every supported algorithm", func(i *Issuer) { i.Algorithms = supportedAlgorithms }, ""},
		{"leeway and lifetime", func(i *Issuer) { i.Leeway, i.MaxTokenLifetime = 5*time.Minute, 2*time.Hour }, ""},
		{"globs and paths", func(i *Issuer) {
			i.Rules[0].Claims = map[string]string{"ref": "refs/heads/[a-z]*", "/kubernetes.io/namespace": "pay\\*", "a.b": "?"}
		}, ""},

		{"bad name", func(i *Issuer) { i.Name = "GitHub" }, `name: must be 1-63 characters of a-z, 0-9 and '-' (got "GitHub")`},
		{"no issuer", func(i *Issuer) { i.IssuerURL = "" }, "issuer: is required"},
		{"http issuer", func(i *Issuer) { i.IssuerURL = "http://token.example" }, `issuer: "http://token.example" must be https:// (or http:// on a loopback address)`},
		{"not a URL", func(i *Issuer) { i.IssuerURL = "token.example" }, "issuer: \"token.example\" must be https://"},
		{"issuer with a query", func(i *Issuer) { i.IssuerURL = "https://token.example/?a=b" }, "issuer: \"https://token.example/?a=b\" must not carry credentials, a query or a fragment"},
		{"no key source", func(i *Issuer) { i.Discovery = false }, "discovery: one key source is required"},
		{"two key sources", func(i *Issuer) { i.JWKSFile = "/x.json" }, "discovery: discovery, jwks_url and jwks_file are exclusive"},
		{"http jwks_url", func(i *Issuer) { i.Discovery, i.JWKSURL = false, "http://k8s.example/jwks" }, "jwks_url: \"http://k8s.example/jwks\" must be https://"},
		{"no audience", func(i *Issuer) { i.Audiences = nil }, "audiences: at least one audience is required"},
		{"empty audience", func(i *Issuer) { i.Audiences = []string{"secretgate", " "} }, "audiences[1]: must not be empty"},
		{"alg none", func(i *Issuer) { i.Algorithms = []string{"RS256", "none"} }, `algorithms[1]: "none" is refused`},
		{"alg None", func(i *Issuer) { i.Algorithms = []string{"None"} }, `algorithms[0]: "none" is refused`},
		{"HS256", func(i *Issuer) { i.Algorithms = []string{"HS256"} }, `algorithms[0]: "HS256" is refused: HMAC algorithms`},
		{"hs512", func(i *Issuer) { i.Algorithms = []string{"hs512"} }, `algorithms[0]: "hs512" is refused`},
		{"unknown algorithm", func(i *Issuer) { i.Algorithms = []string{"RS257"} }, `algorithms[0]: unknown algorithm "RS257": supported are RS256,`},
		{"negative leeway", func(i *Issuer) { i.Leeway = -time.Second }, "leeway: must not be negative"},
		{"huge leeway", func(i *Issuer) { i.Leeway = time.Hour }, "leeway: 1h0m0s is too long: at most 5m0s"},
		{"negative lifetime", func(i *Issuer) { i.MaxTokenLifetime = -time.Second }, "max_token_lifetime: must not be negative"},
		{"empty audit claim", func(i *Issuer) { i.AuditClaims = []string{"sub", ""} }, "audit_claims[1]: claim name must not be empty"},
		{"no rules", func(i *Issuer) { i.Rules = nil }, "rules: at least one rule is required"},
		{"rule without subject", func(i *Issuer) { i.Rules[0].Subject = "" }, "rules[0].subject: is required"},
		{"rule without claims", func(i *Issuer) { i.Rules[0].Claims = nil }, "rules[0].claims: at least one claim is required"},
		{"empty claim value", func(i *Issuer) { i.Rules[0].Claims["ref"] = "" }, `rules[0].claims.ref: must not be empty ("*" matches any value)`},
		{"bad glob", func(i *Issuer) { i.Rules[0].Claims["ref"] = "refs/[heads" }, "rules[0].claims.ref: bad glob: malformed character class"},
		{"trailing backslash", func(i *Issuer) { i.Rules[0].Claims["ref"] = `main\` }, `rules[0].claims.ref: bad glob "main\\": trailing backslash`},
		{"bad pointer", func(i *Issuer) { i.Rules[0].Claims["/a~2b"] = "x" }, `rules[0].claims./a~2b: claim name "/a~2b": '~' must be followed by 0 or 1`},
		{"pointer to the root", func(i *Issuer) { i.Rules[0].Claims["/"] = "x" }, `rules[0].claims./: claim name "/" names no claim`},
		{"too deep", func(i *Issuer) { i.Rules[0].Claims[strings.Repeat("a.", 16)+"a"] = "x" }, `rules[0].claims.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: claim name "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a" has more than 16 segments`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := validIssuer()
			is.Rules[0].Claims = map[string]string{"repository": "acme/api"}
			tt.edit(&is)
			err := is.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				require.Empty(t, is.Problems())
				return
			}
			require.Error(t, err)
			var fe *FieldError
			require.True(t, errors.As(err, &fe))
			require.True(t, strings.HasPrefix(fe.Error(), tt.want), "got %q, want prefix %q", fe.Error(), tt.want)
		})
	}
}

func TestIssuerValidateListsEveryProblem(t *testing.T) {
	is := Issuer{Name: "x", IssuerURL: "http://example.com", Algorithms: []string{"none", "HS256"}}
	fields := []string{}
	for _, p := range is.Problems() {
		fields = append(fields, p.Field)
	}
	require.Equal(t, []string{"issuer", "discovery", "audiences", "algorithms[0]", "algorithms[1]", "rules"}, fields)
}

func TestValidateIssuers(t *testing.T) {
	a, b := validIssuer(), validIssuer()
	b.Name = "github"
	b.Audiences = nil
	err := ValidateIssuers([]Issuer{a, b})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "auth.jwt[1].audiences: at least one audience is required")
	require.Contains(t, msg, `auth.jwt[1].name: "github" is already the name of auth.jwt[0]`)
	require.Contains(t, msg, `auth.jwt[1].issuer: "https://token.actions.githubusercontent.com" is already the issuer of auth.jwt[0]`)

	b = validIssuer()
	b.Name, b.IssuerURL = "gitlab", "https://gitlab.com"
	require.NoError(t, ValidateIssuers([]Issuer{a, b}))

	_, err = NewVerifier([]Issuer{a, a}, Options{})
	require.ErrorContains(t, err, "auth.jwt[1].name")
}

func TestIssuerFromYAML(t *testing.T) {
	const doc = `
- name: github
  issuer: https://token.actions.githubusercontent.com
  discovery: true
  audiences: [secretgate]
  algorithms: [RS256, ES256]
  leeway: 30s
  max_token_lifetime: 2h
  audit_claims: [sub, repository, run_id]
  rules:
    - subject: deploy-api
      claims: {repository: acme/api, ref: refs/heads/main}
    - subject: protected
      claims: {ref_protected: true, project_id: 42}
    - subject: k8s-payments
      claims: {"kubernetes.io/namespace": payments}
`
	var got []Issuer
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&got))
	require.Len(t, got, 1)
	is := got[0]
	require.NoError(t, is.Validate())
	require.Equal(t, 30*time.Second, is.Leeway)
	require.Equal(t, 2*time.Hour, is.MaxTokenLifetime)
	require.Equal(t, map[string]string{"ref_protected": "true", "project_id": "42"}, is.Rules[1].Claims)
	require.Equal(t, "payments", is.Rules[2].Claims["kubernetes.io/namespace"])

	dec = yaml.NewDecoder(strings.NewReader("- name: x\n  bound_audiences: [a]\n"))
	dec.KnownFields(true)
	require.ErrorContains(t, dec.Decode(&got), "field bound_audiences not found")

	// A bare number is not taken for nanoseconds.
	require.ErrorContains(t, yaml.Unmarshal([]byte("- leeway: 60\n"), &got), "cannot unmarshal !!int `60` into time.Duration")
}

func TestDefaults(t *testing.T) {
	is := validIssuer()
	is.Algorithms = nil
	require.Equal(t, []string{"RS256"}, is.algorithms())
	require.Equal(t, DefaultLeeway, is.leeway())
	is.Leeway = time.Second
	require.Equal(t, time.Second, is.leeway())
}
