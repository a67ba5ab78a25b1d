package webui

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

func engine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// Like the gateway: unknown routes answer a JSON 404.
	e.NoRoute(func(c *gin.Context) {
		c.JSON(http.StatusNotFound, gin.H{"error": gin.H{"code": "not_found", "message": "no such route"}})
	})
	e.GET("/v1/projects", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"projects": []any{}}) })
	Register(e)
	return e
}

func do(t *testing.T, h http.Handler, method, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func requireUIHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	h := w.Result().Header
	require.Equal(t, "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		h.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	require.Equal(t, "DENY", h.Get("X-Frame-Options"))
	require.Equal(t, "no-cache", h.Get("Cache-Control"))
}

func TestServesIndexAndAssets(t *testing.T) {
	e := engine()
	w := do(t, e, http.MethodGet, "/ui/")
	require.Equal(t, http.StatusOK, w.Code)
	requireUIHeaders(t, w)
	require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Body.String(), `<script type="module" src="app.js"></script>`)

	want := map[string]string{
		"index.html":   "text/html; charset=utf-8",
		"app.js":       "text/javascript; charset=utf-8",
		"api.js":       "text/javascript; charset=utf-8",
		"forms.js":     "text/javascript; charset=utf-8",
		"dom.js":       "text/javascript; charset=utf-8",
		"values.js":    "text/javascript; charset=utf-8",
		"dialogs.js":   "text/javascript; charset=utf-8",
		"events.js":    "text/javascript; charset=utf-8",
		"live.js":      "text/javascript; charset=utf-8",
		"copyref.js":   "text/javascript; charset=utf-8",
		"validate.js":  "text/javascript; charset=utf-8",
		"formkit.js":   "text/javascript; charset=utf-8",
		"dotenv.js":    "text/javascript; charset=utf-8",
		"envpaste.js":  "text/javascript; charset=utf-8",
		"random.js":    "text/javascript; charset=utf-8",
		"generator.js": "text/javascript; charset=utf-8",
		"history.js":   "text/javascript; charset=utf-8",
		"roles.js":     "text/javascript; charset=utf-8",
		"app.css":      "text/css; charset=utf-8",
		"favicon.svg":  "image/svg+xml",
	}
	require.ElementsMatch(t, keys(want), Names())
	for name, ct := range want {
		w := do(t, e, http.MethodGet, "/ui/"+name)
		require.Equal(t, http.StatusOK, w.Code, name)
		requireUIHeaders(t, w)
		require.Equal(t, ct, w.Header().Get("Content-Type"), name)

		disk, err := os.ReadFile(filepath.Join("static", name))
		require.NoError(t, err)
		require.Equal(t, string(disk), w.Body.String(), "%s is served as on disk", name)
		sum := sha256.Sum256(disk)
		etag := `"` + hex.EncodeToString(sum[:]) + `"`
		require.Equal(t, etag, w.Header().Get("ETag"), name)

		// Revalidation: same ETag, 304 without a body but with the headers.
		nm := do(t, e, http.MethodGet, "/ui/"+name, "If-None-Match", etag)
		require.Equal(t, http.StatusNotModified, nm.Code, name)
		require.Empty(t, nm.Body.String())
		requireUIHeaders(t, nm)

		head := do(t, e, http.MethodHead, "/ui/"+name)
		require.Equal(t, http.StatusOK, head.Code, name)
		require.Empty(t, head.Body.String())
		requireUIHeaders(t, head)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRedirects(t *testing.T) {
	e := engine()
	for _, p := range []string{"/", "/ui"} {
		w := do(t, e, http.MethodGet, p)
		require.Equal(t, http.StatusFound, w.Code, p)
		require.Equal(t, "/ui/", w.Header().Get("Location"), p)
		requireUIHeaders(t, w)
	}
}

func TestUnknownPaths(t *testing.T) {
	e := engine()
	for _, p := range []string{"/ui/nope.js", "/ui/static/app.js", "/ui/../ui/app.js", "/ui/%2e%2e/webui.go", "/ui/webui.go",
		"/ui/api.test.mjs", "/ui/app.js/", "/ui/index.html/x", "/ui//app.js", "/ui/package.json"} {
		w := do(t, e, http.MethodGet, p)
		require.Equal(t, http.StatusNotFound, w.Code, p)
		requireUIHeaders(t, w)
		require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"), p)
		require.JSONEq(t, `{"error":{"code":"not_found","message":"no such file in the web UI"}}`, w.Body.String(), p)
		require.Empty(t, w.Header().Get("ETag"))
	}
	// The API's routes and 404s are untouched.
	w := do(t, e, http.MethodGet, "/v1/projects")
	require.Equal(t, http.StatusOK, w.Code)
	require.Empty(t, w.Header().Get("Content-Security-Policy"))
	w = do(t, e, http.MethodGet, "/uix")
	require.Equal(t, http.StatusNotFound, w.Code)
	require.Contains(t, w.Body.String(), "no such route")
	// Only GET and HEAD: other methods fall to the gateway's JSON 404.
	w = do(t, e, http.MethodPost, "/ui/")
	require.Equal(t, http.StatusNotFound, w.Code)
}

func TestHandlerWithoutGin(t *testing.T) {
	h := Handler()
	w := do(t, h, http.MethodGet, "/ui/app.css")
	require.Equal(t, http.StatusOK, w.Code)
	requireUIHeaders(t, w)
	w = do(t, h, http.MethodPost, "/ui/")
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	require.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
	requireUIHeaders(t, w)
	w = do(t, h, http.MethodGet, "/elsewhere")
	require.Equal(t, http.StatusNotFound, w.Code)
}

var (
	srcRe     = regexp.MustCompile(`(?i)\s(?:src|href)\s*=\s*"([^"]*)"`)
	importRe  = regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]([^'"]+)['"]`)
	scriptRe  = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	styleAttr = regexp.MustCompile(`(?i)\sstyle\s*=`)
	onAttr    = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

func readStatic(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("static", name))
	require.NoError(t, err)
	return string(b)
}

// TestIndexReferencesEmbeddedAssets: every src/href of index.html (but the
// in-page anchors) and every import of the modules is an embedded asset.
func TestIndexReferencesEmbeddedAssets(t *testing.T) {
	index := readStatic(t, "index.html")
	refs := srcRe.FindAllStringSubmatch(index, -1)
	require.NotEmpty(t, refs)
	seen := map[string]bool{}
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "#") {
			continue
		}
		require.NotContains(t, ref, ":", "no absolute or external URL: %s", ref)
		require.False(t, strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "."), "a plain relative asset name: %s", ref)
		require.Contains(t, assets, ref, "index.html references %s, which is not embedded", ref)
		seen[ref] = true
	}
	require.True(t, seen["app.js"] && seen["app.css"], "index.html loads app.js and app.css")

	// Follow the module graph from app.js.
	todo := []string{"app.js"}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		for _, m := range importRe.FindAllStringSubmatch(readStatic(t, name), -1) {
			dep := strings.TrimPrefix(m[1], "./")
			require.NotContains(t, dep, "/", "%s imports %s: only sibling modules", name, m[1])
			require.Contains(t, assets, dep, "%s imports %s, which is not embedded", name, m[1])
			if !seen[dep] {
				seen[dep] = true
				todo = append(todo, dep)
			}
		}
	}
	for _, m := range []string{"api.js", "forms.js", "dom.js", "values.js", "dialogs.js", "events.js", "live.js", "copyref.js",
		"validate.js", "formkit.js", "dotenv.js", "envpaste.js", "random.js", "generator.js", "history.js", "roles.js"} {
		require.True(t, seen[m], "app.js's module graph reaches %s", m)
	}
}

func TestNoInlineScriptOrStyle(t *testing.T) {
	index := readStatic(t, "index.html")
	scripts := scriptRe.FindAllStringSubmatch(index, -1)
	require.NotEmpty(t, scripts)
	for _, m := range scripts {
		require.Empty(t, strings.TrimSpace(m[2]), "inline <script> body in index.html")
		require.Contains(t, m[1], `src="`, "every script is an external file")
	}
	require.False(t, styleAttr.MatchString(index), "style= attribute in index.html")
	require.NotContains(t, strings.ToLower(index), "<style", "<style> element in index.html")
	require.False(t, onAttr.MatchString(index), "inline event handler (on...=) in index.html")
	require.NotContains(t, strings.ToLower(index), "javascript:", "javascript: URL in index.html")
}

func TestNoHTMLInjectionSinksInJS(t *testing.T) {
	for _, name := range Names() {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		src := readStatic(t, name)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"} {
			require.False(t, strings.Contains(src, sink), "%s uses %s", name, sink)
		}
	}
}

func TestTestsAreNotEmbedded(t *testing.T) {
	for _, name := range Names() {
		require.NotContains(t, name, ".test.", name)
		require.NotEqual(t, "package.json", name)
	}
}
