package main

import (
	"github.com/secretgate/secretgate/plugins/gcp"
	"github.com/secretgate/secretgate/sdk"
)

func init() { registerBuiltin("gcp", func() sdk.Backend { return gcp.New() }) }
