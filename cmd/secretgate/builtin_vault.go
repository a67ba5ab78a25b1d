package main

import (
	"github.com/secretgate/secretgate/plugins/vault"
	"github.com/secretgate/secretgate/sdk"
)

func init() { registerBuiltin("vault", func() sdk.Backend { return vault.New() }) }
