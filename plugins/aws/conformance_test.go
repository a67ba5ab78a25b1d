package aws_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// TestConformance runs the whole suite through a real plugin process
// against moto behind the fault proxy: writes visible to DescribeSecret,
// ListSecretVersionIds and ListSecrets only after a lag, deleted names held,
// AWS's write rate, version and tag limits (faultproxy.CI).
func TestConformance(t *testing.T) {
	aws := faultproxy.StartMoto(t, faultproxy.CI)
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, settings(aws.Endpoint, nil))
	})
}

// TestConformanceCustomPrefix runs the suite again with a prefix that is not
// the default and extra tags, through the plugin.
func TestConformanceCustomPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("the default-prefix run covers the suite in -short mode")
	}
	aws := faultproxy.StartMoto(t, faultproxy.CI)
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, settings(aws.Endpoint, map[string]string{"prefix": "teams/platform/", "tags": "team=platform, cost-center=42"}))
	})
}

// TestCapabilitiesOverPlugin: the declared delete propagation (delete_wait)
// crosses the plugin protocol. Configure makes no AWS call, so no server
// is needed.
func TestCapabilitiesOverPlugin(t *testing.T) {
	b := plugintest.Start(t, settings("http://127.0.0.1:1", map[string]string{"delete_wait": "45s"}))
	caps, err := b.Capabilities(t.Context())
	require.NoError(t, err)
	require.Equal(t, 45*time.Second, caps.DeletePropagation)
}
