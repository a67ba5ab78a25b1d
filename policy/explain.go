package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Reason classifies a decision.
type Reason int

// The reasons, from "allowed" to the most specific denial.
const (
	ReasonAllowed Reason = iota
	// ReasonUnknownSubject: no such subject in the policy.
	ReasonUnknownSubject
	// ReasonUnknownAction: the action is not one of Actions().
	ReasonUnknownAction
	// ReasonNoBinding: the subject has no binding on the project.
	ReasonNoBinding
	// ReasonRoleLacksAction: bindings exist, but none of their roles grants
	// the action.
	ReasonRoleLacksAction
	// ReasonGlobsDoNotCover: a role grants the action, but that binding's
	// globs do not cover the secret's name.
	ReasonGlobsDoNotCover
	// ReasonNarrowed: a project-level action (secret "") other than list is
	// granted only by bindings narrowed to some secrets, which cannot grant
	// an action over the whole project.
	ReasonNarrowed
)

var reasonText = map[Reason]string{
	ReasonAllowed:         "allowed",
	ReasonUnknownSubject:  "unknown subject",
	ReasonUnknownAction:   "unknown action",
	ReasonNoBinding:       "no binding on the project",
	ReasonRoleLacksAction: "no bound role grants the action",
	ReasonGlobsDoNotCover: "the bindings whose role grants the action do not cover the secret name",
	ReasonNarrowed:        "the bindings whose role grants the action are narrowed to some secrets, and the action concerns the whole project",
}

func (r Reason) String() string {
	if s, ok := reasonText[r]; ok {
		return s
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText makes a Reason read well in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// BindingRef describes one binding by its position in the configuration.
type BindingRef struct {
	Index   int      `json:"index"`
	Subject string   `json:"subject"`
	Project string   `json:"project"`
	Role    string   `json:"role"`
	Secrets []string `json:"secrets,omitempty"` // empty = every secret
}

func (b BindingRef) String() string {
	scope := "every secret"
	if len(b.Secrets) > 0 {
		scope = "secrets " + strings.Join(quoteAll(b.Secrets), ", ")
	}
	return fmt.Sprintf("bindings[%d]: role %s on project %q, %s", b.Index, b.Role, b.Project, scope)
}

// Candidate is one binding of the subject on the project, with what it
// contributes to the decision.
type Candidate struct {
	BindingRef
	GrantsAction bool `json:"grants_action"` // the role grants the action
	CoversSecret bool `json:"covers_secret"` // the globs cover the secret (or the project, for secret "")
}

// Explanation says why an action is allowed or denied.
type Explanation struct {
	Subject string `json:"subject"`
	Project string `json:"project"`
	Action  string `json:"action"`
	Secret  string `json:"secret,omitempty"`
	Allowed bool   `json:"allowed"`
	Reason  Reason `json:"reason"`
	// Binding is the first binding that allows the action; nil when denied.
	Binding *BindingRef `json:"binding,omitempty"`
	// Considered lists every binding of the subject on the project.
	Considered []Candidate `json:"considered"`
}

// Explain decides like Decide and says which binding allows the action, or
// why none does.
func (p *Policy) Explain(subject, project string, action Action, secret string) Explanation {
	e := Explanation{Subject: subject, Project: project, Action: action, Secret: secret, Considered: []Candidate{}}
	if _, known := p.names[subject]; !known {
		e.Reason = ReasonUnknownSubject
		return e
	}
	if !IsAction(action) {
		e.Reason = ReasonUnknownAction
		return e
	}
	projectLevel := secret == ""
	anyGrant, anyGrantCovering := false, false
	for _, i := range p.bySubj[subject] {
		b := p.bindings[i]
		if !projectMatches(b.Project, project) {
			continue
		}
		c := Candidate{
			BindingRef:   BindingRef{Index: i, Subject: b.Subject, Project: b.Project, Role: b.Role, Secrets: b.Secrets},
			GrantsAction: RoleAllows(b.Role, action),
		}
		switch {
		case !projectLevel:
			c.CoversSecret = covers(b, secret)
		case action == ActionList:
			// Listing is allowed at project level by any list binding; the
			// names are filtered by CanSee afterwards.
			c.CoversSecret = true
		default:
			c.CoversSecret = coversAll(b)
		}
		e.Considered = append(e.Considered, c)
		anyGrant = anyGrant || c.GrantsAction
		if c.GrantsAction && c.CoversSecret && !anyGrantCovering {
			anyGrantCovering = true
			ref := c.BindingRef
			e.Binding = &ref
		}
	}
	switch {
	case anyGrantCovering:
		e.Allowed, e.Reason = true, ReasonAllowed
	case len(e.Considered) == 0:
		e.Reason = ReasonNoBinding
	case !anyGrant:
		e.Reason = ReasonRoleLacksAction
	case projectLevel:
		e.Reason = ReasonNarrowed
	default:
		e.Reason = ReasonGlobsDoNotCover
	}
	return e
}

// String renders the explanation for people, one line for the verdict and
// one per binding considered.
func (e Explanation) String() string {
	var sb strings.Builder
	what := e.Action
	if e.Secret != "" {
		what += fmt.Sprintf(" on secret %q", e.Secret)
	}
	if e.Allowed {
		fmt.Fprintf(&sb, "ALLOWED: subject %q may %s in project %q\n", e.Subject, what, e.Project)
		fmt.Fprintf(&sb, "  granted by %s\n", e.Binding)
	} else {
		fmt.Fprintf(&sb, "DENIED: subject %q may not %s in project %q: %s\n", e.Subject, what, e.Project, e.Reason)
	}
	if e.Reason == ReasonUnknownAction {
		fmt.Fprintf(&sb, "  known actions: %s\n", strings.Join(Actions(), ", "))
	}
	for _, c := range e.Considered {
		var verdict []string
		if c.GrantsAction {
			verdict = append(verdict, "role grants "+e.Action)
		} else {
			verdict = append(verdict, "role lacks "+e.Action)
		}
		switch {
		case e.Secret != "" && c.CoversSecret:
			verdict = append(verdict, "globs cover the name")
		case e.Secret != "":
			verdict = append(verdict, "globs do not cover the name")
		case !c.CoversSecret:
			verdict = append(verdict, "narrowed to some secrets")
		}
		fmt.Fprintf(&sb, "  considered %s: %s\n", c.BindingRef, strings.Join(verdict, "; "))
	}
	return sb.String()
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}
