//go:build unix

package main

import (
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

	"github.com/secretgate/secretgate/sdk/client"
)

func init() { registerCommand(newRunCmd) }

// forwardedSignals reach the child once each.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func newRunCmd() *cobra.Command {
	var (
		envFiles, secrets []string
		prefix            string
		mask, noMask      bool
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
are not recognized.`,
		Example: `  DATABASE_PASSWORD=sg://payments/db/password secretgate run -- ./server
  secretgate run --env-file .env -- npm start
  secretgate run --secret payments/stripe --prefix STRIPE_ -- env`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mask && noMask {
				return usageError("--mask and --no-mask exclude each other")
			}
			env := newChildEnv()
			env.addEnviron(os.Environ())
			for _, f := range envFiles {
				if err := env.addEnvFile(f); err != nil {
					return err
				}
			}
			var c clientOnce
			var values []string
			if len(secrets) > 0 {
				cl, err := c.get()
				if err != nil {
					return err
				}
				if values, err = env.addSecrets(cmd.Context(), cl, secrets, prefix); err != nil {
					return err
				}
			} else if prefix != "" {
				return usageError("--prefix applies to --secret, and none was given")
			}
			resolved, err := env.resolveRefs(cmd.Context(), c.get)
			if err != nil {
				return err
			}
			values = append(values, resolved...)
			code, err := runChild(args, env.environ(), values, maskChoice(mask, noMask))
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
	return cmd
}

// clientOnce builds the API client when first needed: a command without
// references needs no token.
type clientOnce struct {
	c   *client.Client
	err error
}

func (o *clientOnce) get() (*client.Client, error) {
	if o.c == nil && o.err == nil {
		o.c, o.err = newAPIClient()
	}
	return o.c, o.err
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

// runChild starts args with environ, forwards signals, masks its output as
// asked, and returns its exit status (128+N for signal N).
func runChild(args, environ, values []string, force *bool) (int, error) {
	path, err := exec.LookPath(args[0])
	if err != nil {
		return 0, &exitError{code: 127, err: fmt.Errorf("run: %w", err)}
	}
	child := exec.Command(path, args[1:]...)
	child.Args[0] = args[0]
	child.Env = environ
	child.Stdin = os.Stdin
	var copiers sync.WaitGroup
	var closers []func()
	output := func(f *os.File) (*os.File, error) {
		on := !term.IsTerminal(int(f.Fd()))
		if force != nil {
			on = *force
		}
		if !on || len(values) == 0 {
			return f, nil
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		m := newMasker(f, values)
		closers = append(closers, func() { _ = pw.Close() })
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			// Errors writing our own output cannot be reported anywhere
			// better; the child's status still is.
			_, _ = io.Copy(m, pr)
			_ = m.Close()
			_ = pr.Close()
		}()
		return pw, nil
	}
	if child.Stdout, err = output(os.Stdout); err != nil {
		return 0, err
	}
	if child.Stderr, err = output(os.Stderr); err != nil {
		return 0, err
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		for _, c := range closers {
			c()
		}
		return 0, &exitError{code: 126, err: fmt.Errorf("run: %w", err)}
	}
	// Only the child writes to the pipes now; their reading ends see EOF
	// when it (and whatever it left running) has closed them.
	for _, c := range closers {
		c()
	}
	tty := openTTY()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if fromTerminal(s, tty) {
					continue
				}
				_ = child.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	werr := child.Wait()
	close(done)
	copiers.Wait()
	if tty != nil {
		_ = tty.Close()
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return 0, fmt.Errorf("run: %w", werr)
	}
	st, _ := child.ProcessState.Sys().(syscall.WaitStatus)
	if st.Signaled() {
		return 128 + int(st.Signal()), nil
	}
	return st.ExitStatus(), nil
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
