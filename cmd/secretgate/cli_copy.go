package main

import (
	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk/client"
)

// newSecretCopyCmd copies one secret inside the gateway: the value goes
// from one backend to the other through the server's memory, never through
// this process, so it can move secrets its caller may not read.
func newSecretCopyCmd(o *secretOpts) *cobra.Command {
	var (
		from string
		opts client.CopyOptions
	)
	cmd := &cobra.Command{
		Use:   "copy NAME --to-project P [--from-project P] [--as NEW]",
		Short: "Copy a secret to another project or name, across backends, without revealing it",
		Long: `Copy one secret (the data and labels of its latest version, or of --version N)
to another project and/or name. The copy happens inside the server: the value
never reaches this command, which prints the new secret's metadata only.

Needs secrets.read on the source secret or project.migrate on its project, and
secrets.create on the target (plus secrets.update with --overwrite) or
project.migrate there. An existing target is an error (exit 5) unless
--overwrite, which writes a new version of it.`,
		Example: `  secretgate secret copy stripe-key --from-project payments --to-project billing
  secretgate secret copy stripe-key -p payments --as stripe-key-backup
  secretgate secret copy db --from-project staging --to-project prod --version 3 --overwrite`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Version < 0 {
				return usageError("--version: must be a positive integer")
			}
			if from == "" {
				from = o.project
			}
			if (opts.ToProject == "" || opts.ToProject == from) && (opts.As == "" || opts.As == args[0]) {
				return usageError("give --to-project (another project) or --as (another name): a secret cannot be copied onto itself")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			m, err := c.CopySecret(cmd.Context(), from, args[0], opts)
			if err != nil {
				return apiError(err)
			}
			return printMeta(cmd.OutOrStdout(), o.output, m)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from-project", "", "source project (default: --project)")
	f.StringVar(&opts.ToProject, "to-project", "", "target project (default: the source project)")
	f.StringVar(&opts.As, "as", "", "name of the copy (default: the source name)")
	f.Int64Var(&opts.Version, "version", 0, "copy this version of the source (default: the latest)")
	f.BoolVar(&opts.Overwrite, "overwrite", false, "replace an existing target secret with a new version")
	return cmd
}
