// Command secretgate is the one binary: the gateway server, the CLI client,
// and the host of the built-in backend plugins (served as child processes of
// this same binary). It holds no business logic: that lives in gateway/,
// policy/, sdk/ and plugins/.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
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
	v := readVersion()
	root := &cobra.Command{
		Use:           "secretgate",
		Short:         "One API, one secret model and one permission model in front of many secret backends",
		Version:       v.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --version prints what `secretgate version` prints. The text is a
	// template: braces in a version string would be read as actions.
	root.SetVersionTemplate(strings.NewReplacer("{{", "{{`{{`}}").Replace(v.text()))
	for _, f := range commands {
		root.AddCommand(f())
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitUsage, err: err} })
	// cobra adds these two when it executes; added now, the completion
	// group gets the same handling of mistakes as the others.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	finishTree(root)
	return root
}

// finishTree gives every command the same handling of mistakes: a command
// group rejects an unknown subcommand with a suggestion (cobra does so only
// at the top level; a group without Run of its own would print its help and
// exit 0), and wrong arguments, required or conflicting flags are usage
// errors (exit 2), checked before the command starts.
func finishTree(c *cobra.Command) {
	if c.HasSubCommands() {
		c.Args = unknownSubcommand
		if !c.Runnable() {
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	} else if c.Args != nil {
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return asUsage(fmt.Errorf("%s: %w (see '%s --help')", strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), err, cmd.CommandPath()))
			}
			return nil
		}
	}
	if c.Runnable() && c.PreRunE == nil && c.PreRun == nil {
		// cobra checks these after the PreRun hooks, with errors of no
		// particular kind; the same checks made here say "usage".
		c.PreRunE = func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return asUsage(err)
			}
			return asUsage(cmd.ValidateFlagGroups())
		}
	}
	for _, sub := range c.Commands() {
		finishTree(sub)
	}
}

// unknownSubcommand is the Args of a command group: no positional argument,
// and a word that is not a subcommand names the closest ones.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	// The closest names only: "lst" is one edit from list and two from
	// get, and suggesting get too would blur the obvious answer.
	var s []string
	for d := 1; d <= 2 && len(s) == 0; d++ {
		cmd.SuggestionsMinimumDistance = d
		s = cmd.SuggestionsFor(args[0])
	}
	if len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError("%s (see '%s --help')", msg, cmd.CommandPath())
}

// asUsage makes err, if any, a usage error (exit 2), keeping a code it has.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprint(os.Stderr, errorText(root, err))
		os.Exit(exitCode(err))
	}
}

// errorText is how every command reports its failure on stderr: one line
// "secretgate: MESSAGE", where an error answered by the gateway reads
// "CODE (STATUS): MESSAGE [request ID]" (the id is the audit log's), and,
// for an unknown token or an unreachable gateway, a second line "hint: ..."
// saying where the token or the address came from.
func errorText(root *cobra.Command, err error) string {
	text := "secretgate: " + err.Error() + "\n"
	from := root.Annotations
	switch {
	case from[annotTokenFrom] != "" && errors.Is(err, client.ErrUnauthenticated):
		text += fmt.Sprintf("hint: the gateway does not accept the token of %s (unknown, expired or revoked; a dev server prints its token when it starts)\n", from[annotTokenFrom])
	case from[annotAddrFrom] != "" && errors.Is(err, client.ErrUnreachable):
		text += fmt.Sprintf("hint: is a gateway listening at %s (from %s)? `secretgate server --dev` starts a local one\n", from[annotAddr], from[annotAddrFrom])
	}
	return text
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
