package main

import (
	"github.com/secretgate/secretgate/plugins/file"
	"github.com/secretgate/secretgate/sdk"
)

// The encrypted bbolt file backend, served by `secretgate plugin serve file`.
func init() { registerBuiltin("file", func() sdk.Backend { return file.New() }) }
