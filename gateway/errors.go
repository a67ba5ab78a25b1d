package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// The error codes are api.Code* (sdk/api: the wire types, written once).

// apiError is an answer of the API that is not a success. Message is built by
// the gateway from names and rules only: never from a request body, so it can
// never echo a secret value back.
type apiError struct {
	Status  int
	Code    string
	Message string
	// cause is kept for the server log of 500s; it is never sent.
	cause error
	// retryAfter, when set, is sent as Retry-After (whole seconds, at least 1).
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidArg(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument,
		Message: fmt.Sprintf("invalid %s: %s", field, fmt.Sprintf(format, args...))}
}

// api.ErrorBody is the JSON envelope of every error.
// opContext says what the gateway was doing when a backend failed, so that
// messages name the secret and the backend rather than quoting the backend's
// own error text.
type opContext struct {
	project string
	name    string
	version int64
	backend string
}

// mapBackendError turns a backend error into the API's answer.
func mapBackendError(err error, op opContext) *apiError {
	var ae *apiError
	var fe *sdk.FieldError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		// Reasons come from sdk validation or a plugin's own, which by the
		// Backend contract never carry values.
		return invalidArg(fe.Field, "%s", fe.Reason)
	case errors.Is(err, sdk.ErrInvalid):
		return newAPIError(http.StatusBadRequest, api.CodeInvalidArgument, "the backend rejected the request as invalid")
	case errors.Is(err, sdk.ErrNotFound):
		if op.version > 0 {
			return newAPIError(http.StatusNotFound, api.CodeNotFound, "version %d of secret %q not found in project %q", op.version, op.name, op.project)
		}
		if op.name == "" {
			return newAPIError(http.StatusNotFound, api.CodeNotFound, "project %q not found", op.project)
		}
		return newAPIError(http.StatusNotFound, api.CodeNotFound, "secret %q not found in project %q", op.name, op.project)
	case errors.Is(err, sdk.ErrAlreadyExists):
		return newAPIError(http.StatusConflict, api.CodeAlreadyExists, "secret %q already exists in project %q", op.name, op.project)
	case errors.Is(err, sdk.ErrVersionMismatch):
		return newAPIError(http.StatusPreconditionFailed, api.CodeVersionMismatch, "secret %q in project %q is not at the expected version", op.name, op.project)
	case errors.Is(err, sdk.ErrThrottled):
		te := &sdk.ThrottleError{Limit: "a quota of the backend's service"}
		errors.As(err, &te)
		wait := max(te.RetryAfter, time.Second)
		return &apiError{Status: http.StatusTooManyRequests, Code: api.CodeBackendThrottled, retryAfter: wait,
			Message: fmt.Sprintf("backend %q refused the call for a limit of its service (%s); retry after %s", op.backend, te.Limit, retrySeconds(wait)+"s")}
	case errors.Is(err, sdk.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return unavailable(op.backend)
	case errors.Is(err, sdk.ErrPermission):
		return &apiError{Status: http.StatusInternalServerError, Code: api.CodeInternal,
			Message: fmt.Sprintf("backend %q refused the gateway's own credentials", op.backend), cause: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "internal error", cause: err}
}

func unavailable(backend string) *apiError {
	return newAPIError(http.StatusServiceUnavailable, api.CodeBackendUnavailable, "backend %q is unavailable, retry later", backend)
}

// retrySeconds renders d as whole seconds, rounded up, at least 1.
func retrySeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64((d+time.Second-1)/time.Second)), 10)
}

// abortWith writes the error envelope and stops the handler chain.
func abortWith(c *gin.Context, e *apiError) {
	switch {
	case e.retryAfter > 0:
		c.Header("Retry-After", retrySeconds(e.retryAfter))
	case e.Status == http.StatusServiceUnavailable:
		c.Header("Retry-After", "1")
	}
	if e.Status == http.StatusInternalServerError && e.Message == "internal error" {
		e.Message = "internal error (request id " + requestID(c) + ")"
	}
	if e.cause != nil {
		c.Set(ctxKeyCause, e.cause)
	}
	c.AbortWithStatusJSON(e.Status, api.ErrorBody{Error: api.ErrorDetail{Code: e.Code, Message: e.Message}})
}

// fieldReason is the reason of a validation error, to be reported under
// another field name than the sdk's (a request body names things its own
// way); fallback serves errors that are not *sdk.FieldError.
func fieldReason(err error, fallback string) string {
	var fe *sdk.FieldError
	if errors.As(err, &fe) && fe.Reason != "" {
		return fe.Reason
	}
	return fallback
}
