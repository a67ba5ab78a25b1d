package main

import (
	"github.com/secretgate/secretgate/plugins/postgres"
	"github.com/secretgate/secretgate/sdk"
)

// The PostgreSQL backend, served by `secretgate plugin serve postgres`.
func init() { registerBuiltin("postgres", func() sdk.Backend { return postgres.New() }) }
