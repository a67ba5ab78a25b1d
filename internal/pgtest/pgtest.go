// Package pgtest starts a real PostgreSQL server for tests.
//
// The server is Debian's PostgreSQL 15 (`apt-get install -y postgresql`),
// run from /usr/lib/postgresql/15/bin, or from the directory named by
// SECRETGATE_PG_BIN. When its binaries are missing tests skip, saying how to
// install them, except under CI=true where that is a failure.
//
// Each server is a fresh cluster: initdb in a new temporary directory, then
// postgres on a free 127.0.0.1 port with its unix socket in that directory,
// fsync and synchronous_commit on (durability is part of what the tests
// measure), stopped with `pg_ctl stop -m fast` (then killed) and removed when
// the test ends. PostgreSQL refuses to run as root, so as root the server
// runs as the `postgres` user and owns its directory; otherwise it runs as
// the current user.
//
// Authentication is `trust` for every connection: the server listens only
// on the loopback interface and lives as long as a test, and skipping
// password setup keeps the start fast (a second or two on an idle machine,
// most of it initdb). The superuser is `postgres`.
//
// A package whose tests share one server (the cheaper choice: databases
// are independent) calls Shared in its tests and Main in TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.Shared(t).NewDatabase(t)
//		...
//	}
//
// Outside tests (the load test of `make bench`), Launch starts the same
// server and the caller stops it with Stop; a missing installation is an
// error that matches ErrNotInstalled, for a caller that skips rather than
// fails.
package pgtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/secretgate/secretgate/internal/childproc"
	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/syncbuf"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// BinDirEnv names a directory holding initdb, postgres and pg_ctl, to use
// instead of DefaultBinDir.
const BinDirEnv = "SECRETGATE_PG_BIN"

// Superuser is the cluster's superuser (initdb -U).
const Superuser = "postgres"

// startTimeout is generous: initdb and the first checkpoint on a loaded
// two-core machine under -race can take several seconds.
const startTimeout = 60 * time.Second

// Server is one running PostgreSQL cluster.
type Server struct {
	// Port is the TCP port on 127.0.0.1.
	Port int

	bin  string
	dir  string // owned by the server's user: data/ and the unix socket
	cred *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{} // closed when cmd has exited
	out  *syncbuf.Buffer
}

// ErrNotInstalled is matched (errors.Is) by the error of Launch when the
// PostgreSQL server binaries are not there.
var ErrNotInstalled = errors.New("PostgreSQL server not installed")

// BinDir returns the directory of the PostgreSQL binaries, skipping (or,
// under CI=true, failing) the test when they are not there.
func BinDir(t testing.TB) string {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		cirequire.Unavailable(t, err.Error())
	}
	return dir
}

func binDir() (string, error) {
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		dir = DefaultBinDir
	}
	for _, name := range []string{"initdb", "postgres", "pg_ctl"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("pgtest: %w: no binary %s (install Debian's PostgreSQL 15: apt-get install -y postgresql; or set %s)", ErrNotInstalled, p, BinDirEnv)
		}
	}
	return dir, nil
}

// Start initialises and starts a new server that is stopped, and its
// directory removed, when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := BinDir(t)
	s, err := start(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch initialises and starts a new server for a program that is not a
// test; the caller stops it, and removes its directory, with Stop. The
// server also stops if the program dies without stopping it (its parent
// death signal), but then its directory stays behind.
func Launch() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	return start(bin)
}

var shared struct {
	mu  sync.Mutex
	s   *Server
	err error
}

// Shared returns the test binary's shared server, starting it on first use.
// Main stops it once the package's tests are done; tests must not Stop it.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := BinDir(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s == nil && shared.err == nil {
		shared.s, shared.err = start(bin)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s
}

// Main runs the tests, stops the shared server if one was started, and
// exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// StopShared stops the shared server, if one was started; for a TestMain
// that cannot use Main.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.s != nil {
		shared.s.Stop()
		shared.s = nil
	}
}

func start(bin string) (*Server, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, dir: dir, cred: cred}
	if err := s.initdb(); err != nil {
		s.removeDir()
		return nil, err
	}
	// A port picked by listening on :0 can be taken by someone else before
	// the server binds it; try a few.
	var lastErr error
	for range 3 {
		if s.Port, err = freePort(); err != nil {
			s.removeDir()
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
		s.halt()
	}
	s.removeDir()
	return nil, fmt.Errorf("pgtest: starting PostgreSQL: %w", lastErr)
}

// serverCredential is who runs the server: nil (the current user) unless
// the tests run as root, which PostgreSQL refuses; then the postgres user
// that Debian's package creates.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses to; no postgres user to run it as (Debian's postgresql package creates one): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// command runs one of the server's binaries as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + s.dir, "TZ=UTC"}
	setProcAttr(cmd, s.cred)
	return cmd
}

func (s *Server) initdb() error {
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: giving %s to the postgres user: %w", s.dir, err)
		}
	}
	// --no-sync: the fresh cluster's files need not survive a power cut;
	// the server itself runs with fsync on.
	out, err := s.command("initdb", "-D", s.dataDir(), "-A", "trust", "-U", Superuser,
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w: %s", err, tail(string(out)))
	}
	return nil
}

// start runs postgres in the foreground as a child of the test process, so
// that the kernel can stop it if the test process dies without cleaning up.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := s.command("postgres", "-D", s.dataDir(),
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "full_page_writes=on",
		"-c", "max_connections=300",
		"-c", "log_min_messages=warning",
		"-c", "timezone=UTC")
	s.out = &syncbuf.Buffer{Limit: 1 << 20}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	done, err := childproc.Start(cmd) // see childproc: Pdeathsig and threads
	if err != nil {
		return err
	}
	s.cmd, s.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := s.ping(ctx); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start: %s", tail(s.out.String()))
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %v: %s", startTimeout, tail(s.out.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Stop shuts the server down (fast: open transactions roll back) and
// removes its directory. Safe to call twice; a stopped server's databases
// are gone.
func (s *Server) Stop() {
	s.halt()
	s.removeDir()
}

// Halt shuts the server down like Stop but keeps its data, for Restart.
func (s *Server) Halt() { s.halt() }

// Restart starts a halted server again, on the same port with the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.halt()
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: restarting PostgreSQL: %v", err)
	}
}

func (s *Server) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	// What `pg_ctl stop -m fast` does, and it waits for the shutdown
	// checkpoint; the kill is for a server that does not stop.
	_ = s.command("pg_ctl", "stop", "-D", s.dataDir(), "-m", "fast", "-w", "-t", "20", "-s").Run()
	select {
	case <-s.done:
	case <-time.After(25 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

func (s *Server) removeDir() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// DSN is the URL of database on this server, as the superuser, over TCP.
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.Port, database)
}

// NewDatabase creates a database of its own for the test and returns its
// DSN. The database is dropped when the test ends (best effort: a test that
// leaves connections open keeps it, which costs nothing on a test server).
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if !s.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return s.DSN(name)
}

// Exec runs statements (no parameters) on database as the superuser.
func (s *Server) Exec(ctx context.Context, database, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN(database))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// Command prepares one of the package's client programs (pg_dump, psql),
// run from the server's binary directory as the server's user, with
// PGHOST and PGPORT set to this server.
func (s *Server) Command(name string, args ...string) *exec.Cmd {
	cmd := s.command(name, args...)
	cmd.Env = append(cmd.Env, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(s.Port), "PGUSER="+Superuser)
	return cmd
}

// Log returns the end of the server's log, for a failure message.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return tail(s.out.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last 20 lines of a program's output.
func tail(out string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// Dir is the server's directory (its data and unix socket).
func (s *Server) Dir() string { return s.dir }
