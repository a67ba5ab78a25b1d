package aws_test

import (
	"os"
	"testing"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/plugins/aws"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

func TestMain(m *testing.M) {
	// Dummy credentials for the SDK's default chain; the plugin child
	// inherits them. moto accepts any.
	mototest.SetDummyCredentials()
	plugintest.ServeIfChild(func() sdk.Backend { return aws.New() })
	os.Exit(m.Run())
}

// settings points the backend at an endpoint (moto, or the fault proxy in
// front of it).
func settings(endpoint string, extra map[string]string) map[string]string {
	m := map[string]string{"region": mototest.Region, "endpoint": endpoint}
	for k, v := range extra {
		m[k] = v
	}
	return m
}
