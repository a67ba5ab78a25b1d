package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/gateway"
)

func init() { registerCommand(newServerCmd) }

// Exit codes of `secretgate server`.
const (
	exitConfig = 2 // the configuration is invalid
	exitStart  = 3 // a valid configuration could not be started (plugin, port, audit file)
)

// drainTimeout bounds the whole shutdown on SIGTERM: in-flight requests get
// all of it but gateway.PluginStopTimeout, which is kept for stopping the
// plugins afterwards (bounded even when one hangs).
const drainTimeout = 20 * time.Second

type serverFlags struct {
	config   string
	dev      bool
	listen   string
	devToken string
	devDir   string
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the gateway (--config FILE, or --dev for a local development server)",
		Long: `Run the secretgate gateway.

With --config FILE it serves what the file describes (see docs/configuration.md in the
repository); SECRETGATE_* environment variables override it.

With --dev it needs no file: it listens on 127.0.0.1:8270 (or --listen),
keeps secrets with the built-in file backend under ./.secretgate/ (or
--dev-dir), creates the project "default" and prints an admin token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "configuration file (secretgate.yaml)")
	fl.BoolVar(&f.dev, "dev", false, "development mode: no config file, file backend under --dev-dir, admin token printed")
	fl.StringVar(&f.listen, "listen", "", "listen address, overriding the configuration (127.0.0.1:0 picks a free port)")
	fl.StringVar(&f.devToken, "dev-token", "", "with --dev: use this admin token instead of a random one")
	fl.StringVar(&f.devDir, "dev-dir", ".secretgate", "with --dev: directory for the secrets database, key file and audit log")
	return cmd
}

func runServer(ctx context.Context, stdout, stderr io.Writer, f serverFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts := gateway.LoadOptions{Builtins: builtinNames()}

	var cfg *gateway.Config
	var devToken string
	switch {
	case f.dev && f.config != "":
		return &exitError{code: exitConfig, err: errors.New("--dev and --config exclude each other")}
	case f.dev:
		var err error
		cfg, devToken, err = devConfig(f, opts)
		if err != nil {
			return &exitError{code: exitConfig, err: err}
		}
	case f.config != "":
		var err error
		cfg, err = gateway.LoadConfig(f.config, opts)
		if err != nil {
			return &exitError{code: exitConfig, err: err}
		}
		if f.listen != "" {
			cfg.Listen = f.listen
		}
	default:
		return &exitError{code: exitConfig, err: errors.New("need --config FILE, or --dev for a development server")}
	}
	if f.devToken != "" && !f.dev {
		return &exitError{code: exitConfig, err: errors.New("--dev-token needs --dev")}
	}

	exe, err := os.Executable()
	if err != nil {
		return &exitError{code: exitStart, err: fmt.Errorf("finding the secretgate executable for built-in plugins: %w", err)}
	}
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := gateway.New(sigCtx, cfg, gateway.Options{Executable: exe, Builtins: builtinNames(), Logger: logger, PluginStderr: stderr})
	if err != nil {
		return &exitError{code: exitStart, err: err}
	}
	// SIGHUP reopens the audit log (logrotate renames the file, then
	// signals) and, with --config, reloads the configuration. The file is
	// not watched for changes: an editor's half-written save would be
	// applied; a signal says the file is ready.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-sigCtx.Done():
				return
			case <-hup:
				if err := srv.ReopenAudit(); err != nil {
					logger.Error("SIGHUP: reopening the audit log failed", "error", err)
				} else {
					logger.Info("SIGHUP: audit log reopened")
				}
				if f.config != "" {
					_ = srv.ReloadFile(sigCtx, f.config, opts, func(c *gateway.Config) {
						if f.listen != "" {
							c.Listen = f.listen
						}
					})
				}
			}
		}
	}()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return &exitError{code: exitStart, err: fmt.Errorf("listen: %w", err)}
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
	}
	addr := scheme + "://" + ln.Addr().String()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if f.dev {
		fmt.Fprintf(stdout, "secretgate is running in development mode: one admin token, secrets under %s. Do not use it in production.\n\n", f.devDir)
		fmt.Fprintf(stdout, "Admin token (shown once): %s\n\n", devToken)
		fmt.Fprintf(stdout, "    export SECRETGATE_ADDR=%s\n", addr)
		fmt.Fprintf(stdout, "    export SECRETGATE_TOKEN=%s\n\n", devToken)
		fmt.Fprintf(stdout, "Web UI: %s/ui/ (sign in with the token)\n\n", addr)
	}
	fmt.Fprintf(stdout, "secretgate listening on %s\n", addr)

	select {
	case err := <-served:
		_ = srv.Shutdown(context.Background())
		if err != nil {
			return &exitError{code: exitStart, err: fmt.Errorf("serve: %w", err)}
		}
		return nil
	case <-sigCtx.Done():
	}
	stop() // a second signal now kills the process the default way
	requestDrain := drainTimeout - gateway.PluginStopTimeout
	logger.Info("shutting down: draining in-flight requests", "timeout", requestDrain.String())
	dctx, cancel := context.WithTimeout(context.Background(), requestDrain)
	defer cancel()
	err = srv.Shutdown(dctx)
	<-served
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// devConfig is the configuration of --dev: one file backend, project
// "default", and an admin subject bound to every project.
func devConfig(f serverFlags, opts gateway.LoadOptions) (*gateway.Config, string, error) {
	token := f.devToken
	if token == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, "", fmt.Errorf("making a dev token: %w", err)
		}
		token = "sgdev_" + base64.RawURLEncoding.EncodeToString(b[:])
	}
	dir, err := filepath.Abs(f.devDir)
	if err != nil {
		return nil, "", fmt.Errorf("--dev-dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("--dev-dir: %w", err)
	}
	listen := f.listen
	if listen == "" {
		listen = gateway.DefaultListen
	}
	sum := sha256.Sum256([]byte(token))
	cfg := &gateway.Config{
		UI:     true,
		Listen: listen,
		Audit:  gateway.AuditConfig{Path: filepath.Join(dir, "audit.log")},
		Backends: []gateway.BackendConfig{{
			Name:   "local",
			Plugin: "file",
			Settings: map[string]string{
				"path":     filepath.Join(dir, "secrets.db"),
				"key_file": filepath.Join(dir, "master.key"),
			},
		}},
		Projects: []gateway.ProjectConfig{{Name: "default", Backend: "local"}},
		Subjects: []gateway.SubjectConfig{{Name: "admin", TokenSHA256: gateway.TokenHashes{hex.EncodeToString(sum[:])}}},
		Bindings: []gateway.BindingConfig{{Subject: "admin", Project: "*", Role: "admin"}},
	}
	if err := cfg.Validate(opts); err != nil {
		return nil, "", err
	}
	return cfg, token, nil
}
