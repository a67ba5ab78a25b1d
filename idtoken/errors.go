package idtoken

import (
	"errors"
	"strings"
)

// ErrInvalidToken is matched (errors.Is) by every error Verify returns: the
// caller answers 401 with the error's message, which never contains the
// token. The kinds below tell the reasons apart.
var ErrInvalidToken = errors.New("invalid token")

// Kinds of *Error. Every one of them is the client's fault or the issuer's,
// never a reason for a 5xx; only ErrKeysUnavailable says something about
// the gateway's surroundings (the issuer's keys could not be fetched and no
// cached key fits), which the gateway may want to log.
var (
	ErrMalformed       = errors.New("malformed token")
	ErrUnknownIssuer   = errors.New("unknown issuer")
	ErrAlgorithm       = errors.New("algorithm not allowed")
	ErrUnknownKey      = errors.New("unknown signing key")
	ErrKeysUnavailable = errors.New("issuer keys unavailable")
	ErrSignature       = errors.New("bad signature")
	ErrExpired         = errors.New("token expired")
	ErrNotYetValid     = errors.New("token not yet valid")
	ErrLifetime        = errors.New("token lifetime too long")
	ErrAudience        = errors.New("wrong audience")
	ErrClaims          = errors.New("bad claims")
	ErrNoRule          = errors.New("no rule matches")
)

// Error is what Verify returns for a token it refuses.
type Error struct {
	// Kind is one of the Err* kinds above.
	Kind error
	// Issuer is the configured name of the token's issuer, "" before the
	// issuer is known.
	Issuer string
	// Reason says what is wrong, for the client: it never contains the token
	// nor the value of a claim.
	Reason string
	// Err is the cause when there is one (a failed key fetch).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Issuer != "" {
		b.WriteString("issuer ")
		b.WriteString(e.Issuer)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidToken) and errors.Is(err, e.Kind) hold.
func (e *Error) Is(target error) bool { return target == ErrInvalidToken || target == e.Kind }

func (e *Error) Unwrap() error { return e.Err }

func tokenErr(kind error, issuer, reason string) *Error {
	return &Error{Kind: kind, Issuer: issuer, Reason: reason}
}
