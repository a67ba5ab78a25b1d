// Package policy decides who may do what to which secret.
//
// A Policy holds subjects (a name and the SHA-256 of its bearer tokens; a
// token itself is never stored), the four built-in roles, and bindings that
// grant one role to one subject on one project ("*" for every project),
// optionally narrowed to secret-name globs. It is pure Go: no HTTP and no I/O;
// callers load the configuration and hand over parsed values.
//
// Bindings combine by union: an action on a secret is allowed when at least
// one binding of the subject on the project has a role that grants the action
// and globs that cover the secret's name. There are no deny rules.
package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// Action names an operation. It is an alias of string rather than a distinct
// type because actions arrive as plain strings from HTTP handlers and from
// the command line; an unknown action is simply never allowed.
type Action = string

// The actions of the permission table (docs/permissions.md).
const (
	ActionList    Action = "secrets.list"   // list names and describe metadata
	ActionRead    Action = "secrets.read"   // read values
	ActionCreate  Action = "secrets.create" // create a secret
	ActionUpdate  Action = "secrets.update" // replace, patch, roll back
	ActionDelete  Action = "secrets.delete" // delete a secret with all versions
	ActionMigrate Action = "project.migrate"
)

// Actions returns every action, in the order of the permission table.
func Actions() []Action {
	return []Action{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}
}

// IsAction reports whether a is one of Actions().
func IsAction(a string) bool { return slices.Contains(Actions(), a) }

// The built-in roles.
const (
	RoleViewer = "viewer"
	RoleEditor = "editor"
	RoleReader = "reader"
	RoleAdmin  = "admin"
)

// roleActions is the permission table (docs/permissions.md). An editor writes values
// it can never read back; a reader reads values it can never change.
var roleActions = map[string][]Action{
	RoleViewer: {ActionList},
	RoleEditor: {ActionList, ActionCreate, ActionUpdate, ActionDelete},
	RoleReader: {ActionList, ActionRead},
	RoleAdmin:  {ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate},
}

// Roles returns the built-in role names, from least to most powerful.
func Roles() []string { return []string{RoleViewer, RoleEditor, RoleReader, RoleAdmin} }

// RoleActions returns the actions a role grants, or nil for an unknown role.
func RoleActions(role string) []Action { return slices.Clone(roleActions[role]) }

// RoleAllows reports whether role grants action.
func RoleAllows(role string, action Action) bool {
	return slices.Contains(roleActions[role], action)
}

// Wildcard, as a binding's project, binds every project.
const Wildcard = "*"

// Subject is someone who holds a token.
type Subject struct {
	Name string
	// Tokens are the SHA-256 hashes of the bearer tokens that authenticate
	// as the subject: several while one is being rotated, none for a
	// subject reached only through a workload identity rule.
	Tokens [][32]byte
	// ExpiresAt, when not zero, is when the subject's tokens stop working.
	ExpiresAt time.Time
}

// Expired reports whether the subject's tokens have expired at now. The
// policy keeps no clock: the caller asks.
func (s Subject) Expired(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// Binding grants Role to the subject named Subject on Project (or on every
// project when Project is "*"). Secrets, when not empty, narrows the binding
// to the names matching at least one glob (path.Match syntax).
type Binding struct {
	Subject string
	Project string
	Role    string
	Secrets []string
}

// Policy is an immutable, validated set of subjects and bindings; it is safe
// for concurrent use.
type Policy struct {
	subjects []Subject
	tokens   int // how many token hashes, all subjects together
	names    map[string]struct{}
	bySubj   map[string][]int // subject name -> indexes into bindings
	bindings []Binding
}

var subjectRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$`)

// New validates subjects and bindings and builds a Policy. Every error names
// the offending field, e.g. `bindings[2].role: unknown role "owner"`.
func New(subjects []Subject, bindings []Binding) (*Policy, error) {
	p := &Policy{
		subjects: slices.Clone(subjects),
		names:    map[string]struct{}{},
		bySubj:   map[string][]int{},
		bindings: make([]Binding, len(bindings)),
	}
	names := map[string]int{}
	hashes := map[[32]byte]int{}
	for i, s := range subjects {
		if !subjectRe.MatchString(s.Name) {
			return nil, fmt.Errorf("subjects[%d].name: %q must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', '@' and '-', starting with a letter or digit", i, s.Name)
		}
		if j, dup := names[s.Name]; dup {
			return nil, fmt.Errorf("subjects[%d].name: duplicate subject %q (also subjects[%d])", i, s.Name, j)
		}
		names[s.Name] = i
		p.names[s.Name] = struct{}{}
		for j, h := range s.Tokens {
			field := fmt.Sprintf("subjects[%d].token_sha256[%d]", i, j)
			if h == HashToken("") {
				return nil, fmt.Errorf("%s: the SHA-256 of the empty string, for subject %q: an empty token never authenticates", field, s.Name)
			}
			// Two subjects sharing a token would make authentication ambiguous.
			if at, dup := hashes[h]; dup {
				return nil, fmt.Errorf("%s: same token hash as subjects[%d] (%q)", field, at, subjects[at].Name)
			}
			hashes[h] = i
		}
		p.subjects[i].Tokens = slices.Clone(s.Tokens)
		p.tokens += len(s.Tokens)
	}
	for i, b := range bindings {
		if _, ok := names[b.Subject]; !ok {
			return nil, fmt.Errorf("bindings[%d].subject: unknown subject %q", i, b.Subject)
		}
		if b.Project != Wildcard {
			if err := sdk.ValidateProject(b.Project); err != nil {
				return nil, fmt.Errorf("bindings[%d].project: %q is neither \"*\" nor a valid project name", i, b.Project)
			}
		}
		if _, ok := roleActions[b.Role]; !ok {
			return nil, fmt.Errorf("bindings[%d].role: unknown role %q (want one of %s)", i, b.Role, strings.Join(Roles(), ", "))
		}
		for j, g := range b.Secrets {
			if err := validateGlob(g); err != nil {
				return nil, fmt.Errorf("bindings[%d].secrets[%d]: %q: %w", i, j, g, err)
			}
		}
		b.Secrets = slices.Clone(b.Secrets)
		p.bindings[i] = b
		p.bySubj[b.Subject] = append(p.bySubj[b.Subject], i)
	}
	return p, nil
}

func validateGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty glob")
	}
	if strings.Contains(g, "/") {
		return fmt.Errorf("secret names never contain '/'")
	}
	// path.Match reports a malformed pattern only when it gets that far in
	// the name; matching against a name that every pattern must read to the
	// end is not guaranteed, so check the syntax on its own.
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("bad glob: %w", err)
	}
	if _, err := path.Match(g, strings.Repeat("a", 130)); err != nil {
		return fmt.Errorf("bad glob: %w", err)
	}
	return nil
}

// HashToken returns the SHA-256 of a bearer token, as stored in the config.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// ParseTokenHash parses a hex SHA-256 (64 hex digits, either case).
func ParseTokenHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("must be 64 hex digits (the SHA-256 of the token)")
	}
	copy(h[:], b)
	return h, nil
}

// Subjects returns a copy of the subjects.
func (p *Policy) Subjects() []Subject { return slices.Clone(p.subjects) }

// Bindings returns a copy of the bindings, in configuration order.
func (p *Policy) Bindings() []Binding {
	out := make([]Binding, len(p.bindings))
	for i, b := range p.bindings {
		b.Secrets = slices.Clone(b.Secrets)
		out[i] = b
	}
	return out
}

// Authenticate finds the subject holding token. It hashes the token and
// compares the hash with every stored hash in constant time, always scanning
// all of them, so that the time taken reveals neither whether nor where a
// match was found.
func (p *Policy) Authenticate(token string) (Subject, bool) {
	if token == "" || p.tokens == 0 {
		return Subject{}, false
	}
	h := HashToken(token)
	found := 0
	idx := 0
	for i := range p.subjects {
		for _, stored := range p.subjects[i].Tokens {
			eq := subtle.ConstantTimeCompare(h[:], stored[:])
			idx = subtle.ConstantTimeSelect(eq, i, idx)
			found |= eq
		}
	}
	if found == 0 {
		return Subject{}, false
	}
	return p.subjects[idx], true
}

// Subject returns the named subject.
func (p *Policy) Subject(name string) (Subject, bool) {
	if _, ok := p.names[name]; !ok {
		return Subject{}, false
	}
	for _, s := range p.subjects {
		if s.Name == name {
			return s, true
		}
	}
	return Subject{}, false
}

// HasAnyBinding reports whether the subject has at least one binding on the
// project. The gateway answers 404 instead of 403 when it has none, so that a
// subject never learns what exists in a project it has no access to.
func (p *Policy) HasAnyBinding(subject, project string) bool {
	for _, i := range p.bySubj[subject] {
		if projectMatches(p.bindings[i].Project, project) {
			return true
		}
	}
	return false
}

func projectMatches(pattern, project string) bool {
	return pattern == Wildcard || pattern == project
}

// coversAll reports whether a binding reaches every secret of its project.
func coversAll(b Binding) bool {
	return len(b.Secrets) == 0 || slices.Contains(b.Secrets, "*")
}

// covers reports whether a binding's globs match name.
func covers(b Binding, name string) bool {
	if len(b.Secrets) == 0 {
		return true
	}
	for _, g := range b.Secrets {
		// Globs were validated in New, so Match cannot fail here.
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// Decision is the outcome of Decide.
type Decision struct {
	Allowed bool
	// Reason is a short, human-readable why (no secret values, ever).
	Reason string
	// Binding is the index of the first binding that allows the action, or
	// -1 when denied.
	Binding int
}

// Decide says whether subject may perform action on secret in project.
//
// secret "" asks at project level. For secrets.list that is allowed when any
// binding on the project grants list; the caller then filters the names with
// CanSee (or Filter). Every other action at project level (project.migrate)
// concerns all secrets, so it needs a binding whose globs cover every name.
func (p *Policy) Decide(subject, project string, action Action, secret string) Decision {
	e := p.Explain(subject, project, action, secret)
	d := Decision{Allowed: e.Allowed, Reason: e.Reason.String(), Binding: -1}
	if e.Allowed {
		d.Binding = e.Binding.Index
	}
	return d
}

// CanSee reports whether subject may list (and describe) the secret name in
// project: the filter for a listing.
func (p *Policy) CanSee(subject, project, name string) bool {
	for _, i := range p.bySubj[subject] {
		b := p.bindings[i]
		if projectMatches(b.Project, project) && RoleAllows(b.Role, ActionList) && covers(b, name) {
			return true
		}
	}
	return false
}

// SeesAll reports whether subject may list every secret of project, so a
// listing needs no filtering: one binding on the project grants list with
// globs that cover every name.
func (p *Policy) SeesAll(subject, project string) bool {
	for _, i := range p.bySubj[subject] {
		b := p.bindings[i]
		if projectMatches(b.Project, project) && RoleAllows(b.Role, ActionList) && coversAll(b) {
			return true
		}
	}
	return false
}

// Filter returns the names of names that subject may see in project, in
// their original order.
func (p *Policy) Filter(subject, project string, names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if p.CanSee(subject, project, n) {
			out = append(out, n)
		}
	}
	return out
}
