package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk/client"
)

// watchLine is one event as `secret watch -o json` prints it, one object a
// line: the API's event plus its kind and the time it was received.
type watchLine struct {
	Time    string `json:"time"`
	Event   string `json:"event"`
	Project string `json:"project"`
	Name    string `json:"name,omitempty"`
	Version int64  `json:"version,omitempty"`
	Index   int64  `json:"index"`
}

func newSecretWatchCmd() *cobra.Command {
	var lastID int64
	cmd := &cobra.Command{
		Use:   "watch [NAME-GLOB]",
		Short: "Print changes to secrets as they happen (names and versions, never values)",
		Long: `Follow the changes to the secrets of a project (needs secrets.list) and
print one line per event until interrupted: the time it was received, the
event (secret.created, secret.updated, secret.deleted), project/name and the
new version. NAME-GLOB (path.Match syntax, quote it from the shell) narrows
the secrets; only those the token's bindings cover are ever shown.

A dropped connection is resumed where it stopped. "resync" means the gateway
no longer had the events missed meanwhile (it restarted, say): re-read the
secrets you care about. With -o json each event is one JSON object a line.
--last-event-id resumes after the index of an event printed earlier.

Ctrl-C (SIGINT) or SIGTERM ends the watch with exit code 0.`,
		Example: `  secretgate secret watch -p payments
  secretgate secret watch -p payments 'stripe-*' -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// -p and -o are the `secret` command's persistent flags.
			project, output := cmd.Flag("project").Value.String(), cmd.Flag("output").Value.String()
			opts := client.WatchOptions{LastEventID: lastID}
			if len(args) == 1 {
				opts.Secrets = args[0]
			}
			if lastID < 0 {
				return usageError("--last-event-id: must not be negative")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w, err := c.Watch(ctx, project, opts)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return apiError(err)
			}
			out := cmd.OutOrStdout()
			for ev := range w.Events() {
				if err := printWatchEvent(out, output, time.Now(), ev); err != nil {
					// Standard output is gone (a closed pipe): nobody to tell.
					stop()
					for range w.Events() {
					}
					return err
				}
			}
			if err := w.Err(); err != nil && !errors.Is(err, context.Canceled) {
				return apiError(err)
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&lastID, "last-event-id", 0, "resume after the event of this index")
	return cmd
}

func printWatchEvent(w io.Writer, output string, at time.Time, ev client.Event) error {
	ts := at.UTC().Format(time.RFC3339)
	if output == outJSON {
		b, err := json.Marshal(watchLine{Time: ts, Event: ev.Kind, Project: ev.Project, Name: ev.Name, Version: ev.Version, Index: ev.Index})
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	var err error
	switch {
	case ev.Kind == client.EventResync:
		_, err = fmt.Fprintf(w, "%s resync %s index %d (events were missed: re-read the secrets)\n", ts, cell(ev.Project), ev.Index)
	case ev.Version > 0:
		_, err = fmt.Fprintf(w, "%s %s %s/%s version %d\n", ts, cell(ev.Kind), cell(ev.Project), cell(ev.Name), ev.Version)
	default:
		_, err = fmt.Fprintf(w, "%s %s %s/%s\n", ts, cell(ev.Kind), cell(ev.Project), cell(ev.Name))
	}
	return err
}
