package gcp_test

import (
	"context"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

var benchData = map[string]string{"username": "admin", "password": "correct horse battery staple", "host": "db.internal:5432"}

// BenchmarkDirectAccess is the baseline: one AccessSecretVersion of
// `latest` with the Google client straight to the local server.
func BenchmarkDirectAccess(b *testing.B) {
	srv := gcptest.Start(b)
	c := rawClientTB(b, srv.Addr)
	ctx := context.Background()
	s, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + gcpProject, SecretId: "direct", Secret: &secretmanagerpb.Secret{}})
	require.NoError(b, err)
	body, err := sdk.EncodeData(benchData)
	require.NoError(b, err)
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: body}})
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPluginRead is a latest-version Read through the plugin process:
// the gRPC hop to the plugin, then one AccessSecretVersion against the same
// local server (the metadata comes from the plugin's cache).
func BenchmarkPluginRead(b *testing.B) {
	srv := gcptest.Start(b)
	be := plugintest.Start(b, settings(srv.Addr))
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
