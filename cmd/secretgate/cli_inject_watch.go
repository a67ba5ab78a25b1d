//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// injectWatchFlags are inject's --watch and what it does after a render.
type injectWatchFlags struct {
	watch        bool
	exec, signal string
	pid          int
}

func (w *injectWatchFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&w.watch, "watch", false, "render again when a referenced secret gets a new version, until SIGINT or SIGTERM")
	fs.StringVar(&w.exec, "exec", "", "with --watch: after each new render, run CMD through sh -c")
	fs.StringVar(&w.signal, "signal", "", "with --watch and --pid: after each new render, send this signal (such as HUP)")
	fs.IntVar(&w.pid, "pid", 0, "with --watch and --signal: the process to signal")
}

// injectWatchOptions are the checked flags of inject --watch.
type injectWatchOptions struct {
	exec   string
	signal syscall.Signal
	pid    int
}

// execWaitDelay bounds how long an --exec command may run on after
// secretgate was asked to stop and sent it SIGTERM.
const execWaitDelay = 10 * time.Second

// options checks the flags: nil without --watch, an error naming the flag
// for a flag that does not apply.
func (w *injectWatchFlags) options(cmd *cobra.Command) (*injectWatchOptions, error) {
	fs := cmd.Flags()
	if !w.watch {
		for _, n := range []string{"exec", "signal", "pid"} {
			if fs.Changed(n) {
				return nil, usageError("--%s applies to --watch, which was not given", n)
			}
		}
		return nil, nil
	}
	hasSignal, hasPID := fs.Changed("signal"), fs.Changed("pid")
	switch {
	case fs.Changed("exec") && (hasSignal || hasPID):
		return nil, usageError("--exec and --signal/--pid exclude each other: run a command or signal a process")
	case fs.Changed("exec") && strings.TrimSpace(w.exec) == "":
		return nil, usageError("--exec: want a command")
	case hasSignal && !hasPID:
		return nil, usageError("--signal needs --pid, the process to signal")
	case hasPID && !hasSignal:
		return nil, usageError("--pid needs --signal, the signal to send")
	}
	o := &injectWatchOptions{exec: w.exec}
	if hasSignal {
		if w.pid <= 0 {
			return nil, usageError("--pid %d: want a process id", w.pid)
		}
		sig, err := parseSignal(w.signal)
		if err != nil {
			return nil, usageError("--signal %q: %w", w.signal, err)
		}
		o.signal, o.pid = sig, w.pid
	}
	return o, nil
}

// injectWatching renders t into out, then again after every change of the
// secrets it references, until SIGINT or SIGTERM (then nil: exit 0).
func injectWatching(ctx context.Context, c *clientOnce, t *injectTemplate, out string, perm os.FileMode, o injectWatchOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := io.Writer(os.Stderr)
	feed := newChangeFeed(ctx)
	// Follow before the first render, so that a change made between the
	// two is not lost.
	if targets := referenceTargets(t.refs); len(targets) > 0 {
		cl, err := c.get()
		if err != nil {
			return err
		}
		if err := feed.watch(cl, feed.missing(targets)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A reference that cannot be resolved is the better message.
			if _, rerr := t.render(ctx, c); rerr != nil {
				return rerr
			}
			return err
		}
	} else {
		fmt.Fprintf(log, "secretgate: inject: --watch: no placeholder can change (there is none, or each is pinned with ?version=N): %s is rendered once\n", out)
	}
	rendered, err := t.render(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := writeAtomic(out, []byte(rendered), perm); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-feed.ended:
			// Nothing would reach out any more: say so with a failure, for
			// whatever supervises this process to start it again.
			return err
		case <-feed.wake:
		}
		why := strings.Join(feed.take(), ", ")
		next, err := t.render(ctx, c)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			fmt.Fprintf(log, "secretgate: inject: %s changed, but %s stays as it was: %v\n", why, out, err)
			continue
		}
		if next == rendered {
			continue
		}
		if err := writeAtomic(out, []byte(next), perm); err != nil {
			fmt.Fprintf(log, "secretgate: inject: %s changed, but %s stays as it was: %v\n", why, out, err)
			continue
		}
		rendered = next
		fmt.Fprintf(log, "secretgate: inject: %s changed: rendered %s again\n", why, out)
		o.notify(ctx, log)
	}
}

// notify runs --exec or sends --signal to --pid. A failure is reported and
// the watch goes on: the next change tries again.
func (o injectWatchOptions) notify(ctx context.Context, log io.Writer) {
	switch {
	case o.exec != "":
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", o.exec)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		// Asked to stop, secretgate lets the command stop cleanly first.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = execWaitDelay
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.As(err, &ee):
			fmt.Fprintf(log, "secretgate: inject: --exec failed (%v); still watching\n", ee.ProcessState)
		default:
			fmt.Fprintf(log, "secretgate: inject: --exec: %v; still watching\n", err)
		}
	case o.pid > 0:
		if err := syscall.Kill(o.pid, o.signal); err != nil {
			fmt.Fprintf(log, "secretgate: inject: cannot send %s to --pid %d: %v; still watching\n", unix.SignalName(o.signal), o.pid, err)
		}
	}
}
