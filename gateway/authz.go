package gateway

import (
	"fmt"
	"time"

	"github.com/secretgate/secretgate/policy"
)

// The actions a request can need, as policy names them.
const (
	ActionList    = policy.ActionList
	ActionRead    = policy.ActionRead
	ActionCreate  = policy.ActionCreate
	ActionUpdate  = policy.ActionUpdate
	ActionDelete  = policy.ActionDelete
	ActionMigrate = policy.ActionMigrate
)

// Authorizer is what the gateway asks about who may do what. *policy.Policy
// answers it through PolicyAuthorizer; handler tests use a fake.
type Authorizer interface {
	// Authenticate maps a static bearer token to a subject name, and when
	// the subject's tokens expire (zero: never).
	Authenticate(token string) (subject string, expires time.Time, ok bool)
	// HasAnyBinding is false when the subject must not learn anything
	// about the project (the gateway answers 404).
	HasAnyBinding(subject, project string) bool
	// Allowed decides one action on one secret ("" = project level).
	Allowed(subject, project, action, secret string) bool
	// CanSee filters the names of a listing.
	CanSee(subject, project, name string) bool
	// SeesAll is true when CanSee holds for every name of the project, so
	// a listing can trust the backend's paging without filtering ahead.
	SeesAll(subject, project string) bool
}

// PolicyAuthorizer adapts *policy.Policy to Authorizer.
type PolicyAuthorizer struct{ P *policy.Policy }

// Authenticate implements Authorizer.
func (a PolicyAuthorizer) Authenticate(token string) (string, time.Time, bool) {
	s, ok := a.P.Authenticate(token)
	return s.Name, s.ExpiresAt, ok
}

// HasAnyBinding implements Authorizer.
func (a PolicyAuthorizer) HasAnyBinding(subject, project string) bool {
	return a.P.HasAnyBinding(subject, project)
}

// Allowed implements Authorizer.
func (a PolicyAuthorizer) Allowed(subject, project, action, secret string) bool {
	return a.P.Decide(subject, project, action, secret).Allowed
}

// CanSee implements Authorizer.
func (a PolicyAuthorizer) CanSee(subject, project, name string) bool {
	return a.P.CanSee(subject, project, name)
}

// SeesAll implements Authorizer.
func (a PolicyAuthorizer) SeesAll(subject, project string) bool {
	return a.P.SeesAll(subject, project)
}

// NewPolicy builds the policy of a configuration.
func NewPolicy(cfg *Config) (*policy.Policy, error) {
	subjects := make([]policy.Subject, len(cfg.Subjects))
	for i, s := range cfg.Subjects {
		subjects[i] = policy.Subject{Name: s.Name, ExpiresAt: s.ExpiresAt}
		for j, th := range s.TokenSHA256 {
			h, err := policy.ParseTokenHash(th)
			if err != nil {
				field := fmt.Sprintf("subjects[%d].token_sha256", i)
				if len(s.TokenSHA256) > 1 {
					field = fmt.Sprintf("%s[%d]", field, j)
				}
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			subjects[i].Tokens = append(subjects[i].Tokens, h)
		}
	}
	bindings := make([]policy.Binding, len(cfg.Bindings))
	for i, b := range cfg.Bindings {
		bindings[i] = policy.Binding{Subject: b.Subject, Project: b.Project, Role: b.Role, Secrets: b.Secrets}
	}
	return policy.New(subjects, bindings)
}
