// Command vault is a real HashiCorp Vault server built from Vault's own Go
// module, for secretgate's integration tests. It lives in its own module so
// that the project's go.mod stays free of Vault's server code.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
