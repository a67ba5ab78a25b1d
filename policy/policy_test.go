package policy

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func subj(name string) Subject {
	return Subject{Name: name, Tokens: [][32]byte{HashToken("tok-" + name)}}
}

func mustNew(t *testing.T, subjects []Subject, bindings []Binding) *Policy {
	t.Helper()
	p, err := New(subjects, bindings)
	require.NoError(t, err)
	return p
}

// The permission table of docs/permissions.md, written out independently of roleActions so that
// a change to one without the other fails.
var wantTable = map[string]map[Action]bool{
	RoleViewer: {ActionList: true},
	RoleEditor: {ActionList: true, ActionCreate: true, ActionUpdate: true, ActionDelete: true},
	RoleReader: {ActionList: true, ActionRead: true},
	RoleAdmin:  {ActionList: true, ActionRead: true, ActionCreate: true, ActionUpdate: true, ActionDelete: true, ActionMigrate: true},
}

func TestRoleMatrix(t *testing.T) {
	for _, role := range Roles() {
		p := mustNew(t, []Subject{subj("s")}, []Binding{{Subject: "s", Project: "payments", Role: role}})
		for _, action := range Actions() {
			t.Run(role+"/"+action, func(t *testing.T) {
				want := wantTable[role][action]
				secret := "db"
				if action == ActionMigrate {
					secret = ""
				}
				d := p.Decide("s", "payments", action, secret)
				require.Equal(t, want, d.Allowed, d.Reason)
				require.Equal(t, want, RoleAllows(role, action))
				if want {
					require.Equal(t, 0, d.Binding)
					require.Equal(t, "allowed", d.Reason)
				} else {
					require.Equal(t, -1, d.Binding)
					require.Equal(t, ReasonRoleLacksAction.String(), d.Reason)
				}
				// The same binding never reaches another project.
				other := p.Decide("s", "billing", action, secret)
				require.False(t, other.Allowed)
				require.Equal(t, ReasonNoBinding.String(), other.Reason)
			})
		}
	}
	require.Len(t, RoleActions(RoleAdmin), len(Actions()))
	require.Nil(t, RoleActions("owner"))
}

func TestDecide(t *testing.T) {
	p := mustNew(t,
		[]Subject{subj("alice"), subj("bob"), subj("ci"), subj("nobody")},
		[]Binding{
			{Subject: "alice", Project: "payments", Role: RoleEditor, Secrets: []string{"stripe-*"}}, // 0
			{Subject: "alice", Project: "payments", Role: RoleViewer},                                // 1
			{Subject: "alice", Project: "payments", Role: RoleReader, Secrets: []string{"stripe-public"}},
			{Subject: "bob", Project: "*", Role: RoleReader},                                      // 3
			{Subject: "ci", Project: "*", Role: RoleAdmin, Secrets: []string{"ci-?", "[ab]-key"}}, // 4
			{Subject: "ci", Project: "build", Role: RoleAdmin, Secrets: []string{"*"}},            // 5
		})
	tests := []struct {
		name                           string
		subject, project, action, secr string
		allowed                        bool
		reason                         Reason
		binding                        int
	}{
		{"glob grants update", "alice", "payments", ActionUpdate, "stripe-key", true, ReasonAllowed, 0},
		{"glob does not cover", "alice", "payments", ActionUpdate, "db-password", false, ReasonGlobsDoNotCover, -1},
		{"union: viewer covers list outside glob", "alice", "payments", ActionList, "db-password", true, ReasonAllowed, 1},
		{"union: narrow reader", "alice", "payments", ActionRead, "stripe-public", true, ReasonAllowed, 2},
		{"editor glob does not give read", "alice", "payments", ActionRead, "stripe-key", false, ReasonGlobsDoNotCover, -1},
		{"no role grants", "alice", "payments", ActionMigrate, "", false, ReasonRoleLacksAction, -1},
		{"project-level list", "alice", "payments", ActionList, "", true, ReasonAllowed, 0},
		{"project-level create needs whole project", "alice", "payments", ActionCreate, "", false, ReasonNarrowed, -1},
		{"no binding on project", "alice", "billing", ActionList, "", false, ReasonNoBinding, -1},
		{"wildcard project", "bob", "anything", ActionRead, "x", true, ReasonAllowed, 3},
		{"wildcard role lacks", "bob", "anything", ActionDelete, "x", false, ReasonRoleLacksAction, -1},
		{"question mark glob", "ci", "p1", ActionRead, "ci-1", true, ReasonAllowed, 4},
		{"question mark one char only", "ci", "p1", ActionRead, "ci-12", false, ReasonGlobsDoNotCover, -1},
		{"class glob", "ci", "p1", ActionDelete, "b-key", true, ReasonAllowed, 4},
		{"narrowed admin cannot migrate", "ci", "p1", ActionMigrate, "", false, ReasonNarrowed, -1},
		{"star glob is whole project", "ci", "build", ActionMigrate, "", true, ReasonAllowed, 5},
		{"subject without bindings", "nobody", "payments", ActionList, "", false, ReasonNoBinding, -1},
		{"unknown subject", "mallory", "payments", ActionList, "", false, ReasonUnknownSubject, -1},
		{"unknown action", "bob", "payments", "secrets.steal", "x", false, ReasonUnknownAction, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.subject, tc.project, tc.action, tc.secr)
			require.Equal(t, tc.allowed, d.Allowed, d.Reason)
			require.Equal(t, tc.reason.String(), d.Reason)
			require.Equal(t, tc.binding, d.Binding)
			e := p.Explain(tc.subject, tc.project, tc.action, tc.secr)
			require.Equal(t, tc.allowed, e.Allowed)
			require.Equal(t, tc.reason, e.Reason)
			if tc.allowed {
				require.NotNil(t, e.Binding)
				require.Equal(t, tc.binding, e.Binding.Index)
			} else {
				require.Nil(t, e.Binding)
			}
		})
	}
}

func TestHasAnyBindingCanSeeFilter(t *testing.T) {
	p := mustNew(t, []Subject{subj("alice"), subj("bob"), subj("eve")}, []Binding{
		{Subject: "alice", Project: "payments", Role: RoleEditor, Secrets: []string{"stripe-*", "db"}},
		{Subject: "bob", Project: "*", Role: RoleViewer},
	})
	require.True(t, p.HasAnyBinding("alice", "payments"))
	require.False(t, p.HasAnyBinding("alice", "billing"))
	require.True(t, p.HasAnyBinding("bob", "billing"))
	require.False(t, p.HasAnyBinding("eve", "payments"))
	require.False(t, p.HasAnyBinding("mallory", "payments"))

	names := []string{"api", "db", "db2", "stripe-key", "stripe-public"}
	require.Equal(t, []string{"db", "stripe-key", "stripe-public"}, p.Filter("alice", "payments", names))
	require.Equal(t, []string{}, p.Filter("alice", "billing", names))
	require.Equal(t, names, p.Filter("bob", "payments", names))
	require.True(t, p.CanSee("alice", "payments", "stripe-x"))
	require.False(t, p.CanSee("alice", "payments", "api"))
	require.False(t, p.CanSee("eve", "payments", "api"))
}

func TestAuthenticate(t *testing.T) {
	var subjects []Subject
	for i := range 50 {
		subjects = append(subjects, subj(fmt.Sprintf("s%d", i)))
	}
	p := mustNew(t, subjects, nil)
	for _, i := range []int{0, 1, 25, 49} {
		s, ok := p.Authenticate(fmt.Sprintf("tok-s%d", i))
		require.True(t, ok)
		require.Equal(t, fmt.Sprintf("s%d", i), s.Name)
	}
	for _, tok := range []string{"", "tok-s50", "tok-s1 ", "TOK-S1", strings.Repeat("x", 10000)} {
		_, ok := p.Authenticate(tok)
		require.False(t, ok, "token %q", tok)
	}
	// A stored hash is not a token.
	h := HashToken("tok-s3")
	_, ok := p.Authenticate(hex.EncodeToString(h[:]))
	require.False(t, ok)
	// Authenticate's own guard: even a subject holding the hash of ""
	// (which New refuses, so built here by hand) is never matched by "".
	ghost := &Policy{subjects: []Subject{{Name: "ghost", Tokens: [][32]byte{HashToken("")}}}, tokens: 1}
	_, ok = ghost.Authenticate("")
	require.False(t, ok, "the empty token must never authenticate")
	// An empty policy authenticates nobody.
	empty := mustNew(t, nil, nil)
	_, ok = empty.Authenticate("tok-s0")
	require.False(t, ok)
}

// A subject may hold several tokens (a rotation) or none (reached through
// a workload identity rule); an expiry ends all of them.
func TestSubjectTokens(t *testing.T) {
	p := mustNew(t, []Subject{
		{Name: "alice", Tokens: [][32]byte{HashToken("old"), HashToken("new")}, ExpiresAt: time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)},
		{Name: "deploy-api"},
	}, nil)
	for _, tok := range []string{"old", "new"} {
		s, ok := p.Authenticate(tok)
		require.True(t, ok, tok)
		require.Equal(t, "alice", s.Name)
		require.False(t, s.Expired(time.Date(2027, 6, 29, 23, 59, 59, 0, time.UTC)))
		require.True(t, s.Expired(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)))
	}
	_, ok := p.Authenticate("")
	require.False(t, ok)
	s, ok := p.Subject("deploy-api")
	require.True(t, ok)
	require.Empty(t, s.Tokens)
	require.False(t, s.Expired(time.Now()), "no expiry set")
	_, ok = p.Subject("nobody")
	require.False(t, ok)
}

func TestParseTokenHash(t *testing.T) {
	h := HashToken("sg_abc")
	got, err := ParseTokenHash(strings.ToUpper(hex.EncodeToString(h[:])))
	require.NoError(t, err)
	require.Equal(t, h, got)
	for _, bad := range []string{"", "abc", hex.EncodeToString(h[:31]), hex.EncodeToString(h[:]) + "00", strings.Repeat("z", 64)} {
		_, err := ParseTokenHash(bad)
		require.Error(t, err, bad)
	}
}

func TestNewValidation(t *testing.T) {
	a, b := subj("alice"), subj("bob")
	tests := []struct {
		name     string
		subjects []Subject
		bindings []Binding
		want     string
	}{
		{"empty subject name", []Subject{{Tokens: a.Tokens}}, nil, `subjects[0].name: ""`},
		{"bad subject name", []Subject{a, {Name: "bad name", Tokens: b.Tokens}}, nil, `subjects[1].name: "bad name"`},
		{"duplicate subject", []Subject{a, b, {Name: "alice", Tokens: [][32]byte{HashToken("z")}}}, nil, `subjects[2].name: duplicate subject "alice" (also subjects[0])`},
		{"hash of the empty token", []Subject{a, {Name: "ghost", Tokens: [][32]byte{HashToken("")}}}, nil, `subjects[1].token_sha256[0]: the SHA-256 of the empty string`},
		{"duplicate hash", []Subject{a, {Name: "carol", Tokens: [][32]byte{HashToken("c"), a.Tokens[0]}}}, nil, `subjects[1].token_sha256[1]: same token hash as subjects[0]`},
		{"unknown subject", []Subject{a}, []Binding{{Subject: "alice", Project: "p", Role: RoleAdmin}, {Subject: "bob", Project: "p", Role: RoleAdmin}}, `bindings[1].subject: unknown subject "bob"`},
		{"unknown role", []Subject{a}, []Binding{{Subject: "alice", Project: "p", Role: RoleAdmin}, {Subject: "alice", Project: "p", Role: RoleAdmin}, {Subject: "alice", Project: "p", Role: "owner"}}, `bindings[2].role: unknown role "owner"`},
		{"empty role", []Subject{a}, []Binding{{Subject: "alice", Project: "p"}}, `bindings[0].role: unknown role ""`},
		{"bad project", []Subject{a}, []Binding{{Subject: "alice", Project: "Payments", Role: RoleAdmin}}, `bindings[0].project: "Payments"`},
		{"project glob", []Subject{a}, []Binding{{Subject: "alice", Project: "pay-*", Role: RoleAdmin}}, `bindings[0].project: "pay-*"`},
		{"empty project", []Subject{a}, []Binding{{Subject: "alice", Role: RoleAdmin}}, `bindings[0].project: ""`},
		{"bad glob", []Subject{a}, []Binding{{Subject: "alice", Project: "p", Role: RoleAdmin, Secrets: []string{"ok-*", "[a-"}}}, `bindings[0].secrets[1]: "[a-": bad glob`},
		{"bad glob late", []Subject{a}, []Binding{{Subject: "alice", Project: "p", Role: RoleAdmin, Secrets: []string{"abc\\"}}}, `bindings[0].secrets[0]`},
		{"empty glob", []Subject{a}, []Binding{{Subject: "alice", Project: "p", Role: RoleAdmin, Secrets: []string{""}}}, `bindings[0].secrets[0]: "": empty glob`},
		{"slash glob", []Subject{a}, []Binding{{Subject: "alice", Project: "p", Role: RoleAdmin, Secrets: []string{"a/*"}}}, `bindings[0].secrets[0]: "a/*"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.subjects, tc.bindings)
			require.Nil(t, p)
			require.ErrorContains(t, err, tc.want)
		})
	}
	// And a good config loads.
	_, err := New([]Subject{a, b}, []Binding{
		{Subject: "alice", Project: "*", Role: RoleViewer},
		{Subject: "bob", Project: "payments", Role: RoleReader, Secrets: []string{"stripe-*", "[a-c]?", "x\\*"}},
	})
	require.NoError(t, err)
}

func TestPolicyIsACopy(t *testing.T) {
	globs := []string{"a-*"}
	bindings := []Binding{{Subject: "alice", Project: "p", Role: RoleReader, Secrets: globs}}
	p := mustNew(t, []Subject{subj("alice")}, bindings)
	globs[0] = "*"
	bindings[0].Role = RoleAdmin
	require.False(t, p.Decide("alice", "p", ActionRead, "b").Allowed)
	require.False(t, p.Decide("alice", "p", ActionDelete, "a-1").Allowed)
	got := p.Bindings()
	got[0].Secrets[0] = "*"
	require.Equal(t, []string{"a-*"}, p.Bindings()[0].Secrets)
	require.Len(t, p.Subjects(), 1)
}

func TestExplainString(t *testing.T) {
	p := mustNew(t, []Subject{subj("alice")}, []Binding{
		{Subject: "alice", Project: "payments", Role: RoleViewer},
		{Subject: "alice", Project: "*", Role: RoleEditor, Secrets: []string{"stripe-*"}},
	})
	allowed := p.Explain("alice", "payments", ActionUpdate, "stripe-key").String()
	require.Contains(t, allowed, `ALLOWED: subject "alice" may secrets.update on secret "stripe-key" in project "payments"`)
	require.Contains(t, allowed, `granted by bindings[1]: role editor on project "*", secrets "stripe-*"`)
	require.Contains(t, allowed, `considered bindings[0]: role viewer on project "payments", every secret: role lacks secrets.update; globs cover the name`)

	denied := p.Explain("alice", "payments", ActionUpdate, "db").String()
	require.Contains(t, denied, `DENIED: subject "alice" may not secrets.update on secret "db" in project "payments": the bindings whose role grants the action do not cover the secret name`)
	require.Contains(t, denied, `considered bindings[1]: role editor on project "*", secrets "stripe-*": role grants secrets.update; globs do not cover the name`)

	require.Contains(t, p.Explain("alice", "billing", ActionRead, "x").String(), "secrets.read on secret \"x\" in project \"billing\": no bound role grants the action")
	require.Contains(t, p.Explain("alice", "payments", ActionRead, "x").String(), "no bound role grants the action")
	require.Contains(t, p.Explain("bob", "payments", ActionRead, "x").String(), "unknown subject")
	require.Contains(t, p.Explain("alice", "payments", "nope", "x").String(), "known actions: secrets.list, secrets.read")

	none := mustNew(t, []Subject{subj("alice")}, nil)
	require.Contains(t, none.Explain("alice", "payments", ActionList, "").String(), `may not secrets.list in project "payments": no binding on the project`)

	// JSON is for machines: the reason reads as text.
	b, err := json.Marshal(p.Explain("alice", "payments", ActionList, "db"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"allowed":true,"reason":"allowed","binding":{"index":0`)
}

func BenchmarkAuthenticateDecide(b *testing.B) {
	var subjects []Subject
	var bindings []Binding
	for i := range 100 {
		s := subj(fmt.Sprintf("s%d", i))
		subjects = append(subjects, s)
		bindings = append(bindings,
			Binding{Subject: s.Name, Project: fmt.Sprintf("p%d", i%10), Role: RoleReader, Secrets: []string{"app-*", "db-?"}},
			Binding{Subject: s.Name, Project: "*", Role: RoleViewer})
	}
	p, err := New(subjects, bindings)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		s, ok := p.Authenticate("tok-s57")
		if !ok || !p.Decide(s.Name, "p7", ActionRead, "db-1").Allowed {
			b.Fatal("denied")
		}
	}
}
