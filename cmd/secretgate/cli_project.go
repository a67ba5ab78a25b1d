package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func init() { registerCommand(newProjectCmd) }

func newProjectCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Projects the token can reach",
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the projects the token has a binding on, with the actions granted on all their secrets",
		Example: `  secretgate project list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ps, err := c.ListProjects(cmd.Context())
			if err != nil {
				return apiError(err)
			}
			w := cmd.OutOrStdout()
			if out == outJSON {
				return printJSON(w, map[string]any{"projects": ps})
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "PROJECT\tACTIONS")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\n", p.Name, strings.Join(p.Actions, ", "))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(list, &out, false)
	addConnFlags(cmd)
	cmd.AddCommand(list)
	return cmd
}
