package main

import (
	"github.com/secretgate/secretgate/plugins/aws"
	"github.com/secretgate/secretgate/sdk"
)

func init() { registerBuiltin("aws", func() sdk.Backend { return aws.New() }) }
