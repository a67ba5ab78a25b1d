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
	"runtime"
	"strings"
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
	// devCache puts the read cache in front of --dev's file backend.
	devCache bool
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
--dev-dir), creates the project "default" and prints an admin token. The
token is kept in the dev-token file (mode 0600) of that directory and reused
by the next start, so that an exported SECRETGATE_TOKEN keeps working;
--dev-token T uses T instead, without saving it. Reads are answered from a
read cache in the gateway's memory (values sealed with a per-process key,
never on disk): the gateway is the only writer of its file backend, so the
cache cannot hide a change; --dev-cache=false sends every read to the plugin.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("dev-cache") && !f.dev {
				return &exitError{code: exitConfig, err: errors.New("--dev-cache needs --dev (with --config, a backend's cache is its cache: setting)")}
			}
			return runServer(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "configuration file (secretgate.yaml)")
	fl.BoolVar(&f.dev, "dev", false, "development mode: no config file, file backend under --dev-dir, admin token printed")
	fl.StringVar(&f.listen, "listen", "", "listen address, overriding the configuration (127.0.0.1:0 picks a free port)")
	fl.StringVar(&f.devToken, "dev-token", "", "with --dev: use this admin token (not saved) instead of the one kept in --dev-dir")
	fl.StringVar(&f.devDir, "dev-dir", ".secretgate", "with --dev: directory for the secrets database, key file and audit log")
	fl.BoolVar(&f.devCache, "dev-cache", true, "with --dev: answer reads from the read cache (false: every read asks the file plugin)")
	return cmd
}

func runServer(ctx context.Context, stdout, stderr io.Writer, f serverFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts := gateway.LoadOptions{Builtins: builtinNames()}

	var cfg *gateway.Config
	var devToken devToken
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
		fmt.Fprintf(stdout, "Admin token (%s): %s\n\n", devToken.origin(), devToken.value)
		fmt.Fprintf(stdout, "    export SECRETGATE_ADDR=%s\n", addr)
		fmt.Fprintf(stdout, "    export SECRETGATE_TOKEN=%s\n\n", devToken.value)
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
// "default", and an admin subject bound to every project. The backend has
// the read cache with its defaults unless --dev-cache=false: the plugin
// holds the database's exclusive lock, so every write goes through this
// gateway and is written through to the cache, and "latest" is never stale
// (the TTL only bounds how long a value stays without a backend call).
func devConfig(f serverFlags, opts gateway.LoadOptions) (*gateway.Config, devToken, error) {
	dir, err := filepath.Abs(f.devDir)
	if err != nil {
		return nil, devToken{}, fmt.Errorf("--dev-dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, devToken{}, fmt.Errorf("--dev-dir: %w", err)
	}
	tok := devToken{value: f.devToken, from: devTokenFlag}
	if tok.value == "" {
		if tok, err = loadDevToken(filepath.Join(dir, devTokenFile)); err != nil {
			return nil, devToken{}, err
		}
	}
	listen := f.listen
	if listen == "" {
		listen = gateway.DefaultListen
	}
	sum := sha256.Sum256([]byte(tok.value))
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
	if f.devCache {
		cfg.Backends[0].Cache = &gateway.CacheConfig{}
	}
	if err := cfg.Validate(opts); err != nil {
		return nil, devToken{}, err
	}
	// Saved only once the configuration is known to start, so that a
	// refused start leaves no token behind.
	if tok.from == devTokenNew {
		if err := saveDevToken(tok); err != nil {
			return nil, devToken{}, err
		}
	}
	return cfg, tok, nil
}

// devTokenFile, in --dev-dir, keeps the admin token of --dev across
// restarts: a new token at every start would leave the SECRETGATE_TOKEN
// the user exported failing with 401 against the same data. It holds the
// token itself, not a hash, because the banner prints it again; mode 0600,
// like the key file beside it, which guards more than the token does.
const devTokenFile = "dev-token"

// Where the --dev admin token came from.
const (
	devTokenFlag   = iota // --dev-token, not saved
	devTokenNew           // made now, saved in path
	devTokenReused        // read from path
)

type devToken struct {
	value string
	from  int
	path  string
}

// origin is the banner's word on the token.
func (t devToken) origin() string {
	switch t.from {
	case devTokenNew:
		return "new, kept in " + t.path + " for the next start"
	case devTokenReused:
		return "reused from " + t.path
	}
	return "from --dev-token, not saved"
}

// devTokenMaxBytes bounds what is read of the token file: a token made here
// is 49 bytes.
const devTokenMaxBytes = 4096

// loadDevToken reads the token of path, or makes a new one (saved later by
// saveDevToken) when there is no such file.
func loadDevToken(path string) (devToken, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return devToken{}, fmt.Errorf("making a dev token: %w", err)
		}
		return devToken{value: "sgdev_" + base64.RawURLEncoding.EncodeToString(b[:]), from: devTokenNew, path: path}, nil
	}
	if err != nil {
		return devToken{}, fmt.Errorf("dev token: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return devToken{}, fmt.Errorf("dev token: %w", err)
	}
	if !st.Mode().IsRegular() {
		return devToken{}, fmt.Errorf("dev token: %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return devToken{}, fmt.Errorf("dev token: %s has mode %04o: it must not be readable by group or others (run: chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, devTokenMaxBytes+1))
	if err != nil {
		return devToken{}, fmt.Errorf("dev token: reading %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(raw))
	if len(raw) > devTokenMaxBytes || tok == "" || strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		// The content is not repeated: it may be anything.
		return devToken{}, fmt.Errorf("dev token: %s does not hold one token (one line of printable characters); delete it to get a new token", path)
	}
	return devToken{value: tok, from: devTokenReused, path: path}, nil
}

// saveDevToken writes a new token to its file, which must not exist (two
// dev servers started at once on one directory: the second one fails).
func saveDevToken(t devToken) error {
	f, err := os.OpenFile(t.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("dev token: %w", err)
	}
	_, werr := f.WriteString(t.value + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(t.path) // a half-written token would be refused at the next start
		return fmt.Errorf("dev token: writing %s: %w", t.path, werr)
	}
	return nil
}
