package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk/client"
)

func init() { registerCommand(newSecretCmd) }

// secretOpts are the flags every `secret` subcommand shares.
type secretOpts struct {
	project string
	output  string
}

func newSecretCmd() *cobra.Command {
	o := &secretOpts{}
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "List, read and write secrets through a secretgate server",
		Long: `Client commands for the secretgate HTTP API.

The server is found through --addr, else SECRETGATE_ADDR (default
` + defaultAddr + `), and the bearer token through --token-file, else
SECRETGATE_TOKEN or SECRETGATE_TOKEN_FILE (one is required; --token works too,
but other users can read a command line in process listings).
SECRETGATE_CACERT names a PEM file of CA certificates to trust for https. The
project is --project, else SECRETGATE_PROJECT, else "default".

Values are never printed unless asked for: get shows metadata, and values only
with --reveal or --key.

Exit codes: 0 ok, 1 other failure, 2 usage or invalid argument, 3 unauthenticated
or permission denied, 4 not found, 5 already exists, 6 version mismatch,
7 backend unavailable or server unreachable, 8 the project is being migrated
(writes wait for the migration to end).`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error { return checkOutput(o.output) },
	}
	// The default shown by --help is SECRETGATE_PROJECT's value when it is
	// set, so the usage text only says where it comes from.
	cmd.PersistentFlags().StringVarP(&o.project, "project", "p", projectFromEnv(), "project; $"+envProject+" when not given")
	addOutputFlag(cmd, &o.output, true)
	addConnFlags(cmd)
	cmd.AddCommand(
		newSecretListCmd(o), newSecretGetCmd(o), newSecretCreateCmd(o), newSecretUpdateCmd(o),
		newSecretPatchCmd(o), newSecretDeleteCmd(o), newSecretVersionsCmd(o), newSecretRollbackCmd(o),
		newSecretCopyCmd(o), newSecretWatchCmd(),
	)
	return cmd
}

func newSecretListCmd(o *secretOpts) *cobra.Command {
	var opts client.ListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the secrets of a project (metadata only, never values)",
		Long: `List the secrets of a project that the token's bindings cover: names,
keys, versions and labels, never values. Every page is fetched unless
--page-size or --page-token is given, which fetch exactly one page.`,
		Example: `  secretgate secret list -p payments
  secretgate secret list --prefix stripe- -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			var page client.Page
			if cmd.Flags().Changed("page-size") || cmd.Flags().Changed("page-token") {
				page, err = c.List(cmd.Context(), o.project, opts)
			} else {
				page.Secrets, err = c.Collect(cmd.Context(), o.project, opts)
			}
			if err != nil {
				return apiError(err)
			}
			w := cmd.OutOrStdout()
			if o.output == outJSON {
				return printJSON(w, page)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "NAME\tVERSION\tKEYS\tUPDATED\tLABELS")
			for _, m := range page.Secrets {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.Name, m.Version, strings.Join(m.Keys, ","), formatTime(m.UpdatedAt), formatLabels(m.Labels))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.NextPageToken != "" {
				fmt.Fprintf(w, "more: --page-token %s\n", page.NextPageToken)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Prefix, "prefix", "", "only names starting with this prefix")
	cmd.Flags().IntVar(&opts.PageSize, "page-size", 0, "fetch one page of this size")
	cmd.Flags().StringVar(&opts.PageToken, "page-token", "", "fetch the page this token (from a previous list) starts")
	return cmd
}

func newSecretGetCmd(o *secretOpts) *cobra.Command {
	var (
		reveal  bool
		key     string
		version int64
	)
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a secret's metadata; its values with --reveal or --key",
		Long: `Show a secret's metadata (keys, version, labels, times). Values are shown
only with --reveal (all of them) or --key K (the bare value of K followed by a
newline, nothing else: for scripts). Both need the secrets.read permission, and
so does --version N, which reads an older version.`,
		Example: `  secretgate secret get database-config
  secretgate secret get database-config --reveal
  PGPASSWORD=$(secretgate secret get database-config --key password)
  secretgate secret get database-config --version 2 --reveal -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 0 {
				return usageError("--version: must be a positive integer")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			name, w := args[0], cmd.OutOrStdout()
			if !reveal && key == "" && version == 0 {
				m, err := c.Describe(cmd.Context(), o.project, name)
				if err != nil {
					return apiError(err)
				}
				return printMeta(w, o.output, m)
			}
			s, err := c.GetVersion(cmd.Context(), o.project, name, version)
			if err != nil {
				return apiError(err)
			}
			if key != "" {
				v, ok := s.Data[key]
				if !ok {
					return &exitError{code: exitNotFound, err: fmt.Errorf("secret %q (version %d) has no key %q; its keys are %s", name, s.Version, key, strings.Join(s.Keys, ", "))}
				}
				_, err := io.WriteString(w, v+"\n")
				return err
			}
			if !reveal {
				return printMeta(w, o.output, s.Metadata)
			}
			if o.output == outJSON {
				return printJSON(w, s)
			}
			if err := printMeta(w, o.output, s.Metadata); err != nil {
				return err
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "\nKEY\tVALUE")
			for _, k := range sortedKeys(s.Data) {
				fmt.Fprintf(tw, "%s\t%s\n", k, cell(s.Data[k]))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show the values too (needs secrets.read)")
	cmd.Flags().StringVar(&key, "key", "", "print only the bare value of this key, for scripts")
	cmd.Flags().Int64Var(&version, "version", 0, "read this older version (needs secrets.read)")
	cmd.MarkFlagsMutuallyExclusive("reveal", "key")
	return cmd
}

func newSecretCreateCmd(o *secretOpts) *cobra.Command {
	var (
		labels  []string
		envFile string
	)
	cmd := &cobra.Command{
		Use:   "create NAME [KEY=VALUE|KEY=@FILE|KEY=- ...] [--from-env-file FILE]",
		Short: "Create a secret (fails if it exists); prints metadata, never values",
		Long: `Create a secret at version 1 from key/value pairs, like ` + "`vault kv put`" + `:
  key=value   the value as typed (it stays in shell history and ps: prefer the next two)
  key=@file   the bytes of file
  key=-       the bytes of standard input (one key at most)
Files and standard input are stored byte for byte, trailing newline included.

--from-env-file FILE (- for standard input) adds every NAME=VALUE line of a
dotenv file as a key, parsed as 'secretgate run --env-file' parses it:
optional "export ", # comments and blank lines skipped, values bare (trimmed,
cut at " #"), 'single-quoted' or "double-quoted" (\n, \t, \", \\, \$
unescaped), no interpolation. A name given twice, in the file or also as an
argument, is an error.`,
		Example: `  secretgate secret create database-config host=db.internal user=app password=@./pw.txt
  printf %s "$STRIPE_KEY" | secretgate secret create stripe api_key=- --label env=prod
  secretgate secret create app-env --from-env-file .env`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && envFile == "" {
				return usageError("create: give the keys as KEY=VALUE, KEY=@FILE or KEY=- arguments, or --from-env-file FILE")
			}
			data, err := parsePairs(args[1:], cmd.InOrStdin(), "data")
			if err != nil {
				return err
			}
			if envFile != "" {
				if err := addDotenvKeys(data, envFile, cmd.InOrStdin(), args[1:]); err != nil {
					return err
				}
			}
			lbl, err := parseLabels(labels)
			if err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			m, err := c.Create(cmd.Context(), o.project, args[0], data, lbl)
			if err != nil {
				return apiError(err)
			}
			return printMeta(cmd.OutOrStdout(), o.output, m)
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	cmd.Flags().StringVar(&envFile, "from-env-file", "", "add every NAME=VALUE line of this dotenv file as a key (- for standard input)")
	return cmd
}

// addDotenvKeys adds the rows of the dotenv file path (- for stdin) to data,
// which holds the keys of the pairs arguments. A secret holds each key
// once, so a name the file repeats, or that an argument also gives, is an
// error rather than "the later wins" of an environment: one of the two
// values would be lost without a word.
func addDotenvKeys(data map[string]string, path string, stdin io.Reader, pairs []string) error {
	const flag = "--from-env-file"
	var r io.Reader
	if path == "-" {
		for _, p := range pairs {
			if _, v, _ := strings.Cut(p, "="); v == "-" {
				return usageError("%s -: standard input is already the value of a key=- argument", flag)
			}
		}
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return usageError("%s: %w", flag, err)
		}
		defer f.Close()
		r = f
	}
	entries, err := readDotenv(r, path, flag)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return usageError("%s %s: no NAME=VALUE line", flag, path)
	}
	seen := map[string]string{}
	for _, e := range entries {
		if prev, dup := seen[e.name]; dup {
			return usageError("%s %s: %s is given twice (also on line %s)", flag, e.where, e.name, strings.TrimPrefix(prev, path+":"))
		}
		seen[e.name] = e.where
		if _, dup := data[e.name]; dup {
			return usageError("%s %s: %s is also given as an argument", flag, e.where, e.name)
		}
		if !utf8.ValidString(e.value) {
			return usageError("%s %s: %s: value is not valid UTF-8 (secretgate stores text)", flag, e.where, e.name)
		}
		data[e.name] = e.value
	}
	return nil
}

func newSecretUpdateCmd(o *secretOpts) *cobra.Command {
	var (
		labels  []string
		ifMatch int64
	)
	cmd := &cobra.Command{
		Use:   "update NAME KEY=VALUE|KEY=@FILE|KEY=- ...",
		Short: "Replace all key/value pairs of a secret (a new version)",
		Long: `Replace every key/value pair of an existing secret with the given ones,
writing a new version (keys not given are gone; use patch to change some).
Labels are kept unless --label is given, which replaces them all.
--if-match N writes only if the latest version is N (else exit 6).`,
		Example: `  secretgate secret update database-config host=db2.internal user=app password=@./pw.txt --if-match 3`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := parsePairs(args[1:], cmd.InOrStdin(), "data")
			if err != nil {
				return err
			}
			lbl, err := parseLabels(labels)
			if err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			m, err := c.Update(cmd.Context(), o.project, args[0], data, lbl, ifMatch)
			if err != nil {
				return apiError(err)
			}
			return printMeta(cmd.OutOrStdout(), o.output, m)
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label key=value (repeatable); replaces all labels")
	addIfMatch(cmd, &ifMatch)
	return cmd
}

func newSecretPatchCmd(o *secretOpts) *cobra.Command {
	var (
		unset       []string
		labels      []string
		clearLabels bool
		ifMatch     int64
	)
	cmd := &cobra.Command{
		Use:   "patch NAME [KEY=VALUE|KEY=@FILE|KEY=- ...] [--unset KEY ...] [--label K=V ... | --clear-labels]",
		Short: "Set or remove some keys of a secret, or change its labels, keeping the rest (a new version)",
		Long: `Set the given keys and remove the --unset ones, keeping every other key as
it is: rotating one key of a secret needs neither the other values nor the
permission to read them. --label (repeatable) replaces all the labels and
--clear-labels removes them; either works alone too, keeping every value.`,
		Example: `  secretgate secret patch database-config password=@./new-pw.txt
  secretgate secret patch database-config --unset legacy_token --if-match 4
  secretgate secret patch database-config --label env=prod --label team=pay`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := parsePairs(args[1:], cmd.InOrStdin(), "set")
			if err != nil {
				return err
			}
			lbl, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if clearLabels {
				lbl = map[string]string{}
			}
			if len(set) == 0 && len(unset) == 0 && lbl == nil {
				return usageError("patch: give at least one key=value, --unset key, --label k=v or --clear-labels")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			m, err := c.PatchWithLabels(cmd.Context(), o.project, args[0], set, unset, lbl, ifMatch)
			if err != nil {
				return apiError(err)
			}
			return printMeta(cmd.OutOrStdout(), o.output, m)
		},
	}
	cmd.Flags().StringArrayVar(&unset, "unset", nil, "remove this key (repeatable)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label key=value (repeatable); replaces all labels")
	cmd.Flags().BoolVar(&clearLabels, "clear-labels", false, "remove every label")
	cmd.MarkFlagsMutuallyExclusive("label", "clear-labels")
	addIfMatch(cmd, &ifMatch)
	return cmd
}

func newSecretDeleteCmd(o *secretOpts) *cobra.Command {
	var ifMatch int64
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a secret with all its versions",
		Example: `  secretgate secret delete old-api-key --if-match 2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), o.project, args[0], ifMatch); err != nil {
				return apiError(err)
			}
			w := cmd.OutOrStdout()
			if o.output == outJSON {
				return printJSON(w, map[string]any{"project": o.project, "name": args[0], "deleted": true})
			}
			_, err = fmt.Fprintf(w, "deleted secret %q from project %q\n", args[0], o.project)
			return err
		},
	}
	addIfMatch(cmd, &ifMatch)
	return cmd
}

func addIfMatch(cmd *cobra.Command, v *int64) {
	cmd.Flags().Int64Var(v, "if-match", 0, "check-and-set: act only if the latest version is this one")
}

// printMeta prints one secret's metadata: the API's JSON shape, or a
// two-column table.
func printMeta(w io.Writer, format string, m client.Metadata) error {
	if format == outJSON {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		return printJSON(w, m)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "project\t%s\n", m.Project)
	fmt.Fprintf(tw, "name\t%s\n", m.Name)
	fmt.Fprintf(tw, "version\t%d\n", m.Version)
	fmt.Fprintf(tw, "keys\t%s\n", strings.Join(m.Keys, ", "))
	fmt.Fprintf(tw, "labels\t%s\n", formatLabels(m.Labels))
	fmt.Fprintf(tw, "created_at\t%s\n", formatTime(m.CreatedAt))
	fmt.Fprintf(tw, "updated_at\t%s\n", formatTime(m.UpdatedAt))
	return tw.Flush()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(l))
	for _, k := range sortedKeys(l) {
		parts = append(parts, k+"="+cell(l[k]))
	}
	return strings.Join(parts, ",")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
