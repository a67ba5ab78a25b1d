package faultproxy_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
)

func TestMain(m *testing.M) {
	mototest.SetDummyCredentials()
	os.Exit(m.Run())
}

// client talks to the proxy with a single attempt per call, so that the
// proxy's answers are seen as they are.
func client(t *testing.T, p *faultproxy.Proxy) *secretsmanager.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion(mototest.Region),
		config.WithRetryer(func() awsv2.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) }))
	require.NoError(t, err)
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = awsv2.String(p.Endpoint) })
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestLag(t *testing.T) {
	const lag = time.Second
	p := faultproxy.StartMoto(t, faultproxy.Config{Lag: lag})
	c, ctx := client(t, p), t.Context()
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("lag/a"), SecretString: awsv2.String("1"), ClientRequestToken: awsv2.String("00000000-0000-4000-8000-000000000001")})
	require.NoError(t, err)
	start := time.Now()
	_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("lag/a")})
	require.Equal(t, "ResourceNotFoundException", code(err), "a fresh create is not described yet")
	l, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	require.NoError(t, err)
	require.Empty(t, l.SecretList, "nor listed")
	g, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awsv2.String("lag/a")})
	require.NoError(t, err, "GetSecretValue is not delayed")
	require.Equal(t, "1", *g.SecretString)
	require.Less(t, time.Since(start), lag, "the checks ran within the lag")

	time.Sleep(lag)
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("lag/a")})
	require.NoError(t, err)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: d.ARN, SecretString: awsv2.String("2"), ClientRequestToken: awsv2.String("00000000-0000-4000-8000-000000000002")})
	require.NoError(t, err)
	d2, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: d.ARN})
	require.NoError(t, err)
	require.Equal(t, d.VersionIdsToStages, d2.VersionIdsToStages, "a new version is not described yet (by ARN either)")
	l, err = c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	require.NoError(t, err)
	require.Len(t, l.SecretList, 1)
	require.Len(t, l.SecretList[0].SecretVersionsToStages, 1, "nor listed")
	v, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: d.ARN})
	require.NoError(t, err)
	require.Len(t, v.Versions, 1, "nor in the version list")
	time.Sleep(lag)
	v, err = c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: d.ARN})
	require.NoError(t, err)
	require.Len(t, v.Versions, 2, "visible after the lag")
	require.Equal(t, 1, p.Calls()["PutSecretValue"])
	require.Equal(t, 3, p.Calls()["DescribeSecret"], "counted: the proxy's own snapshots are not")
}

// TestTagLag: a tag write lags longer than the value write after it, and
// visibility keeps write order: until the tag write is visible, neither
// is, in DescribeSecret and in ListSecrets.
func TestTagLag(t *testing.T) {
	const lag, tagLag = 100 * time.Millisecond, 2 * time.Second
	p := faultproxy.StartMoto(t, faultproxy.Config{Lag: lag, TagLag: tagLag})
	c, ctx := client(t, p), t.Context()
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("tag/a"), SecretString: awsv2.String("1"), ClientRequestToken: awsv2.String("00000000-0000-4000-8000-000000000001")})
	require.NoError(t, err)
	time.Sleep(2 * lag)
	before, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("tag/a")})
	require.NoError(t, err)
	start := time.Now()
	_, err = c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: before.ARN, Tags: []types.Tag{{Key: awsv2.String("env"), Value: awsv2.String("prod")}}})
	require.NoError(t, err)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: before.ARN, SecretString: awsv2.String("2"), ClientRequestToken: awsv2.String("00000000-0000-4000-8000-000000000002")})
	require.NoError(t, err)
	time.Sleep(2 * lag) // the value write's own lag has passed

	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: before.ARN})
	require.NoError(t, err)
	require.Empty(t, d.Tags, "the tag is not described yet")
	require.Equal(t, before.VersionIdsToStages, d.VersionIdsToStages, "nor the value written after it")
	l, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	require.NoError(t, err)
	require.Len(t, l.SecretList, 1)
	require.Empty(t, l.SecretList[0].Tags, "nor listed")
	require.Len(t, l.SecretList[0].SecretVersionsToStages, 1)
	require.Less(t, time.Since(start), tagLag, "the checks ran within the tag lag")

	time.Sleep(tagLag)
	d, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: before.ARN})
	require.NoError(t, err)
	require.Len(t, d.Tags, 1, "visible after the tag lag")
	require.Len(t, d.VersionIdsToStages, 2)
}

func TestDeleteHold(t *testing.T) {
	const hold = time.Second
	p := faultproxy.StartMoto(t, faultproxy.Config{DeleteHold: hold})
	c, ctx := client(t, p), t.Context()
	create := func() error {
		_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("del/a"), SecretString: awsv2.String("1")})
		return err
	}
	require.NoError(t, create())
	_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: awsv2.String("del/a"), ForceDeleteWithoutRecovery: awsv2.Bool(true)})
	require.NoError(t, err)
	err = create()
	require.Equal(t, "InvalidRequestException", code(err))
	require.ErrorContains(t, err, "scheduled for deletion")
	time.Sleep(hold)
	require.NoError(t, create(), "free after the hold")
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		cfg  faultproxy.Config
		want string
	}{
		{"versions", faultproxy.Config{MaxVersions: 2}, "LimitExceededException"},
		{"rate", faultproxy.Config{WriteRate: 0.01, WriteBurst: 1}, "ThrottlingException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := faultproxy.StartMoto(t, tc.cfg)
			c, ctx := client(t, p), t.Context()
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("lim/a"), SecretString: awsv2.String("0")})
			require.NoError(t, err)
			_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awsv2.String("lim/a"), SecretString: awsv2.String("1")})
			require.NoError(t, err)
			_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awsv2.String("lim/a"), SecretString: awsv2.String("2")})
			require.Equal(t, tc.want, code(err))
		})
	}
	t.Run("tags", func(t *testing.T) {
		p := faultproxy.StartMoto(t, faultproxy.Config{MaxTags: 3})
		c, ctx := client(t, p), t.Context()
		_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("tag/a"), SecretString: awsv2.String("0"),
			Tags: []types.Tag{{Key: awsv2.String("a"), Value: awsv2.String("1")}, {Key: awsv2.String("aws:x"), Value: awsv2.String("free")}}})
		require.NoError(t, err)
		tag := func(keys ...string) error {
			var tags []types.Tag
			for _, k := range keys {
				tags = append(tags, types.Tag{Key: awsv2.String(k), Value: awsv2.String("v")})
			}
			_, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: awsv2.String("tag/a"), Tags: tags})
			return err
		}
		require.NoError(t, tag("a", "b", "c"), "3 tags; aws: ones do not count")
		err = tag("d")
		require.Equal(t, "InvalidParameterException", code(err), fmt.Sprint(err))
	})
}
