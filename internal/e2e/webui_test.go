package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/cirequire"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/sdk/client"
)

// webuiDir is gateway/webui seen from this package's directory.
var webuiDir = filepath.Join("..", "..", "gateway", "webui")

// webuiRequireNode returns the path of node (v20 or later). Without it the test
// is skipped, except in CI (CI=true), where it fails.
func webuiRequireNode(t *testing.T) string {
	t.Helper()
	missing := func(reason string) { cirequire.Unavailable(t, "the web UI's JS tests need node: "+reason) }
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		missing("node --version failed: " + err.Error())
	}
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		missing("node --version printed " + strings.TrimSpace(string(out)))
	}
	if major, _ := strconv.Atoi(m[1]); major < 20 {
		missing("node v20 or later is needed, found " + strings.TrimSpace(string(out)))
	}
	return node
}

// webuiRunNode runs node with args in dir and env (added to a clean environment).
func webuiRunNode(t *testing.T, node, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETGATE_") && !strings.HasPrefix(kv, "NODE_OPTIONS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %v did not finish in time\nstdout:\n%s\nstderr:\n%s", args, out.String(), errb.String())
	}
	code = 0
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "running node")
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// webuiEnv: payments (file backend src) and billing (file backend dst);
// admin everywhere, an editor on both, a reader on payments.
func webuiEnv(t *testing.T) *testenv.Server {
	t.Helper()
	dir := t.TempDir()
	return testenv.Start(t, testenv.Options{
		Dir:      dir,
		UI:       true,
		Backends: []testenv.Backend{testenv.FileBackend("src", dir), testenv.FileBackend("dst", dir)},
		Projects: []testenv.Project{{Name: "payments", Backend: "src"}, {Name: "billing", Backend: "dst"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "payments", Role: "editor"}, {Project: "billing", Role: "editor"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
		},
	})
}

const webuiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func requireWebUIHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	require.Equal(t, webuiCSP, h.Get("Content-Security-Policy"), what)
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), what)
	require.Equal(t, "no-referrer", h.Get("Referrer-Policy"), what)
	require.Equal(t, "DENY", h.Get("X-Frame-Options"), what)
	require.Equal(t, "no-cache", h.Get("Cache-Control"), what)
	require.NotEmpty(t, h.Get("X-Request-Id"), what)
}

// TestWebUIServed fetches the UI from the real gateway: index.html and every
// asset it references (and the modules they import), with the security
// headers, the content types, the bytes on disk, ETag revalidation, the
// redirects and the 404s.
func TestWebUIServed(t *testing.T) {
	srv := webuiEnv(t)
	noFollow := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	for _, p := range []string{"/", "/ui"} {
		resp, _ := get(p)
		require.Equal(t, http.StatusFound, resp.StatusCode, p)
		require.Equal(t, "/ui/", resp.Header.Get("Location"), p)
		requireWebUIHeaders(t, p, resp.Header)
	}

	resp, index := get("/ui/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	requireWebUIHeaders(t, "/ui/", resp.Header)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	onDisk, err := os.ReadFile(filepath.Join(webuiDir, "static", "index.html"))
	require.NoError(t, err)
	require.Equal(t, string(onDisk), string(index), "the binary serves the index.html on disk")

	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	assets := map[string]bool{}
	for _, m := range regexp.MustCompile(`\s(?:src|href)="([^"#][^"]*)"`).FindAllStringSubmatch(string(index), -1) {
		assets[m[1]] = true
	}
	require.True(t, assets["app.js"] && assets["app.css"], "index.html loads app.js and app.css: %v", assets)
	importRe := regexp.MustCompile(`(?m)^\s*import\s[^'"]*'\./([^']+)'`)
	fetched := map[string]bool{}
	for len(assets) > 0 {
		for name := range assets {
			delete(assets, name)
			if fetched[name] {
				continue
			}
			fetched[name] = true
			resp, body := get("/ui/" + name)
			require.Equal(t, http.StatusOK, resp.StatusCode, name)
			requireWebUIHeaders(t, name, resp.Header)
			require.Equal(t, types[filepath.Ext(name)], resp.Header.Get("Content-Type"), name)
			disk, err := os.ReadFile(filepath.Join(webuiDir, "static", name))
			require.NoError(t, err)
			require.Equal(t, string(disk), string(body), "%s is served as on disk", name)
			sum := sha256.Sum256(disk)
			etag := `"` + hex.EncodeToString(sum[:]) + `"`
			require.Equal(t, etag, resp.Header.Get("ETag"), name)
			again, _ := get("/ui/"+name, "If-None-Match", etag)
			require.Equal(t, http.StatusNotModified, again.StatusCode, name)
			if strings.HasSuffix(name, ".js") {
				for _, m := range importRe.FindAllStringSubmatch(string(body), -1) {
					assets[m[1]] = true
				}
			}
		}
	}
	require.True(t, fetched["api.js"] && fetched["forms.js"], "the module graph was followed: %v", fetched)

	for _, p := range []string{"/ui/nope.js", "/ui/api.test.mjs", "/ui/../gateway/server.go", "/ui/static/app.js", "/ui/package.json"} {
		resp, body := get(p)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
		requireWebUIHeaders(t, p, resp.Header)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), "%s: %s", p, body)
		require.Equal(t, "not_found", e.Error.Code, p)
	}

	// The API is unchanged next to the UI.
	r := srv.Do(t, http.MethodGet, "/v1/projects", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	require.Equal(t, http.StatusNotFound, srv.Do(t, http.MethodGet, "/nope", "", nil).Status)
}

// TestWebUIFlow runs gateway/webui/jstest/e2e.mjs: the UI's api.js against
// the real gateway, as admin, editor and reader, then the UI's app.js (on
// the fake DOM) pasting a PEM key and a CR LF value. A random canary value is
// written through it; it must reach the backend and never any output, and
// the multi-line values must be stored byte for byte.
func TestWebUIFlow(t *testing.T) {
	node := webuiRequireNode(t)
	srv := webuiEnv(t)
	canary := randomCanary(t)
	pemValue, pemLine := randomPEM(t)
	crlfValue := canary + "-crlf\r\nsecond line\r\n\r\n"
	script, err := filepath.Abs(filepath.Join(webuiDir, "jstest", "e2e.mjs"))
	require.NoError(t, err)
	stdout, stderr, code := webuiRunNode(t, node, t.TempDir(), []string{
		"SECRETGATE_ADDR=" + srv.URL,
		"SECRETGATE_ADMIN_TOKEN=" + srv.Token("admin"),
		"SECRETGATE_EDITOR_TOKEN=" + srv.Token("editor"),
		"SECRETGATE_READER_TOKEN=" + srv.Token("reader"),
		"SECRETGATE_CANARY=" + canary,
		"SECRETGATE_PEM=" + pemValue,
		"SECRETGATE_CRLF=" + crlfValue,
	}, script)
	leaked := strings.Contains(stdout+stderr, canary) || strings.Contains(stdout+stderr, pemLine)
	if code != 0 && !leaked {
		t.Fatalf("e2e.mjs exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	require.False(t, leaked, "the canary is in the node script's output")
	require.Contains(t, stdout, "webui e2e: all steps passed")
	t.Logf("e2e.mjs:\n%s", stdout)

	// The value did go through: the copy in billing holds it (read as admin).
	r := srv.Do(t, http.MethodGet, "/v1/projects/billing/secrets/webui-db", srv.Token("admin"), nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var sec struct {
		Version int               `json:"version"`
		Data    map[string]string `json:"data"`
	}
	r.JSON(t, &sec)
	require.Equal(t, 2, sec.Version)
	require.True(t, sec.Data["password"] == canary, "the copy holds the value written through api.js")
	require.Equal(t, "app2", sec.Data["user"])

	// The values pasted in the UI, read back as a workload would.
	c, err := client.New(srv.URL, srv.Token("admin"))
	require.NoError(t, err)
	multi, err := c.Get(context.Background(), "payments", "webui-multiline")
	require.NoError(t, err)
	require.Equal(t, []string{"crlf", "pem"}, multi.Keys)
	sameBytes(t, "pasted PEM", pemValue, multi.Data["pem"])
	sameBytes(t, "pasted CR LF value", crlfValue, multi.Data["crlf"])

	// Every step was audited, by subject, with no value.
	audit := srv.Audit()
	require.Contains(t, audit, `"subject":"editor"`)
	require.Contains(t, audit, "webui-db")
	for what, out := range map[string]string{"server stdout": srv.Stdout(), "server stderr": srv.Stderr(), "audit log": audit} {
		require.False(t, strings.Contains(out, canary), "canary leaked into the %s", what)
		require.False(t, strings.Contains(out, pemLine), "the PEM leaked into the %s", what)
	}
}

// randomPEM is a PEM block of random bytes (LF line breaks, a final one),
// and one of its lines, to look for in outputs.
func randomPEM(t *testing.T) (value, line string) {
	t.Helper()
	key := make([]byte, 300)
	_, err := rand.Read(key)
	require.NoError(t, err)
	value = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
	return value, strings.Split(value, "\n")[1]
}

// webuiRequireBrowser returns the paths of Chromium and of a directory whose
// node_modules holds puppeteer-core (installed by .ci/run). Without them the
// browser test is skipped, except in CI (CI=true), where it fails.
func webuiRequireBrowser(t *testing.T) (chromium, puppeteerDir string) {
	t.Helper()
	chromium = os.Getenv("SECRETGATE_CHROMIUM")
	if chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		cirequire.Unavailable(t, "the web UI's browser test needs Chromium: apt-get install chromium, or set SECRETGATE_CHROMIUM")
	}
	puppeteerDir = os.Getenv("SECRETGATE_PUPPETEER_DIR")
	if puppeteerDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cirequire.Unavailable(t, "no cache directory to find puppeteer-core in: "+err.Error())
		}
		puppeteerDir = filepath.Join(cache, "secretgate-webui-browser")
	}
	if _, err := os.Stat(filepath.Join(puppeteerDir, "node_modules", "puppeteer-core", "package.json")); err != nil {
		cirequire.Unavailable(t, "the web UI's browser test needs puppeteer-core in "+puppeteerDir+
			": npm install --no-save --no-package-lock --prefix "+puppeteerDir+" puppeteer-core@24.43.1, or set SECRETGATE_PUPPETEER_DIR")
	}
	return chromium, puppeteerDir
}

// sameBytes checks got against want without printing either (they are
// secret values): on a difference it names the first differing byte.
func sameBytes(t *testing.T, what, want, got string) {
	t.Helper()
	if got == want {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	t.Errorf("%s: stored %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

// TestWebUIBrowser runs gateway/webui/jstest/browser.mjs: a real Chromium
// drives the UI of a real gateway as an editor, an admin and a reader (see
// the script for its steps). The secrets written through it are then read
// back through the API as a workload would: every value byte for byte as it
// was pasted, typed, loaded, generated or rolled back to; and none leaked
// into any output or log.
func TestWebUIBrowser(t *testing.T) {
	node := webuiRequireNode(t)
	chromium, puppeteerDir := webuiRequireBrowser(t)
	srv := webuiEnv(t)
	canary := randomCanary(t)

	pemValue, pemLine := randomPEM(t)
	crlfValue := canary + "-pasted\r\nsecond line\r\n\r\nlast line\r\n"
	typedValue := "first " + canary + "-typed\r\nsecond line\r\n"
	fileValue := "\ufeff" + canary + "-file\r\nLF line\nCR alone\rno break at the end \u00e9\U0001f511"
	envA := canary + "-env-a"
	envMulti := "first line " + canary + "-env-multi\nsecond line"
	replaced := canary + "-replaced"
	file := filepath.Join(t.TempDir(), "value.txt")
	require.NoError(t, os.WriteFile(file, []byte(fileValue), 0o600))

	script, err := filepath.Abs(filepath.Join(webuiDir, "jstest", "browser.mjs"))
	require.NoError(t, err)
	start := time.Now()
	stdout, stderr, code := webuiRunNode(t, node, t.TempDir(), []string{
		"SECRETGATE_ADDR=" + srv.URL,
		"SECRETGATE_EDITOR_TOKEN=" + srv.Token("editor"),
		"SECRETGATE_ADMIN_TOKEN=" + srv.Token("admin"),
		"SECRETGATE_READER_TOKEN=" + srv.Token("reader"),
		"SECRETGATE_PEM=" + pemValue,
		"SECRETGATE_CRLF=" + crlfValue,
		"SECRETGATE_TYPED=" + typedValue,
		"SECRETGATE_FILE=" + file,
		"SECRETGATE_ENV_A=" + envA,
		"SECRETGATE_ENV_MULTI=" + envMulti,
		"SECRETGATE_REPLACED=" + replaced,
		"SECRETGATE_CHROMIUM=" + chromium,
		"SECRETGATE_PUPPETEER_DIR=" + puppeteerDir,
	}, script)
	leaked := strings.Contains(stdout+stderr, canary) || strings.Contains(stdout+stderr, pemLine)
	if code != 0 && !leaked {
		t.Fatalf("browser.mjs exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	require.False(t, leaked, "a value is in the browser script's output")
	require.Regexp(t, `webui browser: all steps passed: \d+ steps in [\d.]+ s`, stdout)
	t.Logf("browser.mjs (%s):\n%s", time.Since(start).Round(100*time.Millisecond), stdout)

	c, err := client.New(srv.URL, srv.Token("admin"))
	require.NoError(t, err)
	ctx := context.Background()
	s, err := c.Get(ctx, "payments", "browser-multiline")
	require.NoError(t, err)
	require.Equal(t, []string{"crlf", "file", "generated", "pem", "typed"}, s.Keys)
	sameBytes(t, "pasted PEM", pemValue, s.Data["pem"])
	sameBytes(t, "pasted CR LF value", crlfValue, s.Data["crlf"])
	sameBytes(t, "typed CR LF value", typedValue, s.Data["typed"])
	sameBytes(t, "value from a file", fileValue, s.Data["file"])
	require.True(t, regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(s.Data["generated"]), "the generated value: 40 hexadecimal characters")

	// Pasted as a .env block, replaced, changed key by key, then rolled
	// back to version 1: version 1's values, byte for byte.
	env, err := c.Get(ctx, "payments", "browser-env")
	require.NoError(t, err)
	require.Equal(t, 7, int(env.Version))
	require.Equal(t, []string{"A", "MULTI"}, env.Keys)
	sameBytes(t, ".env value", envA, env.Data["A"])
	sameBytes(t, ".env multi-line value", envMulti, env.Data["MULTI"])
	require.Equal(t, map[string]string{"team": "pay", "env": "prod"}, env.Labels, "a rollback keeps the current labels")
	copied, err := c.Get(ctx, "billing", "browser-env")
	require.NoError(t, err)
	sameBytes(t, "the copy in billing", envA, copied.Data["A"])
	_, err = c.Get(ctx, "payments", "browser-env-copy")
	require.Error(t, err, "deleted in the UI")

	audit := srv.Audit()
	for what, out := range map[string]string{"server stdout": srv.Stdout(), "server stderr": srv.Stderr(), "audit log": audit} {
		require.False(t, strings.Contains(out, canary) || strings.Contains(out, pemLine), "a value leaked into the %s", what)
	}
}

// TestWebUIJSUnit runs the JS unit tests (node's built-in runner) of
// gateway/webui/jstest/: api.js against a fake fetch, forms.js, and app.js
// on a minimal fake DOM.
func TestWebUIJSUnit(t *testing.T) {
	node := webuiRequireNode(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	stdout, stderr, code := webuiRunNode(t, node, root, nil, "--test", "gateway/webui/jstest/")
	if code != 0 {
		t.Fatalf("node --test gateway/webui/jstest/ exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	require.Regexp(t, `(?m)^# pass [1-9]`, stdout)
	require.Regexp(t, `(?m)^# fail 0$`, stdout)
}

// Without `ui: true` the gateway serves no UI at all (as Vault), and every
// API answer carries nosniff.
func TestWebUIOffUnlessConfigured(t *testing.T) {
	srv := testenv.Start(t, srcDstOptions(t))
	for _, p := range []string{"/ui/", "/ui/app.js", "/"} {
		r := srv.Do(t, http.MethodGet, p, "", nil)
		require.Equal(t, http.StatusNotFound, r.Status, p)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), p)
	}
	r := srv.Do(t, http.MethodGet, "/v1/projects", srv.Token("admin"), nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"))
}

// `secretgate server --dev` (what `make run` starts) serves the UI.
func TestWebUIOnInDevMode(t *testing.T) {
	srv := testenv.StartDev(t, t.TempDir())
	r := srv.Do(t, http.MethodGet, "/ui/", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), "<html")
	require.Contains(t, srv.Stdout(), "Web UI: "+srv.URL+"/ui/", "the dev banner says where the UI is")
}
