// Command secretgate is the one binary: the gateway server, the CLI client,
// and the host of the built-in backend plugins (served as child processes of
// this same binary). It holds no business logic: that lives in gateway/,
// policy/, sdk/ and plugins/.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk"
)

// commands are added by the files of this package in init, so that each
// command lives in its own file.
var commands []func() *cobra.Command

func registerCommand(f func() *cobra.Command) { commands = append(commands, f) }

// builtinPlugins are the backends compiled into this binary, served by
// `secretgate plugin serve <type>`. Each plugin registers itself in its own
// builtin_<type>.go file.
var builtinPlugins = map[string]func() sdk.Backend{}

func registerBuiltin(name string, newBackend func() sdk.Backend) {
	builtinPlugins[name] = newBackend
}

// builtinNames lists the built-in plugin types, sorted.
func builtinNames() []string {
	names := make([]string, 0, len(builtinPlugins))
	for n := range builtinPlugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "secretgate",
		Short:         "One API, one secret model and one permission model in front of many secret backends",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range commands {
		root.AddCommand(f())
	}
	return root
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "secretgate:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
