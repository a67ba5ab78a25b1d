package main

// secret versions and secret rollback: a secret's history, and going back
// in it.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk/api"
	"github.com/secretgate/secretgate/sdk/client"
)

func newSecretVersionsCmd(o *secretOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List the stored versions of a secret, with the keys each one added or removed",
		Long: `List the stored versions of a secret, oldest first: when each was written, its
keys and what changed from the version before it (+key added, -key removed;
"same keys" when only values changed). Names only, never values: it needs
secrets.list. Keys are shown for the newest ` + strconv.Itoa(api.MaxVersionKeys) + ` versions ("?" for older ones).
'secretgate secret rollback NAME --version N' brings a version's data back.`,
		Example: `  secretgate secret versions database-config
  secretgate secret versions database-config -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			vs, err := c.VersionsWithKeys(cmd.Context(), o.project, args[0])
			if err != nil {
				return apiError(err)
			}
			w := cmd.OutOrStdout()
			if o.output == outJSON {
				return printJSON(w, map[string]any{"versions": vs})
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "VERSION\tCREATED\tKEYS\tCHANGES")
			for i, v := range vs {
				keys := "?"
				if v.Keys != nil {
					keys = strings.Join(v.Keys, ",")
				}
				var prev *client.VersionInfo
				if i > 0 {
					prev = &vs[i-1]
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v.Version, formatTime(v.CreatedAt), keys, keyChanges(prev, v))
			}
			return tw.Flush()
		},
	}
}

// keyChanges says which keys cur added (+k) and removed (-k) from prev,
// the version listed before it (nil for the first listed); "?" when the
// keys of either are unknown (older than the newest api.MaxVersionKeys,
// pruned, or no longer served by the backend).
func keyChanges(prev *client.VersionInfo, cur client.VersionInfo) string {
	switch {
	case cur.Keys == nil:
		return "?"
	case prev == nil && cur.Version == 1:
		return "created"
	case prev == nil || prev.Keys == nil:
		return "?"
	}
	before := map[string]bool{}
	for _, k := range prev.Keys {
		before[k] = true
	}
	var out []string
	for _, k := range cur.Keys {
		if !before[k] {
			out = append(out, "+"+k)
		}
		delete(before, k)
	}
	for _, k := range prev.Keys {
		if before[k] {
			out = append(out, "-"+k)
		}
	}
	if len(out) == 0 {
		return "same keys"
	}
	return strings.Join(out, " ")
}

func newSecretRollbackCmd(o *secretOpts) *cobra.Command {
	var version, ifMatch int64
	cmd := &cobra.Command{
		Use:   "rollback NAME --version N [--if-match V]",
		Short: "Write an older version's data as a new version (values stay in the gateway)",
		Long: `Write the data of version N as a new version of the secret, for the way back
after a bad rotation; the labels stay as they are. The copy is made inside the
gateway: it needs secrets.update, not secrets.read, and no value reaches this
command, which prints the new version's metadata. --if-match V writes only if
the latest version is V (else exit 6). 'secret versions NAME' lists the
versions.`,
		Example: `  secretgate secret rollback database-config --version 2
  secretgate secret rollback database-config --version 2 --if-match 4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 1 {
				return usageError("--version N is required: the number of the version to go back to (see 'secretgate secret versions %s')", args[0])
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			m, err := c.Rollback(cmd.Context(), o.project, args[0], version, ifMatch)
			if err != nil {
				return apiError(err)
			}
			return printMeta(cmd.OutOrStdout(), o.output, m)
		},
	}
	cmd.Flags().Int64Var(&version, "version", 0, "the version whose data becomes the new version")
	addIfMatch(cmd, &ifMatch)
	return cmd
}
