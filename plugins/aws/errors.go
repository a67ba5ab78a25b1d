package aws

import (
	"context"
	"errors"
	"fmt"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/secretgate/secretgate/sdk"
)

// AWS error codes this plugin acts on (Secrets Manager API reference,
// "Errors" of each operation, and the common errors of all AWS APIs).
const (
	codeNotFound      = "ResourceNotFoundException"
	codeExists        = "ResourceExistsException"
	codeInvalidReq    = "InvalidRequestException"
	codeInvalidParam  = "InvalidParameterException"
	codeDecryption    = "DecryptionFailure"
	codeEncryption    = "EncryptionFailure"
	codeLimitExceeded = "LimitExceededException"
)

var deniedCodes = map[string]bool{
	"AccessDeniedException":       true,
	"AccessDenied":                true,
	"UnrecognizedClientException": true,
	"InvalidClientTokenId":        true,
	"ExpiredTokenException":       true,
	"InvalidSignatureException":   true,
}

// throttleCodes are AWS's answers to a request rate above a quota.
var throttleCodes = map[string]bool{
	"ThrottlingException":      true,
	"Throttling":               true,
	"TooManyRequestsException": true,
	"RequestLimitExceeded":     true,
}

var unavailableCodes = map[string]bool{
	"InternalServiceError":          true,
	"InternalFailure":               true,
	"ServiceUnavailable":            true,
	"ServiceUnavailableException":   true,
	"RequestTimeout":                true,
	"RequestTimeoutException":       true,
	"ProvisionedThroughputExceeded": true,
}

// rateLimit names the documented request-rate quota of an operation
// (Secrets Manager quotas page; none of them is adjustable).
func rateLimit(op string) string {
	switch op {
	case "PutSecretValue", "UpdateSecret":
		return "AWS Secrets Manager: PutSecretValue and UpdateSecret together, 50 requests per second per region"
	case "TagResource", "UntagResource":
		return "AWS Secrets Manager: TagResource and UntagResource together, 50 requests per second per region"
	case "":
		return "AWS Secrets Manager request rate per region"
	}
	return "AWS Secrets Manager: " + op + " request rate per region"
}

// quotaError maps LimitExceededException ("The request failed because it
// would exceed one of the Secrets Manager quotas"). On a value write it is
// the versions quota: AWS keeps at most about 100 versions but never
// removes those of the last 24 hours, so writing one secret more often than
// every 10 minutes reaches it (quotas page); retrying soon does not help.
func quotaError(op string) error {
	switch op {
	case "PutSecretValue", "UpdateSecret":
		return sdk.Throttled("AWS Secrets Manager: versions per secret (about 100, plus every version of the last 24 hours; AWS advises at most one write per secret every 10 minutes)", 10*time.Minute)
	case "CreateSecret":
		return sdk.Throttled("AWS Secrets Manager: secrets per region (500,000)", 0)
	}
	return sdk.Throttled("AWS Secrets Manager: a quota of "+op, 0)
}

// noRetryCodes tells the SDK's retryer not to retry these error codes.
type noRetryCodes map[string]bool

func (c noRetryCodes) IsErrorRetryable(err error) awsv2.Ternary {
	if c[apiCode(err)] {
		return awsv2.FalseTernary
	}
	return awsv2.UnknownTernary
}

// apiCode returns the AWS error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isCode(err error, code string) bool { return apiCode(err) == code }

// mapError turns an AWS SDK error of operation op (e.g. "GetSecretValue")
// into the sdk's typed errors. what names the secret, never a value. The
// AWS message is kept only for operations that do not carry a value, and
// AWS messages never echo SecretString anyway.
func mapError(op, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("aws %s %s: %w", op, what, err)
	}
	code := apiCode(err)
	switch {
	case code == codeNotFound:
		return fmt.Errorf("aws %s %s: %w", op, what, sdk.ErrNotFound)
	case deniedCodes[code]:
		return fmt.Errorf("aws %s %s: %s: the credentials are not allowed secretsmanager:%s: %w", op, what, code, op, sdk.ErrPermission)
	case code == codeDecryption:
		return fmt.Errorf("aws %s %s: %s: the credentials are not allowed kms:Decrypt on the secret's KMS key: %w", op, what, code, sdk.ErrPermission)
	case code == codeEncryption:
		return fmt.Errorf("aws %s %s: %s: the credentials are not allowed kms:GenerateDataKey on the secret's KMS key, or the key is not usable: %w", op, what, code, sdk.ErrPermission)
	case code == codeInvalidParam:
		return fmt.Errorf("aws %s %s: %s: %w", op, what, code, sdk.ErrInvalid)
	case code == codeLimitExceeded:
		return fmt.Errorf("aws %s %s: %s: %w", op, what, code, quotaError(op))
	case throttleCodes[code]:
		return fmt.Errorf("aws %s %s: %s (after retries): %w", op, what, code, sdk.Throttled(rateLimit(op), time.Second))
	case unavailableCodes[code]:
		return fmt.Errorf("aws %s %s: %s (after retries): %w", op, what, code, sdk.ErrUnavailable)
	case code == "":
		// No answer from AWS at all: connection refused, DNS, TLS, or the
		// retryer gave up. Callers may try again later.
		var maxErr *retry.MaxAttemptsError
		if errors.As(err, &maxErr) {
			return fmt.Errorf("aws %s %s: retries exhausted: %w", op, what, sdk.ErrUnavailable)
		}
		return fmt.Errorf("aws %s %s: %w: %v", op, what, sdk.ErrUnavailable, err)
	}
	return fmt.Errorf("aws %s %s: %s", op, what, code)
}
