package aws_test

import (
	"context"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

var benchData = map[string]string{"username": "admin", "password": "correct horse battery staple", "host": "db.internal:5432"}

// BenchmarkDirectGet is the baseline: one GetSecretValue with the AWS SDK
// straight to moto, what any AWS client pays.
func BenchmarkDirectGet(b *testing.B) {
	moto := mototest.Start(b)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(mototest.Region))
	require.NoError(b, err)
	raw := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = awsv2.String(moto.Endpoint) })
	body, err := sdk.EncodeData(benchData)
	require.NoError(b, err)
	_, err = raw.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("bench/direct"), SecretString: awsv2.String(string(body))})
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		if _, err := raw.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awsv2.String("bench/direct")}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPluginRead is a latest-version Read through the plugin process
// (gRPC hop, DescribeSecret and GetSecretValue in parallel) on the same moto.
func BenchmarkPluginRead(b *testing.B) {
	moto := mototest.Start(b)
	be := plugintest.Start(b, map[string]string{"region": mototest.Region, "endpoint": moto.Endpoint})
	ctx := context.Background()
	_, err := be.Write(ctx, sdk.WriteRequest{Project: "bench", Name: "db", Data: benchData, Mode: sdk.WriteCreate})
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		if _, err := be.Read(ctx, sdk.Ref{Project: "bench", Name: "db"}); err != nil {
			b.Fatal(err)
		}
	}
}
