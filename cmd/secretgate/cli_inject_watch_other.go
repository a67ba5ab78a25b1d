//go:build !unix

package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"
)

// injectWatchFlags: --watch follows signals and process ids, which exist
// only on Unix; elsewhere the flag is refused.
type injectWatchFlags struct{ watch bool }

type injectWatchOptions struct{}

func (w *injectWatchFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.watch, "watch", false, "render again on changes (Unix only)")
}

func (w *injectWatchFlags) options(*cobra.Command) (*injectWatchOptions, error) {
	if w.watch {
		return nil, usageError("--watch needs a Unix system")
	}
	return nil, nil
}

func injectWatching(context.Context, *clientOnce, *injectTemplate, string, os.FileMode, injectWatchOptions) error {
	return usageError("--watch needs a Unix system")
}
