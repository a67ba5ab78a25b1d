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
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

func init() { registerCommand(newRunCmd) }

// forwardedSignals reach the child once each.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func newRunCmd() *cobra.Command {
	var (
		envFiles, secrets []string
		prefix            string
		mask, noMask      bool
		watch             watchFlags
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command with secrets in its environment, resolved from sg:// references",
		Long: `Run CMD with an environment where every variable whose whole value is a
reference sg://PROJECT/SECRET/KEY[?version=N] holds the key's value instead.
References come from the environment, from --env-file files (dotenv; other
values are passed as they are) and --secret PROJECT/SECRET adds every key of a
secret (upper-cased, '.' and '-' as '_', after --prefix). Later sources win:
the environment, then each --env-file, then each --secret. All references are
resolved in one POST /v1/resolve before CMD starts; nothing is written to disk.

Exit status: CMD's own, or 128+N when it died of signal N. Before CMD starts,
secretgate's own codes (see 'secretgate secret --help'): a reference that
cannot be resolved stops here, naming the variable and the reference.

Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to
secretgate reach CMD once. CMD stays in secretgate's process group, so an
interactive CMD keeps the terminal (job control and reading the terminal
work); a Ctrl-C or Ctrl-\ typed at the terminal, and a terminal hangup, reach
CMD directly from the terminal, so while secretgate is the terminal's
foreground job it does not forward SIGINT, SIGQUIT and SIGHUP a second time.

Masking: resolved values in CMD's stdout and stderr are replaced by
<concealed by secretgate>, even when split across writes. It is on for each
stream that is not a terminal (CI logs) and off for a terminal; --mask and
--no-mask force it. Values shorter than 4 characters are never masked (they
would mask half of any log); encoded forms of a value (base64, JSON escapes)
are not recognized.

--watch: follow the secrets of the references not pinned with ?version=N
(and of each --secret) and, on a change, resolve every reference again; if
a value changed, --on-change restart (default: --stop-signal, TERM, sent
once, SIGKILL after --kill-timeout, 10s, then CMD starts again with the new
values), signal:NAME (send NAME; the new values reach CMD only through a
file that 'inject --watch' renders) or none (a line on stderr). Changes
during --restart-jitter D, a random delay in [0, D), join into one restart.
A failed resolution keeps CMD running and says why. When CMD exits by
itself, secretgate exits with its status and does not start it again.`,
		Example: `  DATABASE_PASSWORD=sg://payments/db/password secretgate run -- ./server
  secretgate run --env-file .env -- npm start
  secretgate run --secret payments/stripe --prefix STRIPE_ -- env
  secretgate run --watch --restart-jitter 30s --env-file .env -- ./server
  secretgate run --watch --on-change signal:HUP -- ./server --config app.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mask && noMask {
				return usageError("--mask and --no-mask exclude each other")
			}
			wopts, err := watch.options(cmd)
			if err != nil {
				return err
			}
			base := newChildEnv()
			base.addEnviron(os.Environ())
			for _, f := range envFiles {
				if err := base.addEnvFile(f); err != nil {
					return err
				}
			}
			if len(secrets) == 0 && prefix != "" {
				return usageError("--prefix applies to --secret, and none was given")
			}
			src := &envSource{base: base, secrets: secrets, prefix: prefix, client: &clientOnce{cmd: cmd}}
			force := maskChoice(mask, noMask)
			var code int
			if wopts != nil {
				code, err = runWatching(cmd.Context(), args, force, src, *wopts)
			} else {
				code, err = runResolved(cmd.Context(), args, force, src)
			}
			if err != nil {
				return err
			}
			// The child's status is ours; secretgate has nothing to add to
			// what the child printed.
			os.Exit(code)
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringArrayVar(&envFiles, "env-file", nil, "dotenv file whose values (references resolved) are added; repeatable")
	cmd.Flags().StringArrayVar(&secrets, "secret", nil, "PROJECT/SECRET whose keys are all added as variables; repeatable")
	cmd.Flags().StringVar(&prefix, "prefix", "", "prefix of the variables --secret adds")
	cmd.Flags().BoolVar(&mask, "mask", false, "mask resolved values in the output even on a terminal")
	cmd.Flags().BoolVar(&noMask, "no-mask", false, "never mask resolved values")
	watch.add(cmd)
	addConnFlags(cmd)
	return cmd
}

// runResolved resolves every reference, then runs the command once.
func runResolved(ctx context.Context, args []string, force *bool, src *envSource) (int, error) {
	env, values, err := src.resolve(ctx)
	if err != nil {
		return 0, err
	}
	sup, err := newSupervisor(args, force)
	if err != nil {
		return 0, err
	}
	sup.addValues(values)
	return sup.runOnce(env.environ())
}

// maskChoice: nil = per stream, masked when it is not a terminal.
func maskChoice(mask, noMask bool) *bool {
	switch {
	case mask:
		return &mask
	case noMask:
		f := false
		return &f
	}
	return nil
}

// supervisor runs the child: it starts it (again, under --watch), forwards
// signals to it, and masks its output.
type supervisor struct {
	args  []string
	path  string // args[0] found on PATH
	stdin *os.File
	// out are the child's stdout and stderr: a masking writer, or nil
	// where the child writes to the file directly.
	out  [2]*maskedOutput
	file [2]*os.File
	log  io.Writer // secretgate's own messages

	values  []string // every value resolved so far, to mask
	copiers sync.WaitGroup
}

// newSupervisor finds args[0] and decides masking per stream: force, or
// else masked when the stream is not a terminal.
func newSupervisor(args []string, force *bool) (*supervisor, error) {
	path, err := exec.LookPath(args[0])
	if err != nil {
		return nil, &exitError{code: 127, err: fmt.Errorf("run: %w", err)}
	}
	s := &supervisor{args: args, path: path, stdin: os.Stdin, file: [2]*os.File{os.Stdout, os.Stderr}, log: os.Stderr}
	for i, f := range s.file {
		on := !term.IsTerminal(int(f.Fd()))
		if force != nil {
			on = *force
		}
		if on {
			s.out[i] = &maskedOutput{f: f, m: newMasker(f, nil)}
		}
	}
	return s, nil
}

// addValues masks values from now on, as well as those masked before: a
// value replaced by a rotation may still be printed (from a file, a cache,
// a grandchild that kept the old environment).
func (s *supervisor) addValues(values []string) {
	s.values = append(s.values, values...)
	for _, o := range s.out {
		if o != nil {
			o.setValues(s.values)
		}
	}
}

// child is one run of the command.
type child struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed once the child has exited and been reaped
	werr   error         // cmd.Wait's, valid once done is closed
	output sync.WaitGroup
}

// start starts the command with environ.
func (s *supervisor) start(environ []string) (*child, error) {
	cmd := exec.Command(s.path, s.args[1:]...)
	cmd.Args[0] = s.args[0]
	cmd.Env = environ
	cmd.Stdin = s.stdin
	ch := &child{cmd: cmd, done: make(chan struct{})}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for i, dst := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
		o := s.out[i]
		if o == nil || len(s.values) == 0 {
			*dst = s.file[i]
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("run: %w", err)
		}
		closers = append(closers, func() { _ = pw.Close() })
		*dst = pw
		ch.output.Add(1)
		s.copiers.Add(1)
		go func() {
			defer s.copiers.Done()
			defer ch.output.Done()
			// Errors writing our own output cannot be reported anywhere
			// better; the child's status still is.
			_, _ = io.Copy(o, pr)
			o.flush()
			_ = pr.Close()
		}()
	}
	err := cmd.Start()
	// Only the child writes to the pipes now; their reading ends see EOF
	// when it (and whatever it left running) has closed them.
	closeAll()
	if err != nil {
		return nil, &exitError{code: 126, err: fmt.Errorf("run: %w", err)}
	}
	go func() {
		ch.werr = cmd.Wait()
		close(ch.done)
	}()
	return ch, nil
}

// status is the child's exit status, 128+N when it died of signal N.
func (ch *child) status() (int, error) {
	var ee *exec.ExitError
	if ch.werr != nil && !errors.As(ch.werr, &ee) {
		return 0, fmt.Errorf("run: %w", ch.werr)
	}
	st, _ := ch.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if st.Signaled() {
		return 128 + int(st.Signal()), nil
	}
	return st.ExitStatus(), nil
}

// signals forwards the signals sent to secretgate to the current child.
type signals struct {
	c   chan os.Signal
	tty *os.File
}

func notifySignals() *signals {
	s := &signals{c: make(chan os.Signal, 16), tty: openTTY()}
	signal.Notify(s.c, forwardedSignals...)
	return s
}

func (s *signals) stop() {
	signal.Stop(s.c)
	if s.tty != nil {
		_ = s.tty.Close()
	}
}

// forward sends sig to ch unless the terminal already did.
func (s *signals) forward(ch *child, sig os.Signal) {
	if !fromTerminal(sig, s.tty) {
		_ = ch.cmd.Process.Signal(sig)
	}
}

// runOnce runs the command with environ until it exits and returns its
// exit status, once every writer of its masked output has closed it, or
// outputDrain after the command exited (what it left running may keep the
// output open).
func (s *supervisor) runOnce(environ []string) (int, error) {
	sigs := notifySignals()
	defer sigs.stop()
	ch, err := s.start(environ)
	if err != nil {
		return 0, err
	}
	for {
		select {
		case sig := <-sigs.c:
			sigs.forward(ch, sig)
		case <-ch.done:
			waitTimeout(&s.copiers, outputDrain)
			return ch.status()
		}
	}
}

// maskedOutput is one of the child's output streams, masked. Its values
// only grow during a run; every child's copy of the stream writes here.
type maskedOutput struct {
	f  *os.File
	mu sync.Mutex
	m  *masker
}

func (o *maskedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m.Write(p)
}

// flush writes what the masker held back: one child's stream has ended.
func (o *maskedOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.m.Close()
}

// setValues masks values from the next write on.
func (o *maskedOutput) setValues(values []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := newMasker(o.f, values)
	// What the old masker held back may be the start of a value the next
	// write completes; every old value is among the new ones, so the next
	// masker recognizes it as well.
	o.m.mu.Lock()
	next.buf = append(next.buf, o.m.buf...)
	o.m.buf = nil
	o.m.mu.Unlock()
	o.m = next
}

// openTTY opens the controlling terminal, nil when there is none.
func openTTY() *os.File {
	f, err := os.Open("/dev/tty")
	if err != nil {
		return nil
	}
	return f
}

// fromTerminal guesses whether the terminal sent s to our whole process
// group (and so to the child already): s is one a terminal sends (Ctrl-C,
// Ctrl-\, hangup) and our group is the terminal's foreground group. Then
// forwarding it would deliver it twice.
func fromTerminal(s os.Signal, tty *os.File) bool {
	if tty == nil || (s != syscall.SIGINT && s != syscall.SIGQUIT && s != syscall.SIGHUP) {
		return false
	}
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}
