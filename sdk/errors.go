package sdk

import (
	"errors"
	"fmt"
	"time"
)

// The typed errors every Backend returns. They survive the plugin's gRPC hop
// as status codes, so errors.Is works on the host side of a plugin too.
var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrVersionMismatch = errors.New("version mismatch")
	ErrInvalid         = errors.New("invalid argument")
	ErrUnavailable     = errors.New("backend unavailable")
	ErrPermission      = errors.New("permission denied by backend")
	// ErrThrottled: the backend's service refused the call for a quota or
	// rate limit; retrying after a while helps, at once does not. Return
	// it as a *ThrottleError (Throttled) to say which limit and when.
	ErrThrottled = errors.New("backend quota or rate limit exceeded")
)

// ThrottleError is an ErrThrottled that says which limit was hit (a short
// phrase naming the service's quota, never a value) and, when the service
// says or documents it, how long to wait before retrying.
type ThrottleError struct {
	Limit      string        // e.g. "GCP Secret Manager: 600 reads per minute per project"
	RetryAfter time.Duration // 0 = unknown
}

func (e *ThrottleError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (%s); retry after %s", ErrThrottled, e.Limit, e.RetryAfter)
	}
	return fmt.Sprintf("%s (%s)", ErrThrottled, e.Limit)
}

// Is makes errors.Is(err, ErrThrottled) hold for every ThrottleError.
func (e *ThrottleError) Is(target error) bool { return target == ErrThrottled }

// Throttled returns a *ThrottleError naming the limit that was hit.
func Throttled(limit string, retryAfter time.Duration) error {
	return &ThrottleError{Limit: limit, RetryAfter: retryAfter}
}

// FieldError is an ErrInvalid that names the offending field, so that the
// gateway can answer 400 with a message a person can act on. It never
// carries a secret value: Reason describes the rule, not the input.
type FieldError struct {
	Field  string // e.g. "name", "data.password", "labels.env"
	Reason string // e.g. "must match ^[A-Za-z0-9]..."
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// Is makes errors.Is(err, ErrInvalid) hold for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Invalid builds a FieldError.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// NotFound wraps ErrNotFound with the project and name, never a value.
func NotFound(project, name string) error {
	return fmt.Errorf("secret %q in project %q: %w", name, project, ErrNotFound)
}

// VersionNotFound wraps ErrNotFound for a version that does not exist (any
// more): pruned, or never written.
func VersionNotFound(project, name string, version int64) error {
	return fmt.Errorf("version %d of secret %q in project %q: %w", version, name, project, ErrNotFound)
}

// AlreadyExists wraps ErrAlreadyExists with the project and name.
func AlreadyExists(project, name string) error {
	return fmt.Errorf("secret %q in project %q: %w", name, project, ErrAlreadyExists)
}

// VersionMismatch wraps ErrVersionMismatch; current is 0 when unknown.
func VersionMismatch(project, name string, expected, current int64) error {
	if current == 0 {
		return fmt.Errorf("secret %q in project %q: expected version %d: %w", name, project, expected, ErrVersionMismatch)
	}
	return fmt.Errorf("secret %q in project %q: expected version %d, current is %d: %w", name, project, expected, current, ErrVersionMismatch)
}
