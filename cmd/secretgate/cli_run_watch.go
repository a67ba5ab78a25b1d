//go:build unix

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// watchFlags are run's --watch and the flags that shape it.
type watchFlags struct {
	watch                bool
	onChange, stopSignal string
	killTimeout, jitter  time.Duration
}

func (w *watchFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&w.watch, "watch", false, "follow the referenced secrets and act when one gets a new version (see --on-change)")
	fs.StringVar(&w.onChange, "on-change", "restart", "with --watch: restart, signal:NAME (such as signal:HUP) or none")
	fs.StringVar(&w.stopSignal, "stop-signal", "TERM", "with --watch: the signal that stops CMD before a restart")
	fs.DurationVar(&w.killTimeout, "kill-timeout", 10*time.Second, "with --watch: how long CMD may take to exit after --stop-signal before SIGKILL")
	fs.DurationVar(&w.jitter, "restart-jitter", 0, "with --watch: wait a random delay in [0, D) before acting on a change")
}

type changeAction int

const (
	onChangeRestart changeAction = iota
	onChangeSignal
	onChangeNone
)

// watchOptions are the checked flags of --watch.
type watchOptions struct {
	action      changeAction
	signal      syscall.Signal // what signal:NAME sends
	stopSignal  syscall.Signal
	killTimeout time.Duration
	jitter      time.Duration
}

// options checks the flags: nil without --watch, an error naming the flag
// for a flag that does not apply.
func (w *watchFlags) options(cmd *cobra.Command) (*watchOptions, error) {
	fs := cmd.Flags()
	if !w.watch {
		for _, n := range []string{"on-change", "stop-signal", "kill-timeout", "restart-jitter"} {
			if fs.Changed(n) {
				return nil, usageError("--%s applies to --watch, which was not given", n)
			}
		}
		return nil, nil
	}
	o := &watchOptions{killTimeout: w.killTimeout, jitter: w.jitter}
	switch {
	case w.onChange == "restart":
	case w.onChange == "none":
		o.action = onChangeNone
	case strings.HasPrefix(w.onChange, "signal:"):
		sig, err := parseSignal(strings.TrimPrefix(w.onChange, "signal:"))
		if err != nil {
			return nil, usageError("--on-change %q: %w", w.onChange, err)
		}
		o.action, o.signal = onChangeSignal, sig
	default:
		return nil, usageError("--on-change %q: want restart, signal:NAME (such as signal:HUP) or none", w.onChange)
	}
	if o.action != onChangeRestart {
		for _, n := range []string{"stop-signal", "kill-timeout"} {
			if fs.Changed(n) {
				return nil, usageError("--%s applies to --on-change restart", n)
			}
		}
	}
	sig, err := parseSignal(w.stopSignal)
	if err != nil {
		return nil, usageError("--stop-signal %q: %w", w.stopSignal, err)
	}
	o.stopSignal = sig
	if w.killTimeout < 0 {
		return nil, usageError("--kill-timeout %s: must not be negative", w.killTimeout)
	}
	if w.jitter < 0 {
		return nil, usageError("--restart-jitter %s: must not be negative", w.jitter)
	}
	return o, nil
}

// parseSignal takes a signal's name with or without SIG, in any case: HUP,
// SIGHUP, hup.
func parseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: want a name such as TERM, HUP or USR1", name)
}

// outputDrain bounds how long a restart (or the end of run) waits for the
// stopped child's masked output to end, so that its last lines come before
// the next child's first (or before run exits). Something it left running
// (a grandchild the shell started) may hold the output open forever: run
// must not wait for that.
const outputDrain = 2 * time.Second

// runWatching runs the command and follows the secrets it depends on until
// it exits by itself; it returns the command's exit status.
func runWatching(ctx context.Context, args []string, force *bool, src *envSource, opts watchOptions) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feed := newChangeFeed(ctx)
	// Follow before the first resolution, so that a change made between the
	// two is not lost.
	if t := src.targets(src.base); len(t) > 0 {
		c, err := src.client.get()
		if err != nil {
			return 0, err
		}
		if err := feed.watch(c, feed.missing(t)); err != nil {
			// A reference that cannot be resolved is the better message
			// (it names the variable); else the watch's refusal.
			if _, _, rerr := src.resolve(ctx); rerr != nil {
				return 0, rerr
			}
			return 0, err
		}
	}
	env, values, err := src.resolve(ctx)
	if err != nil {
		return 0, err
	}
	// A --secret key whose value is itself a reference names secrets that
	// could not be known before: follow them too, and resolve again in case
	// one changed in between.
	if m := feed.missing(src.targets(env)); len(m) > 0 {
		c, err := src.client.get()
		if err != nil {
			return 0, err
		}
		if err := feed.watch(c, m); err != nil {
			return 0, err
		}
		if env, values, err = src.resolve(ctx); err != nil {
			return 0, err
		}
	}
	sup, err := newSupervisor(args, force)
	if err != nil {
		return 0, err
	}
	if feed.empty() {
		fmt.Fprintf(sup.log, "secretgate: run: --watch: no reference can change (there is none, or each is pinned with ?version=N): %s runs without watching\n", args[0])
	}
	sup.addValues(values)
	w := &watching{sup: sup, resolve: src.resolve, feed: feed, opts: opts, env: env, name: args[0]}
	return w.loop(ctx)
}

// watching is the state of run --watch.
type watching struct {
	sup     *supervisor
	resolve func(context.Context) (*childEnv, []string, error)
	feed    *changeFeed
	opts    watchOptions
	// env is the environment the child started with; under signal:NAME
	// and none, the last one resolved (what the next one is compared with).
	env  *childEnv
	name string // the command, for messages
}

// resolution is the outcome of resolving again after changes.
type resolution struct {
	env    *childEnv
	values []string
	err    error
	why    []string // what changed: "project/name", "project (resync)"
}

// loop runs the child, forwards signals to it and acts on changes, until
// the child exits by itself (or a signal sent to secretgate stopped it
// during a restart): its status is then secretgate's.
func (w *watching) loop(ctx context.Context) (int, error) {
	sigs := notifySignals()
	defer sigs.stop()
	ch, err := w.sup.start(w.env.environ())
	if err != nil {
		return 0, err
	}
	var (
		timer  *time.Timer
		fire   <-chan time.Time // the jitter's end, nil when no change waits
		result chan resolution  // nil when no resolution runs
		dirty  bool             // a change came since the last take
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	arm := func() {
		timer = time.NewTimer(jitterDelay(w.opts.jitter))
		fire = timer.C
	}
	for {
		select {
		case sig := <-sigs.c:
			sigs.forward(ch, sig)
		case <-ch.done:
			waitTimeout(&w.sup.copiers, outputDrain)
			return ch.status()
		case err := <-w.feed.ended:
			fmt.Fprintf(w.sup.log, "secretgate: run: %v; %s keeps running without its changes\n", err, w.name)
		case <-w.feed.wake:
			dirty = true
			// Changes during the delay or a resolution join the next one.
			if fire == nil && result == nil {
				arm()
			}
		case <-fire:
			fire, dirty = nil, false
			result = make(chan resolution, 1)
			go func(why []string, out chan<- resolution) {
				env, values, err := w.resolve(ctx)
				out <- resolution{env: env, values: values, err: err, why: why}
			}(w.feed.take(), result)
		case r := <-result:
			result = nil
			next, err := w.apply(ch, r, sigs)
			if err != nil {
				return 0, err
			}
			if next == nil {
				waitTimeout(&w.sup.copiers, outputDrain)
				return ch.status()
			}
			ch = next
			if dirty {
				arm()
			}
		}
	}
}

// apply acts on a resolution: nothing when no value changed, else what
// --on-change says. It returns the child that runs now, nil when a signal
// sent to secretgate during a restart asked to end.
func (w *watching) apply(ch *child, r resolution, sigs *signals) (*child, error) {
	select {
	case <-ch.done:
		// It exited by itself meanwhile: the loop ends with its status.
		return ch, nil
	default:
	}
	what := strings.Join(r.why, ", ")
	log := w.sup.log
	if r.err != nil {
		fmt.Fprintf(log, "secretgate: run: %s changed, but resolving again failed: %v; %s keeps running with the values it has\n", what, r.err, w.name)
		return ch, nil
	}
	names := changedNames(w.env, r.env)
	if len(names) == 0 {
		return ch, nil
	}
	w.sup.addValues(r.values)
	w.env = r.env
	vars := strings.Join(names, ", ")
	switch w.opts.action {
	case onChangeNone:
		fmt.Fprintf(log, "secretgate: run: %s changed (%s); --on-change none: %s keeps running as it is\n", vars, what, w.name)
		return ch, nil
	case onChangeSignal:
		fmt.Fprintf(log, "secretgate: run: %s changed (%s): sending %s to %s\n", vars, what, unix.SignalName(w.opts.signal), w.name)
		_ = ch.cmd.Process.Signal(w.opts.signal)
		return ch, nil
	}
	fmt.Fprintf(log, "secretgate: run: %s changed (%s): restarting %s\n", vars, what, w.name)
	return w.restart(ch, sigs)
}

// restart stops ch with the stop signal (sent once), then SIGKILL after
// the kill timeout, and starts the command again with w.env. SIGINT,
// SIGTERM or SIGQUIT sent to secretgate meanwhile is forwarded and cancels
// the restart: whoever sent it wants the command to end.
func (w *watching) restart(ch *child, sigs *signals) (*child, error) {
	_ = ch.cmd.Process.Signal(w.opts.stopSignal)
	kill := time.NewTimer(w.opts.killTimeout)
	defer kill.Stop()
	quit := false
	for stopped := false; !stopped; {
		select {
		case <-ch.done:
			stopped = true
		case <-kill.C:
			fmt.Fprintf(w.sup.log, "secretgate: run: %s did not exit within %s of %s: sending SIGKILL\n", w.name, w.opts.killTimeout, unix.SignalName(w.opts.stopSignal))
			_ = ch.cmd.Process.Kill()
		case sig := <-sigs.c:
			sigs.forward(ch, sig)
			if sig == syscall.SIGINT || sig == syscall.SIGTERM || sig == syscall.SIGQUIT {
				quit = true
			}
		}
	}
	waitTimeout(&ch.output, outputDrain)
	if quit {
		return nil, nil
	}
	return w.sup.start(w.env.environ())
}

// waitTimeout waits for wg, at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
