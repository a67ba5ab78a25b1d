package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk/plugin"
)

func init() { registerCommand(newPluginCmd) }

// newPluginCmd holds the plugin tools: `sha256` for people writing a
// configuration, and the hidden `serve` that the gateway runs to start a
// built-in backend as a child process of this same binary.
func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Backend plugin tools",
	}
	cmd.AddCommand(newPluginServeCmd(), newPluginSHA256Cmd())
	return cmd
}

func newPluginServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "serve <type>",
		Short:  "Serve a built-in backend as a plugin (started by the gateway, not by hand)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			newBackend, ok := builtinPlugins[args[0]]
			if !ok {
				names := strings.Join(builtinNames(), ", ")
				if names == "" {
					names = "none in this build"
				}
				return fmt.Errorf("unknown built-in plugin %q (built-in plugins: %s)", args[0], names)
			}
			plugin.Serve(newBackend())
			return nil
		},
	}
}

func newPluginSHA256Cmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sha256 <path>",
		Short: "Print the SHA-256 of a plugin executable, as the configuration's sha256: wants it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sum, err := plugin.FileSHA256(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), sum)
			return err
		},
	}
}
