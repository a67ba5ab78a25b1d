package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

func TestPluginSIGKILLRecovers(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{})
	tok := srv.Token("admin")
	const path = "/v1/projects/default/secrets/db"
	require.Equal(t, 201, srv.Do(t, "POST", "/v1/projects/default/secrets", tok, map[string]any{"name": "db", "data": map[string]string{"k": "v"}}).Status)
	pids := srv.WaitPlugins(t, 1, 10*time.Second)
	gatewayPID := srv.PID()

	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	killed := time.Now()
	saw503 := false
	for {
		r, err := srv.Try("GET", path, tok, nil)
		require.NoError(t, err, "the gateway itself must keep answering")
		if r.Status == http.StatusServiceUnavailable {
			saw503 = true
			require.Equal(t, "1", r.Header.Get("Retry-After"))
			require.Equal(t, "backend_unavailable", r.ErrorCode())
		} else {
			require.Equal(t, 200, r.Status, "%s", r.Body)
			break
		}
		require.Less(t, time.Since(killed), 5*time.Second, "no recovery within 5s")
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, saw503, "requests right after the kill must get 503")
	require.Less(t, time.Since(killed), 5*time.Second)
	require.Equal(t, gatewayPID, srv.PID())
	require.False(t, srv.Exited())
	now := srv.WaitPlugins(t, 1, 5*time.Second)
	require.NotEqual(t, pids[0], now[0], "a new plugin process serves")
	require.Contains(t, srv.Stderr(), "restarted")
	require.Equal(t, 200, srv.Do(t, "GET", "/readyz", "", nil).Status)
}

func TestSIGTERMDrainsAndLeavesNoOrphans(t *testing.T) {
	dir := t.TempDir()
	srv := testenv.Start(t, testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{testenv.FileBackend("local", dir), testenv.FileBackend("second", dir)},
		Projects: []testenv.Project{{Name: "default", Backend: "local"}, {Name: "two", Backend: "second"}},
	})
	tok := srv.Token("admin")
	pids := srv.WaitPlugins(t, 2, 10*time.Second)

	// An in-flight request: headers and half the body sent before SIGTERM,
	// the rest after. Shutdown must wait for it.
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	body := `{"name":"inflight","data":{"k":"v"}}`
	_, err = fmt.Fprintf(conn, "POST /v1/projects/default/secrets HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", u.Host, tok, len(body), body[:10])
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)

	require.NoError(t, srv.Signal(syscall.SIGTERM))
	time.Sleep(500 * time.Millisecond)
	require.False(t, srv.Exited(), "the server must wait for the in-flight request")
	for _, p := range pids {
		require.True(t, testenv.Alive(p), "plugins stop only after the drain")
	}
	_, err = conn.Write([]byte(body[10:]))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	require.Equal(t, 201, resp.StatusCode)
	_ = resp.Body.Close()

	require.Equal(t, 0, srv.Wait(t, 20*time.Second))
	for _, p := range pids {
		require.Eventually(t, func() bool { return !testenv.Alive(p) }, 5*time.Second, 20*time.Millisecond, "plugin %d outlived the gateway", p)
	}
	require.Contains(t, srv.Stderr(), "draining")
}

func TestSIGINTStopsPlugins(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{})
	pids := srv.WaitPlugins(t, 1, 10*time.Second)
	require.NoError(t, srv.Signal(syscall.SIGINT))
	require.Equal(t, 0, srv.Wait(t, 20*time.Second))
	require.Eventually(t, func() bool { return !testenv.Alive(pids[0]) }, 5*time.Second, 20*time.Millisecond)
}

func TestAuditFailsClosed(t *testing.T) {
	dir := t.TempDir()
	const base = "/v1/projects/default/secrets"
	srv := testenv.Start(t, testenv.Options{Dir: dir})
	tok := srv.Token("admin")
	require.Equal(t, 201, srv.Do(t, "POST", base, tok, map[string]any{"name": "db", "data": map[string]string{"k": "original"}}).Status)
	require.Equal(t, 0, srv.Stop(t))

	// Same backend files, but an audit sink that fails every write.
	broken := testenv.Start(t, testenv.Options{Dir: dir, AuditPath: "/dev/full"})
	tok = broken.Token("admin")
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"PUT", base + "/db", map[string]any{"data": map[string]string{"k": "changed"}}},
		{"PATCH", base + "/db", map[string]any{"set": map[string]string{"k": "changed"}}},
		{"DELETE", base + "/db", nil},
		{"POST", base, map[string]any{"name": "new", "data": map[string]string{"k": "v"}}},
		{"GET", base + "/db", nil},
	} {
		r := broken.Do(t, tc.method, tc.path, tok, tc.body)
		require.Equal(t, 503, r.Status, "%s %s: %s", tc.method, tc.path, r.Body)
		require.Equal(t, "backend_unavailable", r.ErrorCode())
		require.Equal(t, "1", r.Header.Get("Retry-After"))
	}
	require.Contains(t, broken.Stderr(), "audit write failed")
	require.Equal(t, 0, broken.Stop(t))

	again := testenv.Start(t, testenv.Options{Dir: dir})
	tok = again.Token("admin")
	r := again.Do(t, "GET", base+"/db", tok, nil)
	require.Equal(t, 200, r.Status)
	require.Contains(t, string(r.Body), `"data":{"k":"original"}`)
	require.Contains(t, string(r.Body), `"version":1`)
	require.Equal(t, 404, again.Do(t, "GET", base+"/new/metadata", tok, nil).Status)
}

func TestExternalPluginChecksumRefused(t *testing.T) {
	wrong := strings.Repeat("ab", 32)
	res := testenv.RunServer(t, `audit: {path: ./audit.log}
backends:
  - name: custom
    plugin: /bin/sh
    sha256: `+wrong+`
projects: [{name: default, backend: custom}]
`, nil)
	require.NotEqual(t, 0, res.Code)
	require.Contains(t, res.Stderr, `backend "custom"`)
	require.Contains(t, res.Stderr, "/bin/sh")
	require.Contains(t, res.Stderr, wrong)
}
