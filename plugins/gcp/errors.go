package gcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretgate/secretgate/sdk"
)

// Retries of UNAVAILABLE (and of RESOURCE_EXHAUSTED when the wait the
// service asks for is short): up to maxAttempts calls, exponential backoff
// from baseBackoff with full jitter, capped at maxBackoff, never past the
// caller's deadline.
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
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		// Worth a retry within our budget only when the service says the
		// quota comes back soon (the per-secret 2/s limit); a per-minute
		// quota does not, and retrying it spends more of it.
		d, known := retryDelay(err)
		return !known || d <= maxBackoff
	}
	return false
}

// quotaInfo reads what a RESOURCE_EXHAUSTED says about itself: the
// ErrorInfo of AIP-193 (quota_metric, quota_limit) and a RetryInfo.
func quotaInfo(err error) (metric, limit string, delay time.Duration, hasDelay bool) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			metric, limit = d.GetMetadata()["quota_metric"], d.GetMetadata()["quota_limit"]
		case *errdetails.RetryInfo:
			delay, hasDelay = d.GetRetryDelay().AsDuration(), true
		}
	}
	return metric, limit, delay, hasDelay
}

func retryDelay(err error) (time.Duration, bool) {
	_, _, d, ok := quotaInfo(err)
	return d, ok
}

// mutating calls spend the project's write quota; AddSecretVersion and
// UpdateSecret also the per-secret modification limit.
var mutating = map[string]bool{"CreateSecret": true, "UpdateSecret": true, "DeleteSecret": true, "AddSecretVersion": true}

// throttled turns a RESOURCE_EXHAUSTED of call op into sdk.Throttled,
// naming the limit (from the error's ErrorInfo when the service sent one,
// else from the kind of call) and when to retry (the RetryInfo, else the
// limit's window: a second for the per-secret limit, a minute for the
// per-project quotas).
func throttled(op, what string, err error) error {
	metric, limit, delay, ok := quotaInfo(err)
	var name string
	var window time.Duration
	switch {
	case strings.Contains(metric, "access"):
		name, window = "GCP Secret Manager access requests per minute per project (90,000 by default)", time.Minute
	case strings.Contains(metric, "read"):
		name, window = "GCP Secret Manager read requests per minute per project (600 by default)", time.Minute
	case strings.Contains(metric, "write"):
		name, window = "GCP Secret Manager write requests per minute per project (600 by default)", time.Minute
	case strings.Contains(metric, "modif") || strings.Contains(limit, "PerSecret"):
		name, window = "GCP Secret Manager AddSecretVersion+UpdateSecret per secret (2 per second, 120 per minute)", time.Second
	case op == "AccessSecretVersion":
		name, window = "GCP Secret Manager access requests per minute per project (90,000 by default)", time.Minute
	case op == "AddSecretVersion" || op == "UpdateSecret":
		name, window = "GCP Secret Manager AddSecretVersion+UpdateSecret per secret (2 per second, 120 per minute) or write requests per minute per project (600)", time.Second
	case mutating[op]:
		name, window = "GCP Secret Manager write requests per minute per project (600 by default)", time.Minute
	default:
		name, window = "GCP Secret Manager read requests per minute per project (600 by default)", time.Minute
	}
	if !ok || delay <= 0 {
		delay = window
	}
	delay = delay.Round(time.Second)
	if delay < time.Second {
		delay = time.Second // Retry-After is whole seconds
	}
	if limit != "" {
		name += ", quota_limit " + limit
	}
	return fmt.Errorf("gcp %s %s: %w", op, what, sdk.Throttled(name, delay))
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
// maxAttempts is reached. mayHaveRun reports whether an earlier, failed
// attempt may have taken effect all the same, which matters for calls that
// are not idempotent (a retried delete that answers NOT_FOUND probably
// deleted on the first try). Only UNAVAILABLE leaves that open: the answer
// may have been lost after the service acted. RESOURCE_EXHAUSTED is a quota
// refusal given before the call runs, so a delete refused by the quota and
// then answered NOT_FOUND found nothing to delete.
func retry(ctx context.Context, fn func(ctx context.Context) error) (mayHaveRun bool, err error) {
	backoff := baseBackoff
	for attempt := 1; ; attempt++ {
		err = fn(ctx)
		if err == nil || !transient(err) || attempt == maxAttempts {
			return mayHaveRun, err
		}
		if status.Code(err) == codes.Unavailable {
			mayHaveRun = true
		}
		wait := sdk.Jitter(backoff)
		if d, ok := retryDelay(err); ok && d > wait {
			wait = d
		}
		if serr := sdk.Sleep(ctx, wait); serr != nil {
			return mayHaveRun, err
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
	case codes.ResourceExhausted:
		return throttled(op, what, err)
	case codes.Unavailable, codes.DeadlineExceeded:
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
