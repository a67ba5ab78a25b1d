package gcptest_test

import (
	"context"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
)

func clientFor(t *testing.T, o gcptest.Options) (*secretmanager.Client, *gcptest.Running) {
	t.Helper()
	srv := gcptest.StartWith(t, o)
	c, err := secretmanager.NewClient(context.Background(), option.WithEndpoint(srv.Addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())), option.WithoutAuthentication())
	require.NoError(t, err)
	c.CallOptions = &secretmanager.CallOptions{} // no client retries: see every answer
	t.Cleanup(func() { _ = c.Close() })
	return c, srv
}

// TestLag: only access by number sees a new version at once; `latest`,
// GetSecret, GetSecretVersion and the lists show the past until the lag has
// passed, deletions included; mutations check etags against the present.
func TestLag(t *testing.T) {
	const lag = 200 * time.Millisecond
	c, _ := clientFor(t, gcptest.Options{Lag: lag})
	ctx := context.Background()
	s := create(t, c, "lagged", nil)
	v1 := add(t, c, s.GetName(), "one")

	_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	requireCode(t, codes.NotFound, err) // created within the lag
	acc, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v1.GetName()})
	require.NoError(t, err, "access by number right after the add is strongly consistent")
	require.Equal(t, "one", string(acc.GetPayload().GetData()))
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	requireCode(t, codes.NotFound, err)
	require.Empty(t, listIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj}))

	// The etag of the creation answer is current, whatever GetSecret says.
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: s.GetEtag(), Labels: map[string]string{"a": "b"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	require.NoError(t, err)

	time.Sleep(lag + 50*time.Millisecond)
	got, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	require.NoError(t, err)
	require.Equal(t, "b", got.GetLabels()["a"])
	add(t, c, s.GetName(), "two")
	acc, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	require.NoError(t, err)
	require.Equal(t, "one", string(acc.GetPayload().GetData()), "latest lags")

	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName()})
	require.NoError(t, err)
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	require.NoError(t, err, "a deletion is seen late too")
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v1.GetName()})
	requireCode(t, codes.NotFound, err)
}

// TestQuotas: each quota answers RESOURCE_EXHAUSTED with the AIP-193
// ErrorInfo naming it and a RetryInfo; calls are counted; names carry the
// project number.
func TestQuotas(t *testing.T) {
	// Hour-long windows, so that the test cannot straddle a window's end.
	c, srv := clientFor(t, gcptest.Options{Quotas: gcptest.Quotas{
		Access:    gcptest.Limit{N: 2, Per: time.Hour},
		Read:      gcptest.Limit{N: 1, Per: time.Hour},
		Write:     gcptest.Limit{N: 4, Per: time.Hour},
		PerSecret: []gcptest.Limit{{N: 2, Per: time.Hour}},
	}})
	ctx := context.Background()
	s := create(t, c, "q", nil)
	require.Equal(t, "projects/"+gcptest.ProjectNumber("test-project")+"/secrets/q", s.GetName())
	v := add(t, c, s.GetName(), "x")
	add(t, c, s.GetName(), "y")
	quota := func(err error) string {
		t.Helper()
		requireCode(t, codes.ResourceExhausted, err)
		st, _ := status.FromError(err)
		var metric string
		var retry time.Duration
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				require.Equal(t, "RATE_LIMIT_EXCEEDED", d.GetReason())
				metric = d.GetMetadata()["quota_metric"]
			case *errdetails.RetryInfo:
				retry = d.GetRetryDelay().AsDuration()
			}
		}
		require.Positive(t, retry)
		require.LessOrEqual(t, retry, time.Hour)
		return metric
	}
	_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: []byte("z")}})
	require.Contains(t, quota(err), "secret_modifications")
	for range 2 {
		_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v.GetName()})
		require.NoError(t, err)
	}
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v.GetName()})
	require.Contains(t, quota(err), "access_requests")
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	require.NoError(t, err)
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	require.Contains(t, quota(err), "read_requests")
	create(t, c, "q2", nil)
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: proj, SecretId: "q3", Secret: &secretmanagerpb.Secret{}})
	require.Contains(t, quota(err), "write_requests")

	calls := srv.Calls()
	require.Equal(t, 3, calls["AccessSecretVersion"])
	require.Equal(t, 3, calls["AddSecretVersion"])
	srv.ResetCalls()
	require.Empty(t, srv.Calls())
}
