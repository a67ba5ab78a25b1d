package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/docs"
	"github.com/secretgate/secretgate/gateway/webui"
	"github.com/secretgate/secretgate/sdk"
)

// docs/openapi.yaml is held to the gateway both ways: its paths are exactly
// the gin routes, and the gateway's real answers validate against its
// schemas, so neither can drift without a red test.

// specURL names the document for the schema compiler; $refs inside it
// ("#/components/schemas/Meta") resolve against it.
const specURL = "file:///openapi.json"

var oaMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPISpec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
	// templates are the spec's paths as regexps, for matching a request.
	templates map[string]*regexp.Regexp
}

func loadOpenAPI(t *testing.T, raw []byte) *openAPISpec {
	t.Helper()
	var y any
	require.NoError(t, yaml.Unmarshal(raw, &y), "docs/openapi.yaml is not YAML")
	// Through JSON, so that the compiler gets the JSON data model
	// (json.Number, map[string]any); a mapping with non-string keys fails here.
	j, err := json.Marshal(y)
	require.NoError(t, err, "docs/openapi.yaml does not convert to JSON")
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	require.NoError(t, err)
	m, ok := doc.(map[string]any)
	require.True(t, ok, "the document is not an object")
	require.Equal(t, "3.1.0", m["openapi"])
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // the dialect of OpenAPI 3.1
	c.AssertFormat()
	require.NoError(t, c.AddResource(specURL, doc))
	s := &openAPISpec{doc: m, compiler: c, schemas: map[string]*jsonschema.Schema{}, templates: map[string]*regexp.Regexp{}}
	for p := range s.paths(t) {
		re := regexp.QuoteMeta(p)
		re = regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(re, `[^/]+`)
		s.templates[p] = regexp.MustCompile("^" + re + "$")
	}
	return s
}

func (s *openAPISpec) paths(t *testing.T) map[string]any {
	t.Helper()
	p, ok := s.doc["paths"].(map[string]any)
	require.True(t, ok, "the document has no paths")
	return p
}

// pointerEscape escapes one JSON pointer token.
func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// at returns the node at a JSON pointer ("/paths/~1healthz/get").
func (s *openAPISpec) at(t *testing.T, ptr string) any {
	t.Helper()
	var cur any = s.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := cur.(type) {
		case map[string]any:
			var ok bool
			cur, ok = n[tok]
			require.True(t, ok, "%s: no member %q", ptr, tok)
		case []any:
			i, err := strconv.Atoi(tok)
			require.True(t, err == nil && i >= 0 && i < len(n), "%s: no item %q", ptr, tok)
			cur = n[i]
		default:
			t.Fatalf("%s: nothing below %q", ptr, tok)
		}
	}
	return cur
}

// resolve follows an OpenAPI $ref (of a response, header or parameter) and
// returns the object and its pointer, so that schemas below it can be
// compiled by location.
func (s *openAPISpec) resolve(t *testing.T, ptr string) (map[string]any, string) {
	t.Helper()
	for range 8 {
		m, ok := s.at(t, ptr).(map[string]any)
		require.True(t, ok, "%s is not an object", ptr)
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, ptr
		}
		require.True(t, strings.HasPrefix(ref, "#/"), "%s: only local $refs are used", ptr)
		ptr = strings.TrimPrefix(ref, "#")
	}
	t.Fatalf("%s: $ref loop", ptr)
	return nil, ""
}

func (s *openAPISpec) schema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	if sch, ok := s.schemas[ptr]; ok {
		return sch
	}
	sch, err := s.compiler.Compile(specURL + "#" + ptr)
	require.NoError(t, err, "compiling the schema at %s", ptr)
	s.schemas[ptr] = sch
	return sch
}

// operation finds the spec's path template and operation for a request.
func (s *openAPISpec) operation(t *testing.T, method, path string) (template, ptr string) {
	t.Helper()
	path, _, _ = strings.Cut(path, "?")
	for tpl, re := range s.templates {
		if re.MatchString(path) {
			require.Empty(t, template, "%s matches both %s and %s", path, template, tpl)
			template = tpl
		}
	}
	require.NotEmpty(t, template, "no path of the spec matches %s", path)
	ptr = "/paths/" + pointerEscape(template) + "/" + strings.ToLower(method)
	_, ok := s.paths(t)[template].(map[string]any)[strings.ToLower(method)]
	require.True(t, ok, "the spec has no %s %s", method, template)
	return template, ptr
}

// ginPath turns an OpenAPI path template into gin's syntax.
func ginPath(p string) string {
	return regexp.MustCompile(`\{([a-z_]+)\}`).ReplaceAllString(p, ":$1")
}

// openAPIEnv is a gateway over in-memory backends, with the projects and
// subjects the answers below need.
type openAPIEnv struct{ srv *Server }

// throttledBackend refuses every read for a quota of its service.
type throttledBackend struct{ *memBackend }

func (throttledBackend) Read(context.Context, sdk.Ref) (sdk.Secret, error) {
	return sdk.Secret{}, sdk.Throttled("600 reads per minute", 2*time.Second)
}

// openAPIBackends serves backend "q" as a throttled one.
type openAPIBackends struct{ *memBackends }

func (b openAPIBackends) Backend(name string) (sdk.Backend, error) {
	if name == "q" {
		return throttledBackend{newMemBackend()}, nil
	}
	return b.memBackends.Backend(name)
}

// newOpenAPIEnv builds the gateway; project "broken" is served by backend
// "z", which is missing (answers 503) or, with down, configured but down
// (and then /readyz answers 503 too).
func newOpenAPIEnv(t *testing.T, ui, down bool) *openAPIEnv {
	t.Helper()
	mem := map[string]*memBackend{"a": newMemBackend(), "b": newMemBackend()}
	if down {
		mem["z"] = &memBackend{secrets: map[string]*memSecret{}, down: true}
	}
	cfg := &Config{
		UI:       ui,
		Backends: []BackendConfig{{Name: "a"}, {Name: "b"}, {Name: "q"}, {Name: "z"}},
		Projects: []ProjectConfig{
			{Name: "payments", Backend: "a"}, {Name: "billing", Backend: "b"}, {Name: "frozen", Backend: "a"},
			{Name: "quota", Backend: "q"}, {Name: "broken", Backend: "z"},
		},
	}
	all := []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}
	grants := map[string]fakeGrant{
		"editor/payments": {actions: []string{ActionList, ActionCreate, ActionUpdate, ActionDelete}},
	}
	for _, p := range []string{"payments", "billing", "frozen", "quota", "broken"} {
		grants["admin/"+p] = fakeGrant{actions: all}
	}
	srv, err := New(context.Background(), cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorizer: fakeAuthz{tokens: map[string]string{"t-admin": "admin", "t-editor": "editor"}, grants: grants},
		Auditor:    &memAuditor{},
		Backends:   openAPIBackends{&memBackends{m: mem}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	require.NoError(t, srv.Routing().SetReadOnly("frozen", true))
	return &openAPIEnv{srv: srv}
}

type oaResp struct {
	code int
	hdr  http.Header
	body []byte
}

// do sends one request; body is nil, a string, an io.Reader or a value
// to encode as JSON.
func (e *openAPIEnv) do(t *testing.T, method, path, token string, body any, hdrs ...string) oaResp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	return oaResp{code: w.Code, hdr: w.Header(), body: w.Body.Bytes()}
}

// check validates one answer against the spec: its status is documented
// for the operation, its required headers are there and match their
// schemas, and its body matches the schema of its content type. It
// returns the template and method of the operation.
func (s *openAPISpec) check(t *testing.T, method, path string, r oaResp) string {
	t.Helper()
	template, opPtr := s.operation(t, method, path)
	code := strconv.Itoa(r.code)
	responses, _ := s.at(t, opPtr+"/responses").(map[string]any)
	require.Contains(t, responses, code, "%s %s answered %d, which the spec does not list; body %s", method, template, r.code, r.body)
	resp, respPtr := s.resolve(t, opPtr+"/responses/"+code)

	headers, _ := resp["headers"].(map[string]any)
	for name := range headers {
		h, hPtr := s.resolve(t, respPtr+"/headers/"+pointerEscape(name))
		v := r.hdr.Get(name)
		if req, _ := h["required"].(bool); req {
			require.NotEmpty(t, v, "%s %s %d: header %s is required by the spec", method, template, r.code, name)
		}
		if v != "" {
			require.NoError(t, s.schema(t, hPtr+"/schema").Validate(v), "%s %s %d: header %s = %q", method, template, r.code, name, v)
		}
	}

	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		require.Empty(t, r.body, "%s %s %d: the spec documents no body", method, template, r.code)
		return strings.ToUpper(method) + " " + template
	}
	ct, _, _ := strings.Cut(r.hdr.Get("Content-Type"), ";")
	require.Contains(t, content, ct, "%s %s %d: content type %q is not documented", method, template, r.code, ct)
	schPtr := respPtr + "/content/" + pointerEscape(ct) + "/schema"
	var body any = string(r.body)
	if ct == "application/json" {
		var err error
		body, err = jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
		require.NoError(t, err, "%s %s %d: body is not JSON: %s", method, template, r.code, r.body)
	}
	require.NoError(t, s.schema(t, schPtr).Validate(body), "%s %s %d: body %s", method, template, r.code, r.body)
	return strings.ToUpper(method) + " " + template
}

// slowBody fails as a read past the server's ReadTimeout does.
type slowBody struct{}

func (slowBody) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

func TestOpenAPIServedAndWellFormed(t *testing.T) {
	e := newOpenAPIEnv(t, false, false)
	r := e.do(t, "GET", OpenAPIPath, "", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, "application/yaml", r.hdr.Get("Content-Type"))
	require.Equal(t, "nosniff", r.hdr.Get("X-Content-Type-Options"))
	require.Equal(t, docs.OpenAPI, r.body)

	s := loadOpenAPI(t, r.body)
	// Every path parameter is declared exactly once per operation, and
	// every declared one is in the template; every schema compiles.
	paramRe := regexp.MustCompile(`\{([a-z_]+)\}`)
	for p, item := range s.paths(t) {
		want := map[string]bool{}
		for _, m := range paramRe.FindAllStringSubmatch(p, -1) {
			want[m[1]] = true
		}
		pathPtr := "/paths/" + pointerEscape(p)
		for _, method := range oaMethods {
			if _, ok := item.(map[string]any)[method]; !ok {
				continue
			}
			opPtr := pathPtr + "/" + method
			got := map[string]bool{}
			for _, lvl := range []string{pathPtr, opPtr} {
				params, _ := s.at(t, lvl).(map[string]any)["parameters"].([]any)
				for i := range params {
					prm, prmPtr := s.resolve(t, lvl+"/parameters/"+strconv.Itoa(i))
					s.schema(t, prmPtr+"/schema")
					if prm["in"] == "path" {
						name, _ := prm["name"].(string)
						require.False(t, got[name], "%s %s declares path parameter %s twice", method, p, name)
						require.Equal(t, true, prm["required"], "%s %s: path parameter %s must be required", method, p, name)
						got[name] = true
					}
				}
			}
			require.Equal(t, want, got, "%s %s: path parameters", method, p)
			if _, ok := s.at(t, opPtr).(map[string]any)["requestBody"]; ok {
				s.schema(t, opPtr+"/requestBody/content/application~1json/schema")
			}
			responses, _ := s.at(t, opPtr+"/responses").(map[string]any)
			require.NotEmpty(t, responses, "%s %s has no responses", method, p)
			for code := range responses {
				resp, respPtr := s.resolve(t, opPtr+"/responses/"+code)
				content, _ := resp["content"].(map[string]any)
				for ct := range content {
					s.schema(t, respPtr+"/content/"+pointerEscape(ct)+"/schema")
				}
			}
		}
	}
}

// The spec lists exactly the gin routes. The web UI's routes (GET and HEAD
// of /, /ui and /ui/*asset, with `ui: true`) are not API and are left out.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	s := loadOpenAPI(t, docs.OpenAPI)
	e := newOpenAPIEnv(t, true, false)
	engine, ok := e.srv.Handler().(*gin.Engine)
	require.True(t, ok)

	ui := gin.New()
	webui.Register(ui)
	isUI := map[string]bool{}
	for _, r := range ui.Routes() {
		isUI[r.Method+" "+r.Path] = true
	}

	var routes []string
	for _, r := range engine.Routes() {
		if !isUI[r.Method+" "+r.Path] {
			routes = append(routes, r.Method+" "+r.Path)
		}
	}
	var documented []string
	for p, item := range s.paths(t) {
		for _, method := range oaMethods {
			if _, ok := item.(map[string]any)[method]; ok {
				documented = append(documented, strings.ToUpper(method)+" "+ginPath(p))
			}
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	require.Equal(t, routes, documented, "gin routes (first) against the paths of docs/openapi.yaml (second)")
	t.Logf("%d routes, all in docs/openapi.yaml", len(routes))
}

// Real answers of every operation, its success and its main errors,
// validate against the spec; and every operation's success is exercised.
func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	s := loadOpenAPI(t, docs.OpenAPI)
	e := newOpenAPIEnv(t, false, false)
	r := newOpenAPIEnv(t, false, true).do(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	s.check(t, "GET", "/readyz", r)
	const sec = "/v1/projects/payments/secrets"
	data := map[string]string{"user": "u", "password": "p"}
	big := strings.Repeat("x", MaxBodyBytes+10)

	// A migration that has finished, for the report routes.
	r = e.do(t, "POST", "/v1/projects/billing/secrets", "t-admin", map[string]any{"name": "moved", "data": data})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	r = e.do(t, "POST", "/v1/migrations", "t-admin", map[string]any{"source": "b", "target": "a", "projects": []string{"billing"}, "dry_run": true})
	require.Equal(t, http.StatusAccepted, r.code, "%s", r.body)
	succeeded := map[string]bool{s.check(t, "POST", "/v1/migrations", r): true}
	var started struct{ ID string }
	require.NoError(t, json.Unmarshal(r.body, &started))
	require.Eventually(t, func() bool {
		r := e.do(t, "GET", "/v1/migrations/"+started.ID, "t-admin", nil)
		return r.code == http.StatusOK && !bytes.Contains(r.body, []byte(`"state":"running"`))
	}, 10*time.Second, 10*time.Millisecond)

	tests := []struct {
		name, method, path, token string
		body                      any
		hdrs                      []string
		status                    int
	}{
		{"healthz", "GET", "/healthz", "", nil, nil, 200},
		{"readyz", "GET", "/readyz", "", nil, nil, 200},
		{"metrics", "GET", "/metrics", "", nil, nil, 200},
		{"openapi", "GET", OpenAPIPath, "", nil, nil, 200},
		{"projects", "GET", "/v1/projects", "t-admin", nil, nil, 200},
		{"projects no token", "GET", "/v1/projects", "", nil, nil, 401},
		{"projects two tokens", "GET", "/v1/projects", "t-admin", nil, []string{"Authorization", "Bearer t-editor"}, 400},

		{"create", "POST", sec, "t-admin", map[string]any{"name": "db", "data": data, "labels": map[string]string{"env": "prod"}}, nil, 201},
		{"create second", "POST", sec, "t-admin", map[string]any{"name": "db2", "data": data}, nil, 201},
		{"create exists", "POST", sec, "t-admin", map[string]any{"name": "db", "data": data}, nil, 409},
		{"create null", "POST", sec, "t-admin", `{"name":"x","data":null}`, nil, 400},
		{"create too large", "POST", sec, "t-admin", `{"name":"x","data":{"a":"` + big + `"}}`, nil, 413},
		{"create too slow", "POST", sec, "t-admin", slowBody{}, nil, 408},
		{"create frozen", "POST", "/v1/projects/frozen/secrets", "t-admin", map[string]any{"name": "x", "data": data}, nil, 409},
		{"list page", "GET", sec + "?page_size=1", "t-admin", nil, nil, 200},
		{"list last page", "GET", sec + "?prefix=db2", "t-admin", nil, nil, 200},
		{"list bad token", "GET", sec + "?page_token=p1.nope", "t-admin", nil, nil, 400},
		{"list unknown project", "GET", "/v1/projects/nowhere/secrets", "t-admin", nil, nil, 404},
		{"list bad token header", "GET", sec, "nope", nil, nil, 401},
		{"read", "GET", sec + "/db", "t-admin", nil, nil, 200},
		{"read version", "GET", sec + "/db?version=1", "t-admin", nil, nil, 200},
		{"resolve", "POST", "/v1/resolve", "t-admin", map[string]any{"refs": []string{"sg://payments/db/user"}}, nil, 200},
		{"read denied", "GET", sec + "/db", "t-editor", nil, nil, 403},
		{"read missing", "GET", sec + "/nope", "t-admin", nil, nil, 404},
		{"read throttled", "GET", "/v1/projects/quota/secrets/db", "t-admin", nil, nil, 429},
		{"read unavailable", "GET", "/v1/projects/broken/secrets/db", "t-admin", nil, nil, 503},
		{"metadata", "GET", sec + "/db/metadata", "t-editor", nil, nil, 200},
		{"metadata missing", "GET", sec + "/nope/metadata", "t-admin", nil, nil, 404},
		{"versions", "GET", sec + "/db/versions", "t-admin", nil, nil, 200},
		{"versions missing", "GET", sec + "/nope/versions", "t-admin", nil, nil, 404},
		{"replace", "PUT", sec + "/db", "t-admin", map[string]any{"data": data}, []string{"If-Match", `"1"`}, 200},
		{"replace stale", "PUT", sec + "/db", "t-admin", map[string]any{"data": data}, []string{"If-Match", `"1"`}, 412},
		{"replace missing", "PUT", sec + "/nope", "t-admin", map[string]any{"data": data}, nil, 404},
		{"patch", "PATCH", sec + "/db", "t-editor", map[string]any{"set": map[string]string{"k": "v"}, "unset": []string{"user"}}, nil, 200},
		{"patch empty", "PATCH", sec + "/db", "t-editor", map[string]any{}, nil, 400},
		{"copy", "POST", sec + "/db/copy", "t-admin", map[string]any{"to_project": "billing"}, nil, 201},
		{"copy overwrite", "POST", sec + "/db/copy", "t-admin", map[string]any{"to_project": "billing", "overwrite": true}, nil, 200},
		{"copy exists", "POST", sec + "/db/copy", "t-admin", map[string]any{"as": "db2"}, nil, 409},
		{"rollback", "POST", sec + "/db/rollback", "t-admin", map[string]any{"version": 1}, nil, 200},
		{"versions with keys", "GET", sec + "/db/versions?keys=true", "t-admin", nil, nil, 200},
		{"versions bad keys", "GET", sec + "/db/versions?keys=1", "t-admin", nil, nil, 400},
		{"rollback missing version", "POST", sec + "/db/rollback", "t-admin", map[string]any{"version": 99}, nil, 404},
		{"rollback stale", "POST", sec + "/db/rollback", "t-admin", map[string]any{"version": 1}, []string{"If-Match", `"1"`}, 412},
		{"copy unknown field", "POST", sec + "/db/copy", "t-admin", map[string]any{"to": "billing"}, nil, 400},
		{"delete stale", "DELETE", sec + "/db2", "t-admin", nil, []string{"If-Match", `"9"`}, 412},
		{"delete", "DELETE", sec + "/db2", "t-admin", nil, []string{"If-Match", `"1"`}, 204},
		{"delete missing", "DELETE", sec + "/db2", "t-admin", nil, nil, 404},
		{"events bad glob", "GET", "/v1/projects/payments/events?secrets=[", "t-admin", nil, nil, 400},
		{"events unknown project", "GET", "/v1/projects/nowhere/events", "t-admin", nil, nil, 404},
		{"migrations", "GET", "/v1/migrations", "t-admin", nil, nil, 200},
		{"migration", "GET", "/v1/migrations/" + started.ID, "t-admin", nil, nil, 200},
		{"migration hidden", "GET", "/v1/migrations/" + started.ID, "t-editor", nil, nil, 404},
		{"migrate bad request", "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "a", "projects": []string{"payments"}}, nil, 400},
		{"migrate not permitted", "POST", "/v1/migrations", "t-editor", map[string]any{"source": "a", "target": "b", "projects": []string{"payments"}}, nil, 403},
		{"migrate unknown project", "POST", "/v1/migrations", "t-admin", map[string]any{"source": "a", "target": "b", "projects": []string{"nowhere"}}, nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.token, tc.body, tc.hdrs...)
			require.Equal(t, tc.status, r.code, "%s", r.body)
			op := s.check(t, tc.method, tc.path, r)
			if r.code < 300 {
				succeeded[op] = true
			}
		})
	}
	// The event stream never ends by itself: it is read until a short
	// context ends (events_test.go), replaying the events written above.
	r = e.stream(t, "/v1/projects/payments/events?secrets=db*", "t-admin", "Last-Event-ID", "0")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Contains(t, string(r.body), "event: secret.created\n")
	succeeded[s.check(t, "GET", "/v1/projects/payments/events", r)] = true

	for p, item := range s.paths(t) {
		for _, method := range oaMethods {
			if _, ok := item.(map[string]any)[method]; ok {
				op := strings.ToUpper(method) + " " + p
				require.True(t, succeeded[op], "no success of %s was checked against the spec", op)
			}
		}
	}
}

// The request schemas say what the strict decoder does: bodies the spec
// accepts are accepted, and bodies the decoder refuses (null, unknown,
// case-variant or missing members, values out of range) the spec refuses.
func TestOpenAPIRequestBodiesMatchDecoder(t *testing.T) {
	s := loadOpenAPI(t, docs.OpenAPI)
	e := newOpenAPIEnv(t, false, false)
	const sec = "/v1/projects/payments/secrets"
	r := e.do(t, "POST", sec, "t-admin", `{"name":"db","data":{"k":"v"}}`)
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	tests := []struct {
		name, method, path, body string
		status                   int
		schemaOK                 bool
	}{
		{"create", "POST", sec, `{"name":"a1","data":{"k":"v"},"labels":{"env":"prod"}}`, 201, true},
		{"create data null", "POST", sec, `{"name":"a2","data":null}`, 400, false},
		{"create labels null", "POST", sec, `{"name":"a2","data":{"k":"v"},"labels":null}`, 400, false},
		{"create value null", "POST", sec, `{"name":"a2","data":{"k":null}}`, 400, false},
		{"create no data", "POST", sec, `{"name":"a2"}`, 400, false},
		{"create empty data", "POST", sec, `{"name":"a2","data":{}}`, 400, false},
		{"create unknown member", "POST", sec, `{"name":"a2","data":{"k":"v"},"valu":"x"}`, 400, false},
		{"create bad key", "POST", sec, `{"name":"a2","data":{"a b":"v"}}`, 400, false},
		{"create bad label", "POST", sec, `{"name":"a2","data":{"k":"v"},"labels":{"Env":"x"}}`, 400, false},
		{"create bad name", "POST", sec, `{"name":"-a","data":{"k":"v"}}`, 400, false},
		{"replace", "PUT", sec + "/db", `{"data":{"k":"w"},"labels":{}}`, 200, true},
		{"replace case variant", "PUT", sec + "/db", `{"DATA":{"k":"w"}}`, 400, false},
		{"replace number", "PUT", sec + "/db", `{"data":{"k":1}}`, 400, false},
		{"patch", "PATCH", sec + "/db", `{"set":{"j":"x"},"unset":["k"]}`, 200, true},
		{"patch labels only", "PATCH", sec + "/db", `{"labels":{"env":"dev"}}`, 200, true},
		{"patch empty", "PATCH", sec + "/db", `{}`, 400, false},
		{"patch set null", "PATCH", sec + "/db", `{"set":{"j":null}}`, 400, false},
		{"patch unset null", "PATCH", sec + "/db", `{"unset":null}`, 400, false},
		{"copy", "POST", sec + "/db/copy", `{"as":"db-copy","version":0,"overwrite":false}`, 201, true},
		{"copy negative version", "POST", sec + "/db/copy", `{"as":"db-copy2","version":-1}`, 400, false},
		{"copy bad project", "POST", sec + "/db/copy", `{"to_project":"Bad_P"}`, 400, false},
		{"copy overwrite null", "POST", sec + "/db/copy", `{"as":"db-copy2","overwrite":null}`, 400, false},
		{"rollback", "POST", sec + "/db/rollback", `{"version":1}`, 200, true},
		{"rollback zero", "POST", sec + "/db/rollback", `{"version":0}`, 400, false},
		{"rollback no version", "POST", sec + "/db/rollback", `{}`, 400, false},
		{"migrate", "POST", "/v1/migrations", `{"source":"b","target":"a","projects":["billing"],"versions":"all","on_conflict":"skip","dry_run":true,"workers":2}`, 202, true},
		{"migrate no projects", "POST", "/v1/migrations", `{"source":"b","target":"a","projects":[]}`, 400, false},
		{"migrate bad versions", "POST", "/v1/migrations", `{"source":"b","target":"a","projects":["billing"],"versions":"some"}`, 400, false},
		{"migrate too many workers", "POST", "/v1/migrations", `{"source":"b","target":"a","projects":["billing"],"workers":65}`, 400, false},
		{"migrate dry_run null", "POST", "/v1/migrations", `{"source":"b","target":"a","projects":["billing"],"dry_run":null}`, 400, false},
		{"migrate unknown member", "POST", "/v1/migrations", `{"source":"b","target":"a","projects":["billing"],"force":true}`, 400, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, opPtr := s.operation(t, tc.method, tc.path)
			body, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.body))
			require.NoError(t, err)
			verr := s.schema(t, opPtr+"/requestBody/content/application~1json/schema").Validate(body)
			if tc.schemaOK {
				require.NoError(t, verr, "the spec refuses a body the gateway accepts")
			} else {
				require.Error(t, verr, "the spec accepts a body the gateway refuses")
			}
			r := e.do(t, tc.method, tc.path, "t-admin", tc.body)
			require.Equal(t, tc.status, r.code, "%s", r.body)
			s.check(t, tc.method, tc.path, r)
		})
	}
}
