package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// Errors of the API that have no sdk counterpart. errors.Is(err, X) holds for
// an *APIError with the matching code.
var (
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermissionDenied = errors.New("permission denied")
	ErrPayloadTooLarge  = errors.New("payload too large")
	ErrInternal         = errors.New("internal server error")
	// ErrMigrationInProgress: a write refused while its project migrates;
	// retry once the migration has ended.
	ErrMigrationInProgress = errors.New("migration in progress")
	// ErrUnreachable: no answer from the gateway (connection refused or
	// reset, timeout, TLS failure). Such errors are also sdk.ErrUnavailable.
	// A write that fails so may nevertheless have been applied, and the
	// client never sends it again by itself: retry it with If-Match (see
	// Update), and read the secret back if that answers a version mismatch.
	ErrUnreachable = errors.New("cannot reach the gateway")
)

// transportError is a failure to get an answer at all.
type transportError struct{ err error }

func (e *transportError) Error() string { return ErrUnreachable.Error() + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// Is makes the error both ErrUnreachable and, like a dead backend,
// sdk.ErrUnavailable: retrying later may help, a write only with If-Match.
func (e *transportError) Is(target error) bool {
	return target == ErrUnreachable || target == sdk.ErrUnavailable
}

// The error codes of the API's error envelope (sdk/api).
const (
	CodeInvalidArgument     = api.CodeInvalidArgument
	CodeUnauthenticated     = api.CodeUnauthenticated
	CodePermissionDenied    = api.CodePermissionDenied
	CodeNotFound            = api.CodeNotFound
	CodeAlreadyExists       = api.CodeAlreadyExists
	CodeVersionMismatch     = api.CodeVersionMismatch
	CodePayloadTooLarge     = api.CodePayloadTooLarge
	CodeBackendUnavailable  = api.CodeBackendUnavailable
	CodeInternal            = api.CodeInternal
	CodeBackendThrottled    = api.CodeBackendThrottled
	CodeRequestTimeout      = api.CodeRequestTimeout
	CodeMigrationInProgress = api.CodeMigrationInProgress
)

var codeSentinel = map[string]error{
	CodeInvalidArgument:     sdk.ErrInvalid,
	CodeUnauthenticated:     ErrUnauthenticated,
	CodePermissionDenied:    ErrPermissionDenied,
	CodeNotFound:            sdk.ErrNotFound,
	CodeAlreadyExists:       sdk.ErrAlreadyExists,
	CodeVersionMismatch:     sdk.ErrVersionMismatch,
	CodePayloadTooLarge:     ErrPayloadTooLarge,
	CodeBackendUnavailable:  sdk.ErrUnavailable,
	CodeBackendThrottled:    sdk.ErrThrottled,
	CodeInternal:            ErrInternal,
	CodeMigrationInProgress: ErrMigrationInProgress,
}

// codeForStatus guesses a code when a response carries no envelope (a proxy
// in between, say), so that errors.Is still works on the status alone.
var codeForStatus = map[int]string{
	http.StatusBadRequest:            CodeInvalidArgument,
	http.StatusUnauthorized:          CodeUnauthenticated,
	http.StatusForbidden:             CodePermissionDenied,
	http.StatusNotFound:              CodeNotFound,
	http.StatusConflict:              CodeAlreadyExists,
	http.StatusPreconditionFailed:    CodeVersionMismatch,
	http.StatusRequestEntityTooLarge: CodePayloadTooLarge,
	http.StatusBadGateway:            CodeBackendUnavailable,
	http.StatusServiceUnavailable:    CodeBackendUnavailable,
	http.StatusTooManyRequests:       CodeBackendThrottled,
	http.StatusGatewayTimeout:        CodeBackendUnavailable,
	http.StatusInternalServerError:   CodeInternal,
}

// APIError is an error answered by the gateway. Its message comes from the
// server, which never puts a secret value in one.
type APIError struct {
	Status     int    // HTTP status
	Code       string // e.g. "not_found"
	Message    string
	RequestID  string        // X-Request-Id of the exchange, for the audit log
	RetryAfter time.Duration // from Retry-After (503, 429), else 0
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
	if e.RequestID != "" {
		msg += " [request " + e.RequestID + "]"
	}
	return msg
}

// Is maps the API's code to the sdk's sentinels (not_found to
// sdk.ErrNotFound, ...) and to this package's ErrUnauthenticated,
// ErrPermissionDenied, ErrPayloadTooLarge, ErrInternal and
// ErrMigrationInProgress.
func (e *APIError) Is(target error) bool {
	s, ok := codeSentinel[e.Code]
	return ok && s == target
}
