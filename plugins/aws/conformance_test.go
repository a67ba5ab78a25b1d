package aws_test

import (
	"testing"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// TestConformance runs the whole suite through a real plugin process
// against a moto server.
func TestConformance(t *testing.T) {
	moto := mototest.Start(t)
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, settings(moto, nil))
	})
}

// TestConformanceCustomPrefix runs the suite again with a prefix that is not
// the default and extra tags, through the plugin.
func TestConformanceCustomPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("the default-prefix run covers the suite in -short mode")
	}
	moto := mototest.Start(t)
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, settings(moto, map[string]string{"prefix": "teams/platform/", "tags": "team=platform, cost-center=42"}))
	})
}
