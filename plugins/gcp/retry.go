package gcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretgate/secretgate/sdk"
)

// Retries of UNAVAILABLE and RESOURCE_EXHAUSTED: up to maxAttempts calls,
// exponential backoff from baseBackoff with full jitter, capped at
// maxBackoff, never past the caller's deadline.
const (
	maxAttempts = 5
	baseBackoff = 50 * time.Millisecond
	maxBackoff  = 1 * time.Second
)

// permissions names, per call, the IAM permission that call needs, so that a
// PERMISSION_DENIED tells the operator what to grant.
var permissions = map[string]string{
	"GetSecret":           "secretmanager.secrets.get",
	"CreateSecret":        "secretmanager.secrets.create",
	"UpdateSecret":        "secretmanager.secrets.update",
	"DeleteSecret":        "secretmanager.secrets.delete",
	"ListSecrets":         "secretmanager.secrets.list",
	"AddSecretVersion":    "secretmanager.versions.add",
	"GetSecretVersion":    "secretmanager.versions.get",
	"AccessSecretVersion": "secretmanager.versions.access",
	"ListSecretVersions":  "secretmanager.versions.list",
}

func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted:
		return true
	}
	return false
}

// etagFailure reports whether err is a failed etag precondition. Secret
// Manager documents FAILED_PRECONDITION; AIP-154 recommends ABORTED, so both
// are taken.
func etagFailure(err error) bool {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.Aborted:
		return true
	}
	return false
}

// retry runs fn until it succeeds, fails with a non-transient error, or
// maxAttempts is reached. It reports whether fn was called more than once,
// which matters for calls that are not idempotent (a retried delete that
// answers NOT_FOUND probably deleted on the first try).
func retry(ctx context.Context, fn func(ctx context.Context) error) (retried bool, err error) {
	backoff := baseBackoff
	for attempt := 1; ; attempt++ {
		err = fn(ctx)
		if err == nil || !transient(err) || attempt == maxAttempts {
			return attempt > 1, err
		}
		if serr := sdk.Sleep(ctx, sdk.Jitter(backoff)); serr != nil {
			return true, err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// mapErr turns a Secret Manager error into the sdk's typed errors. op is the
// RPC's name; what names the secret for messages (never a value).
func mapErr(ctx context.Context, op, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("gcp %s %s: %w: %w", op, what, sdk.ErrUnavailable, cerr)
	}
	st, _ := status.FromError(err)
	msg := st.Message()
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("gcp %s %s: %w", op, what, sdk.ErrNotFound)
	case codes.AlreadyExists:
		return fmt.Errorf("gcp %s %s: %w", op, what, sdk.ErrAlreadyExists)
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
		return fmt.Errorf("gcp %s %s: %s after %d attempts: %w", op, what, st.Code(), maxAttempts, sdk.ErrUnavailable)
	case codes.PermissionDenied:
		return fmt.Errorf("gcp %s %s: the service account needs the IAM permission %s: %w", op, what, permissions[op], sdk.ErrPermission)
	case codes.Unauthenticated:
		return fmt.Errorf("gcp %s %s: credentials were rejected (check credentials_file or ADC): %w", op, what, sdk.ErrPermission)
	case codes.InvalidArgument:
		return fmt.Errorf("gcp %s %s: %s: %w", op, what, msg, sdk.ErrInvalid)
	}
	return fmt.Errorf("gcp %s %s: %s: %s", op, what, st.Code(), msg)
}

// isCode reports whether err carries the given gRPC code, or is one of our
// mapped errors for it.
func isNotFound(err error) bool {
	return status.Code(err) == codes.NotFound || errors.Is(err, sdk.ErrNotFound)
}
