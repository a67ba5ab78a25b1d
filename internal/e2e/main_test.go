// Package e2e tests the real secretgate binary end to end: the gateway on a
// loopback port with the file backend as a plugin subprocess.
package e2e

import (
	"testing"

	"github.com/secretgate/secretgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
