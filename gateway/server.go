package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/secretgate/secretgate/gateway/webui"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// Limits and timeouts of the HTTP server.
const (
	MaxBodyBytes          = 1 << 20 // 1 MiB; larger bodies answer 413
	DefaultBackendTimeout = 10 * time.Second
	readHeaderTimeout     = 10 * time.Second
	readTimeout           = 30 * time.Second
	writeTimeout          = 60 * time.Second
	idleTimeout           = 120 * time.Second
	maxHeaderBytes        = 64 << 10
)

// Backends is where the server finds each backend's client; *Host in
// production, an in-memory map in handler tests.
type Backends interface {
	// Backend returns a client, or an error wrapping sdk.ErrUnavailable
	// while the backend is down.
	Backend(name string) (sdk.Backend, error)
	// Suspect reports a call that failed as unavailable.
	Suspect(name string)
	// Status reports whether each backend is up (for /metrics).
	Status() map[string]bool
	// PingAll pings every backend and returns the failures (for /readyz).
	PingAll(ctx context.Context) map[string]error
}

// Options configures a Server.
type Options struct {
	// Executable is the secretgate binary, which serves the built-in
	// plugins as `secretgate plugin serve <type>`.
	Executable string
	// Builtins are the built-in plugin types of the binary.
	Builtins []string
	Logger   *slog.Logger
	// PluginStderr receives the plugins' log lines; os.Stderr when nil.
	PluginStderr io.Writer
	// BackendTimeout bounds every backend call; DefaultBackendTimeout when 0.
	BackendTimeout time.Duration

	// Overrides for tests: when set, they replace what New builds from
	// the configuration.
	Authorizer Authorizer
	Auditor    Auditor
	Backends   Backends
}

// Server is the gateway: the HTTP API in front of the plugin host.
type Server struct {
	// cfg is the configuration the server started with; of it, a reload
	// never changes listen, tls, audit and ui. The rest is in live.
	cfg            *Config
	live           atomic.Pointer[liveConfig]
	fixedAuthz     Authorizer // Options.Authorizer: tests keep it across reloads
	reloadMu       sync.Mutex // one reload at a time (reload.go)
	executable     string     // Options.Executable, for plugins a reload starts
	log            *slog.Logger
	audit          Auditor
	backends       Backends
	host           *Host // nil when Options.Backends was given
	routing        *Routing
	metrics        *metrics
	engine         *gin.Engine
	migrator       *migrator
	backendTimeout time.Duration
	locks          [256]chan struct{}
	pages          *pageSealer
	authFails      *burstLimiter
	jwtLogs        *burstLimiter // lines about unreachable issuers
	readTimeout    time.Duration // of a whole request; tests shorten it
	hub            *eventHub     // change notifications (events.go)
	eventsOnce     sync.Once
	caches         *readCaches // read caches (readcache_server.go)
	cachesOnce     sync.Once
	vault          *vaultAPI    // Vault's KV v2 API (vaultapi.go); nil unless vault_api.enabled
	shared         *sharedState // state.go; nil unless state.postgres is set
	receipts       *receipts    // audit receipts (receipts.go)

	mu     sync.Mutex
	srv    *http.Server
	closed bool
}

var ginModeOnce sync.Once

// New builds a server from a validated configuration: it opens the audit
// log, builds the policy and starts every backend's plugin.
func New(ctx context.Context, cfg *Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s := &Server{cfg: cfg, log: opts.Logger, metrics: newMetrics(), backendTimeout: opts.BackendTimeout, readTimeout: readTimeout, executable: opts.Executable}
	if s.backendTimeout <= 0 {
		s.backendTimeout = DefaultBackendTimeout
	}
	if err := refuseCoreDumpsIfCached(cfg); err != nil {
		return nil, err
	}
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	pages, err := newPageSealer()
	if err != nil {
		return nil, err
	}
	s.pages = pages
	s.authFails = newBurstLimiter(authFailRate, authFailBurst)
	s.jwtLogs = newBurstLimiter(1, 10)
	projects := map[string]string{}
	for _, p := range cfg.Projects {
		projects[p.Name] = p.Backend
	}
	s.routing = NewRouting(projects)

	s.fixedAuthz = opts.Authorizer
	live, err := s.newLive(cfg)
	if err != nil {
		return nil, err
	}
	s.live.Store(live)
	if cfg.State.Postgres != nil {
		if s.shared, err = openShared(ctx, s, cfg.State.Postgres); err != nil {
			return nil, err
		}
	}
	built := false
	defer func() {
		if !built && s.shared != nil {
			s.shared.store.Close() // a later step failed: nothing runs on it yet
		}
	}()
	s.audit = opts.Auditor
	if s.audit == nil {
		a, err := OpenFileAuditor(cfg.Audit.Path, cfg.Audit.Fsync)
		if err != nil {
			return nil, err
		}
		s.audit = a
	}
	s.receipts = newReceipts(s.audit, cfg.Audit, s.log, func(name string) (sdk.Backend, error) { return s.backends.Backend(name) })
	s.backends = opts.Backends
	if s.backends == nil {
		specs, err := PluginSpecs(cfg, opts.Executable)
		if err != nil {
			_ = s.audit.Close()
			return nil, err
		}
		h, err := StartHost(ctx, specs, HostOptions{Logger: opts.Logger, Stderr: opts.PluginStderr, Started: s.receipts.started})
		if err != nil {
			_ = s.audit.Close()
			return nil, err
		}
		s.host, s.backends = h, h
	}
	s.receipts.start()
	s.migrator = newMigrator(s)
	s.migrator.loadOverlay()
	s.engine = s.newEngine()
	s.migrator.resume()
	if s.shared != nil {
		s.shared.run()
	}
	built = true
	return s, nil
}

// PluginSpecs turns the configured backends into plugin launch specs:
// built-ins run as `<executable> plugin serve <type>`, external ones by path.
func PluginSpecs(cfg *Config, executable string) ([]PluginSpec, error) {
	specs := make([]PluginSpec, 0, len(cfg.Backends))
	for i, b := range cfg.Backends {
		spec := PluginSpec{Backend: b.Name, Settings: b.Settings}
		if b.External() {
			spec.Path, spec.SHA256 = b.Plugin, b.SHA256
		} else {
			if executable == "" {
				return nil, fmt.Errorf("backends[%d].plugin: built-in %q needs the path of the secretgate executable", i, b.Plugin)
			}
			spec.Path, spec.Args = executable, []string{"plugin", "serve", b.Plugin}
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.engine }

// Routing is the project -> backend table, for migrations.
func (s *Server) Routing() *Routing { return s.routing }

// Host is the plugin host (nil when the server was built on Options.Backends).
func (s *Server) Host() *Host { return s.host }

// Serve answers HTTP (or HTTPS, when TLS is configured) on ln until
// Shutdown. It returns nil after a graceful shutdown.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(&slogWriter{log: s.log, limit: newBurstLimiter(httpLogRate, httpLogBurst)}, "", 0),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.srv = srv
	s.mu.Unlock()
	var err error
	if s.cfg.TLS.Enabled() {
		cert, cerr := s.cfg.TLS.KeyPair()
		if cerr != nil {
			return cerr
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, waits for in-flight requests until
// ctx ends, then stops every plugin and closes the audit log.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	srv := s.srv
	s.mu.Unlock()
	var err error
	if srv != nil {
		if err = srv.Shutdown(ctx); err != nil {
			// Drain time is up: cut the stragglers so nothing outlives us.
			_ = srv.Close()
		}
	}
	// Running migrations stop before their plugins do, and journal
	// themselves so that the next start resumes them. So do the watch
	// pollers (watchpoll.go).
	s.shared.stopLoops()
	s.migrator.stop(ctx)
	s.shared.close(ctx)
	s.events().close()
	s.live.Load().retire(0)
	// Before the plugins stop: the receipts of answered writes are synced
	// in the log and forgotten, so that a clean stop recovers none.
	s.receipts.close()
	if s.host != nil {
		s.host.Close()
	}
	if aerr := s.audit.Close(); aerr != nil && err == nil {
		err = fmt.Errorf("closing audit log: %w", aerr)
	}
	return err
}

// slogWriter sends net/http's own error log (TLS handshakes, ...) to slog,
// at a bounded rate: every bad connection writes a line, and connections
// cost a client nothing. A line after a pause says how many were dropped.
type slogWriter struct {
	log   *slog.Logger
	limit *burstLimiter
}

func (w *slogWriter) Write(b []byte) (int, error) {
	if !w.limit.allow() {
		return len(b), nil
	}
	if n := w.limit.takeDropped(); n > 0 {
		w.log.Warn("http server", "message", string(trimNL(b)), "similar_lines_dropped", n)
		return len(b), nil
	}
	w.log.Warn("http server", "message", string(trimNL(b)))
	return len(b), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Context keys of the per-request state.
const (
	ctxKeyRequestID = "sg.request_id"
	// ctxKeyClientRequestID is the X-Request-Id the client sent, if sane.
	ctxKeyClientRequestID = "sg.client_request_id"
	ctxKeyCause           = "sg.cause"
	ctxKeySubject         = "sg.subject"
	ctxKeyAction          = "sg.action"
	ctxKeyRoute           = "sg.route"
	ctxKeyWriteDone       = "sg.write_done"
)

func (s *Server) newEngine() *gin.Engine {
	ginModeOnce.Do(func() { gin.SetMode(gin.ReleaseMode) })
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = false
	e.ContextWithFallback = true
	e.Use(s.recovery, endWrites, nosniff, s.requestIDs, s.observe, limitBody)
	e.NoRoute(func(c *gin.Context) {
		abortWith(c, newAPIError(http.StatusNotFound, api.CodeNotFound, "no such route"))
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", func(c *gin.Context) {
		c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		c.Status(http.StatusOK)
		s.metrics.write(c.Writer, s.backends.Status(), s.migrator.running())
		fmt.Fprintf(c.Writer, "# HELP secretgate_audit_records_dropped_total Audit records of failed authentication not written because they came faster than the limit.\n"+
			"# TYPE secretgate_audit_records_dropped_total counter\nsecretgate_audit_records_dropped_total %d\n", s.authFails.droppedCount())
		s.receipts.writeMetrics(c.Writer)
	})

	v1 := e.Group("/v1/projects/:project/secrets", noStore)
	route := func(method, path, action string, h gin.HandlerFunc) {
		v1.Handle(method, path, withAction(action), s.authenticate, s.authorizeProject, h)
	}
	route(http.MethodGet, "", ActionList, s.list)
	route(http.MethodPost, "", ActionCreate, s.create)
	route(http.MethodGet, "/:name", ActionRead, s.get)
	route(http.MethodGet, "/:name/metadata", ActionList, s.metadata)
	route(http.MethodGet, "/:name/versions", ActionList, s.versions)
	route(http.MethodPut, "/:name", ActionUpdate, s.replace)
	route(http.MethodPatch, "/:name", ActionUpdate, s.patch)
	route(http.MethodDelete, "/:name", ActionDelete, s.delete)
	route(http.MethodPost, "/:name/copy", ActionRead, s.copySecret)
	route(http.MethodPost, "/:name/rollback", ActionUpdate, s.rollback)
	e.GET("/v1/projects", noStore, withAction(ActionList), s.authenticate, s.listProjects)
	s.registerMigrations(e)
	s.registerOpenAPI(e)
	s.registerResolve(e)
	s.registerEvents(e)
	s.registerVaultAPI(e)
	if s.cfg.UI {
		webui.Register(e)
	}
	return e
}

// nosniff stops browsers from guessing a content type for any answer (the
// API's JSON included), so no response can be rendered as HTML or script.
func nosniff(c *gin.Context) {
	c.Header("X-Content-Type-Options", "nosniff")
	c.Next()
}

// recovery turns a panic into 500 internal. Neither the client nor the log
// gets the panic's value (it could hold anything); the log gets its type, a
// runtime error's message, and the stack.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		what := fmt.Sprintf("%T", r)
		if re, ok := r.(runtime.Error); ok {
			what = re.Error()
		}
		s.log.Error("panic in handler", "request_id", requestID(c), "route", c.FullPath(), "panic", what, "stack", string(debug.Stack()))
		if !c.Writer.Written() {
			abortWith(c, newAPIError(http.StatusInternalServerError, api.CodeInternal, "internal error"))
		} else {
			c.Abort()
		}
	}()
	c.Next()
}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestIDs gives every request an id of the gateway's own making, echoed
// in X-Request-Id: a client cannot choose the id under which the audit log
// files its request. A sane X-Request-Id sent by the client is kept beside
// it (the audit record's client_request_id), for correlation.
func (s *Server) requestIDs(c *gin.Context) {
	if id := c.GetHeader("X-Request-Id"); requestIDRe.MatchString(id) {
		c.Set(ctxKeyClientRequestID, id)
	}
	id := uuid.NewString()
	c.Set(ctxKeyRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(ctxKeyRequestID) }

// observe records metrics and logs server errors (never a body).
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	s.metrics.observe(c.Request.Method, c.FullPath(), status, time.Since(start))
	if status >= 500 {
		attrs := []any{"request_id", requestID(c), "method", c.Request.Method, "route", c.FullPath(), "status", status}
		if cause, ok := c.Get(ctxKeyCause); ok {
			// Backend errors name secrets and fields, never values (the
			// Backend contract).
			attrs = append(attrs, "error", fmt.Sprint(cause))
		}
		s.log.Warn("request failed", attrs...)
	}
}

// limitBody caps every request body at MaxBodyBytes.
func limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		abortWith(c, newAPIError(http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, "request body is larger than %d bytes", MaxBodyBytes))
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

// noStore keeps secret responses out of every cache.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

func withAction(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Set(ctxKeyAction, action)
		c.Next()
	}
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.shared.readyError(); err != nil {
		abortWith(c, newAPIError(http.StatusServiceUnavailable, api.CodeBackendUnavailable, "not ready: %v", err))
		return
	}
	failed := s.backends.PingAll(ctx)
	if len(failed) == 0 {
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	names := make([]string, 0, len(failed))
	for n := range failed {
		names = append(names, n)
	}
	sortStrings(names)
	abortWith(c, newAPIError(http.StatusServiceUnavailable, api.CodeBackendUnavailable, "backends not ready: %v", names))
}
