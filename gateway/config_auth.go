package gateway

// The auth section of the configuration: workload identity (JWT/OIDC)
// issuers and the rules that map their tokens to subjects
// (docs/workload-identity.md). The issuers are idtoken's own type: what
// they mean, and their checks, live there.

import (
	"errors"
	"fmt"

	"github.com/secretgate/secretgate/idtoken"
)

// AuthConfig is the configuration's auth section.
type AuthConfig struct {
	JWT []idtoken.Issuer `yaml:"jwt"`
}

// reachedByJWT reports whether a rule of some issuer names the subject.
func (c *Config) reachedByJWT(subject string) bool {
	for _, j := range c.Auth.JWT {
		for _, r := range j.Rules {
			if r.Subject == subject {
				return true
			}
		}
	}
	return false
}

// validateAuth checks the auth section; subjects holds the subject names.
func (c *Config) validateAuth(add func(field, format string, args ...any), subjects map[string]bool) {
	if err := idtoken.ValidateIssuers(c.Auth.JWT); err != nil {
		var list interface{ Unwrap() []error }
		if errors.As(err, &list) {
			for _, e := range list.Unwrap() {
				var fe *idtoken.FieldError
				if errors.As(e, &fe) {
					add(fe.Field, "%s", fe.Reason)
				}
			}
		} else {
			add("auth.jwt", "%v", err)
		}
	}
	for i, j := range c.Auth.JWT {
		for k, r := range j.Rules {
			if r.Subject != "" && !subjects[r.Subject] {
				add(fmt.Sprintf("auth.jwt[%d].rules[%d].subject", i, k), "unknown subject %q", r.Subject)
			}
		}
	}
}
