package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func apiErr(code string) error {
	return &smithy.OperationError{
		ServiceID: "Secrets Manager", OperationName: "X",
		Err: &smithy.GenericAPIError{Code: code, Message: "synthetic"},
	}
}

func TestMapError(t *testing.T) {
	tests := []struct {
		name     string
		op       string
		err      error
		want     error
		contains string
	}{
		{"not found", "GetSecretValue", apiErr("ResourceNotFoundException"), sdk.ErrNotFound, ""},
		{"access denied names the action", "GetSecretValue", apiErr("AccessDeniedException"), sdk.ErrPermission, "secretsmanager:GetSecretValue"},
		{"access denied on put", "PutSecretValue", apiErr("AccessDeniedException"), sdk.ErrPermission, "secretsmanager:PutSecretValue"},
		{"bad credentials", "ListSecrets", apiErr("UnrecognizedClientException"), sdk.ErrPermission, "secretsmanager:ListSecrets"},
		{"kms decrypt", "GetSecretValue", apiErr("DecryptionFailure"), sdk.ErrPermission, "kms:Decrypt"},
		{"kms encrypt", "CreateSecret", apiErr("EncryptionFailure"), sdk.ErrPermission, "kms:GenerateDataKey"},
		{"throttled", "DescribeSecret", apiErr("ThrottlingException"), sdk.ErrThrottled, "after retries"},
		{"throttled after max attempts", "DescribeSecret", &retry.MaxAttemptsError{Attempt: 5, Err: apiErr("ThrottlingException")}, sdk.ErrThrottled, ""},
		{"write rate names the shared quota", "PutSecretValue", apiErr("ThrottlingException"), sdk.ErrThrottled, "PutSecretValue and UpdateSecret together, 50 requests per second"},
		{"versions quota", "PutSecretValue", apiErr("LimitExceededException"), sdk.ErrThrottled, "versions per secret"},
		{"secrets quota", "CreateSecret", apiErr("LimitExceededException"), sdk.ErrThrottled, "secrets per region"},
		{"internal error", "DescribeSecret", apiErr("InternalServiceError"), sdk.ErrUnavailable, ""},
		{"network", "DescribeSecret", fmt.Errorf("send: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), sdk.ErrUnavailable, "connection refused"},
		{"invalid parameter", "PutSecretValue", apiErr("InvalidParameterException"), sdk.ErrInvalid, ""},
		{"cancelled", "DescribeSecret", fmt.Errorf("op: %w", context.Canceled), context.Canceled, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mapError(tc.op, what("p", "db"), tc.err)
			require.ErrorIs(t, got, tc.want)
			require.Contains(t, got.Error(), `secret "db" in project "p"`)
			if tc.contains != "" {
				require.Contains(t, got.Error(), tc.contains)
			}
		})
	}
	require.NoError(t, mapError("X", "y", nil))
	// An unknown code is an error of no sdk kind, still naming the code.
	got := mapError("X", "y", apiErr("SomethingNew"))
	require.Contains(t, got.Error(), "SomethingNew")
	for _, e := range []error{sdk.ErrNotFound, sdk.ErrPermission, sdk.ErrUnavailable, sdk.ErrInvalid, sdk.ErrThrottled} {
		require.NotErrorIs(t, got, e)
	}
}

// TestThrottleRetryAfter: the rate limit asks for a short wait, the versions
// quota for the 10 minutes AWS advises between writes of one secret.
func TestThrottleRetryAfter(t *testing.T) {
	tests := []struct {
		op, code string
		want     time.Duration
	}{
		{"PutSecretValue", "ThrottlingException", time.Second},
		{"PutSecretValue", "LimitExceededException", 10 * time.Minute},
	}
	for _, tc := range tests {
		var te *sdk.ThrottleError
		require.ErrorAs(t, mapError(tc.op, "x", apiErr(tc.code)), &te, tc.code)
		require.Equal(t, tc.want, te.RetryAfter, tc.code)
	}
}
