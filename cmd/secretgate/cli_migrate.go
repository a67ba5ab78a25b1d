package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

func init() { registerCommand(newMigrateCmd) }

// newMigrateCmd drives a migration that runs inside the gateway: the CLI
// only starts it and watches the report, so no value ever reaches it.
func newMigrateCmd() *cobra.Command {
	var (
		req          client.MigrationRequest
		allVersions  bool
		out          string
		pollInterval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "migrate --from BACKEND --to BACKEND --project P [--project P2]...",
		Short: "Copy every secret of projects from one backend to another, verified, without revealing a value",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			if req.Source == "" || req.Target == "" {
				return usageError("--from and --to are required")
			}
			if len(req.Projects) == 0 {
				return usageError("--project is required (repeat it for several projects)")
			}
			if allVersions {
				req.Versions = "all"
			}
			if req.DeleteSource && !req.Switch {
				return usageError("--delete-source needs --switch: the source is only emptied after a verified switch")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			id, err := c.StartMigration(ctx, req)
			if err != nil {
				return apiError(err)
			}
			m, err := watchMigration(ctx, c, id, cmd.ErrOrStderr(), pollInterval)
			if err != nil {
				return apiError(err)
			}
			if out == "json" {
				if err := printJSON(cmd.OutOrStdout(), m); err != nil {
					return err
				}
			} else {
				printMigration(cmd.OutOrStdout(), m)
			}
			if m.State != "succeeded" || m.Failed > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("migration %s %s: %d of %d secrets failed", m.ID, m.State, m.Failed, m.Total)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Source, "from", "", "source backend (as named in the gateway's config)")
	f.StringVar(&req.Target, "to", "", "target backend")
	f.StringArrayVarP(&req.Projects, "project", "p", nil, "project to migrate (repeatable)")
	f.BoolVar(&allVersions, "all-versions", false, "copy every stored version in order, not only the latest")
	f.StringVar(&req.OnConflict, "on-conflict", "fail", "when the target holds a different secret of the same name: fail, skip or overwrite")
	f.BoolVar(&req.DryRun, "dry-run", false, "report what would be copied, write nothing")
	f.BoolVar(&req.Switch, "switch", false, "after a clean verify, serve the projects from the target (survives restarts)")
	f.BoolVar(&req.DeleteSource, "delete-source", false, "with --switch: then delete from the source every secret whose target copy matches")
	f.IntVar(&req.Workers, "workers", 0, "secrets copied at once (default 8, at most 64)")
	f.DurationVar(&pollInterval, "poll", 500*time.Millisecond, "how often to read the progress")
	addOutputFlag(cmd, &out, false)
	addConnFlags(cmd)
	cmd.AddCommand(newMigrateStatusCmd(), newMigrateListCmd())
	return cmd
}

// newMigrateStatusCmd shows one migration, and with --wait follows it to
// its end, as `migrate` does: the way back to a migration started by
// someone else, or resumed by a restarted gateway.
func newMigrateStatusCmd() *cobra.Command {
	var (
		out  string
		wait bool
		poll time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a migration's report; --wait follows it to its end",
		Example: `  secretgate migrate status 6f0c2a1e-...
  secretgate migrate status 6f0c2a1e-... --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			var m client.Migration
			if wait {
				m, err = watchMigration(cmd.Context(), c, args[0], cmd.ErrOrStderr(), poll)
			} else {
				m, err = c.GetMigration(cmd.Context(), args[0])
			}
			if err != nil {
				return apiError(err)
			}
			if out == outJSON {
				if err := printJSON(cmd.OutOrStdout(), m); err != nil {
					return err
				}
			} else {
				printMigration(cmd.OutOrStdout(), m)
			}
			if m.Done() && (m.State != "succeeded" || m.Failed > 0) {
				return &exitError{code: exitFailure, err: fmt.Errorf("migration %s %s: %d of %d secrets failed", m.ID, m.State, m.Failed, m.Total)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the migration until it ends")
	cmd.Flags().DurationVar(&poll, "poll", 500*time.Millisecond, "how often to read the progress with --wait")
	addOutputFlag(cmd, &out, false)
	return cmd
}

func newMigrateListCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the migrations whose projects the token may all migrate (the last 100 finished, and running ones)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ms, err := c.ListMigrations(cmd.Context())
			if err != nil {
				return apiError(err)
			}
			w := cmd.OutOrStdout()
			if out == outJSON {
				return printJSON(w, map[string]any{"migrations": ms})
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "ID\tSTATE\tFROM\tTO\tPROJECTS\tDONE\tFAILED\tSTARTED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\n", m.ID, m.State, m.Source, m.Target,
					strings.Join(m.Projects, ","), m.Copied+m.Skipped+m.Failed, m.Total, m.Failed, m.StartedAt)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &out, false)
	return cmd
}

// watchMigration polls until the migration ends: a redrawn progress bar on
// a terminal, otherwise a plain line per 100 secrets done.
func watchMigration(ctx context.Context, c *client.Client, id string, w io.Writer, every time.Duration) (client.Migration, error) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	lastHundred := 0
	var lostSince time.Time
	for {
		m, err := c.GetMigration(ctx, id)
		if err != nil {
			// A gateway restarting resumes the migration under the same id:
			// keep watching through the gap, for a while.
			if !errors.Is(err, sdk.ErrUnavailable) {
				return m, err
			}
			if lostSince.IsZero() {
				lostSince = time.Now()
				fmt.Fprintf(w, "\nmigration %s: the gateway does not answer; waiting up to %s for it (an interrupted migration resumes when it starts)\n", id, watchOutage)
			} else if time.Since(lostSince) > watchOutage {
				return m, err
			}
			if err := sdk.Sleep(ctx, every); err != nil {
				return m, err
			}
			continue
		}
		lostSince = time.Time{}
		done := m.Copied + m.Skipped + m.Failed
		switch {
		case tty:
			fmt.Fprintf(w, "\r%s", progressBar(done, m.Total, 30))
			if m.Done() {
				fmt.Fprintln(w)
			}
		case done/100 > lastHundred:
			lastHundred = done / 100
			fmt.Fprintf(w, "migration %s: %d/%d done (%d copied, %d skipped, %d failed)\n", id, done, m.Total, m.Copied, m.Skipped, m.Failed)
		}
		if m.Done() {
			return m, nil
		}
		if err := sdk.Sleep(ctx, every); err != nil {
			return m, err
		}
	}
}

// watchOutage is how long watchMigration waits for a gateway that stopped
// answering before it gives up.
const watchOutage = 2 * time.Minute

func progressBar(done, total, width int) string {
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	if filled > width {
		filled = width
	}
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
}

func printMigration(w io.Writer, m client.Migration) {
	tw := newTable(w)
	fmt.Fprintf(tw, "id\t%s\n", m.ID)
	fmt.Fprintf(tw, "state\t%s\n", m.State)
	fmt.Fprintf(tw, "from -> to\t%s -> %s\n", m.Source, m.Target)
	fmt.Fprintf(tw, "projects\t%s\n", strings.Join(m.Projects, ", "))
	fmt.Fprintf(tw, "versions\t%s\n", m.Versions)
	fmt.Fprintf(tw, "dry run\t%t\n", m.DryRun)
	fmt.Fprintf(tw, "total\t%d\n", m.Total)
	fmt.Fprintf(tw, "copied\t%d\n", m.Copied)
	fmt.Fprintf(tw, "skipped\t%d\n", m.Skipped)
	fmt.Fprintf(tw, "verified\t%d\n", m.Verified)
	fmt.Fprintf(tw, "failed\t%d\n", m.Failed)
	fmt.Fprintf(tw, "switched\t%t\n", m.Switched)
	if m.DeleteSource {
		fmt.Fprintf(tw, "deleted from source\t%d\n", m.Deleted)
		fmt.Fprintf(tw, "kept in source\t%d\n", m.Kept)
	}
	if m.Resumed > 0 {
		fmt.Fprintf(tw, "resumed\t%d time(s) after a gateway restart\n", m.Resumed)
	}
	tw.Flush()
	if len(m.Errors) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		names := make([]string, 0, len(m.Errors))
		for n := range m.Errors {
			names = append(names, n)
		}
		sort.Strings(names)
		tw = newTable(w)
		for _, n := range names {
			fmt.Fprintf(tw, "  %s\t%s\n", cell(n), cell(m.Errors[n]))
		}
		tw.Flush()
	}
}
