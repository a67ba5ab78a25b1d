// Package webui serves the gateway's embedded web UI: a static page and a
// few ES modules that call the JSON API from the browser with the user's
// bearer token. The UI never displays a secret value; it only writes them.
//
// Every UI response carries a strict Content-Security-Policy (no inline
// script or style, no third-party origin), nosniff, no-referrer and
// frame-denying headers. Assets are revalidated on every use
// (Cache-Control: no-cache) against an ETag made of their SHA-256.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Prefix is where the UI is served.
const Prefix = "/ui/"

// ContentSecurityPolicy is the CSP of every UI response.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// The embed patterns name the served kinds of file only: JS tests and
// helpers (*.mjs, jstest/) stay out of the binary.
//
//go:embed static/*.html static/*.css static/*.js static/*.svg
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	name        string
	body        []byte
	contentType string
	etag        string
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// assets are the embedded files by name ("index.html", "app.js", ...).
var assets = loadAssets()

func loadAssets() map[string]*asset {
	out := map[string]*asset{}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic("webui: reading the embedded files: " + err.Error())
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		ct, ok := contentTypes[path.Ext(e.Name())]
		if !ok {
			continue
		}
		body, err := static.ReadFile("static/" + e.Name())
		if err != nil {
			panic("webui: reading the embedded files: " + err.Error())
		}
		sum := sha256.Sum256(body)
		out[e.Name()] = &asset{name: e.Name(), body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:]) + `"`}
	}
	if out["index.html"] == nil {
		panic("webui: index.html is not embedded")
	}
	return out
}

// Names lists the embedded files that are served under Prefix.
func Names() []string {
	names := make([]string, 0, len(assets))
	for n := range assets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Register adds the UI's routes: GET and HEAD of /ui/ (index.html),
// /ui/<asset>, and redirects of / and /ui to /ui/.
func Register(r gin.IRoutes) {
	h := gin.WrapF(ServeHTTP)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(method, "/", h)
		r.Handle(method, "/ui", h)
		r.Handle(method, Prefix+"*asset", h)
	}
}

// Handler is the UI as a plain net/http handler, for muxes other than gin;
// it answers the same paths as Register.
func Handler() http.Handler { return http.HandlerFunc(ServeHTTP) }

// ServeHTTP answers one UI request.
func ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the web UI answers GET and HEAD only")
		return
	}
	p := r.URL.Path
	if p == "/" || p == "/ui" {
		http.Redirect(w, r, Prefix, http.StatusFound)
		return
	}
	name, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such route")
		return
	}
	if name == "" {
		name = "index.html"
	}
	a := assets[name] // names with a '/' (or "..") are never keys
	if a == nil {
		writeError(w, http.StatusNotFound, "not_found", "no such file in the web UI")
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304, HEAD without a body,
	// and ranges.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
}

// writeError answers in the API's error envelope. Messages are constants:
// no part of the request is echoed.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Del("ETag")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":{"code":"` + code + `","message":"` + message + `"}}`))
}
