package aws

import (
	"context"
	"errors"
	"fmt"

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

var unavailableCodes = map[string]bool{
	"ThrottlingException":           true,
	"Throttling":                    true,
	"TooManyRequestsException":      true,
	"RequestLimitExceeded":          true,
	"InternalServiceError":          true,
	"InternalFailure":               true,
	"ServiceUnavailable":            true,
	"ServiceUnavailableException":   true,
	"RequestTimeout":                true,
	"RequestTimeoutException":       true,
	"ProvisionedThroughputExceeded": true,
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
	case unavailableCodes[code], code == codeLimitExceeded:
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
