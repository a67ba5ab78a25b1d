package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secretgate/secretgate/sdk/api"
	"github.com/stretchr/testify/require"
)

// listAll walks every page of a listing, asserting that no page is empty
// while a token says more follows.
func (h *harness) listAll(t *testing.T, token, query string) []string {
	t.Helper()
	var names []string
	tok := ""
	for i := 0; i < 100; i++ {
		q := query
		if tok != "" {
			q += "&page_token=" + url.QueryEscape(tok)
		}
		r := h.do(t, "GET", base+"?"+q, token, nil)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		var page api.SecretList
		require.NoError(t, json.Unmarshal(r.body, &page))
		if page.NextPageToken != "" {
			require.NotEmpty(t, page.Secrets, "an empty page with a token (%s)", q)
		}
		for _, m := range page.Secrets {
			names = append(names, m.Name)
		}
		if tok = page.NextPageToken; tok == "" {
			return names
		}
	}
	t.Fatal("listing did not end")
	return nil
}

func TestListNeverRevealsHiddenNames(t *testing.T) {
	h := newHarness(t)
	hidden := []string{"aaa-hidden", "m-hidden", "zz-hidden", "stripe", "s-hidden"}
	visible := []string{"stripe-a", "stripe-b", "stripe-c"}
	for _, n := range append(append([]string{}, hidden...), visible...) {
		h.create(t, n, map[string]string{"k": canary})
	}
	for _, size := range []string{"1", "2", "3", "4", "100"} {
		require.Equal(t, visible, h.listAll(t, "t-stripe", "page_size="+size), "page_size %s", size)
	}
	require.Len(t, h.listAll(t, "t-admin", "page_size=2"), len(hidden)+len(visible))

	// A prefix that only hidden names match: an empty page and no token.
	for _, prefix := range []string{"aaa-hidden", "aaa", "m", "z"} {
		r := h.do(t, "GET", base+"?page_size=1&prefix="+prefix, "t-stripe", nil)
		require.Equal(t, http.StatusOK, r.code)
		require.JSONEq(t, `{"secrets":[],"next_page_token":""}`, string(r.body), "prefix %s", prefix)
	}

	// Tokens are sealed: nothing in one spells a name.
	r := h.do(t, "GET", base+"?page_size=1", "t-stripe", nil)
	var page api.SecretList
	require.NoError(t, json.Unmarshal(r.body, &page))
	require.NotEmpty(t, page.NextPageToken)
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(page.NextPageToken, pageTokenPrefix))
	for _, n := range append(hidden, visible...) {
		require.NotContains(t, page.NextPageToken+string(raw), n)
		require.NotContains(t, page.NextPageToken, base64.RawURLEncoding.EncodeToString([]byte(n)))
	}

	// Replayed by another subject, on another prefix or project, or
	// tampered with: 400 naming page_token.
	tok := url.QueryEscape(page.NextPageToken)
	flipped := []byte(page.NextPageToken)
	flipped[len(flipped)-3] ^= 1
	for _, tc := range []struct{ name, path, token string }{
		{"other subject", base + "?page_size=1&page_token=" + tok, "t-admin"},
		{"other prefix", base + "?page_size=1&prefix=stripe-&page_token=" + tok, "t-stripe"},
		{"other project", "/v1/projects/other/secrets?page_token=" + tok, "t-admin"},
		{"tampered", base + "?page_token=" + url.QueryEscape(string(flipped)), "t-stripe"},
		{"a name", base + "?page_token=" + base64.RawURLEncoding.EncodeToString([]byte("aaa-hidden")), "t-stripe"},
		{"too long", base + "?page_token=p1." + strings.Repeat("A", 5000), "t-stripe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, "GET", tc.path, tc.token, nil)
			require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
			code, msg := errCode(t, r)
			require.Equal(t, api.CodeInvalidArgument, code)
			require.Contains(t, msg, "invalid page_token")
		})
	}
	// The same token still works for its owner.
	r = h.do(t, "GET", base+"?page_size=1&page_token="+tok, "t-stripe", nil)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
}

func TestPatchSizeErrorRevealsNoStoredSize(t *testing.T) {
	h := newHarness(t)
	h.create(t, "db", map[string]string{"password": canary + strings.Repeat("p", 37)})
	r := h.do(t, "PATCH", base+"/db", "t-editor", map[string]any{"set": map[string]string{"z": strings.Repeat("x", 65536)}})
	require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
	_, msg := errCode(t, r)
	for _, n := range regexp.MustCompile(`\d+`).FindAllString(msg, -1) {
		require.Contains(t, []string{"100", "65536"}, n, "a number in %q is not a configured limit", msg)
	}
	require.Contains(t, msg, "invalid set")
}

func TestNoInputIsSilentlyAltered(t *testing.T) {
	tests := []struct {
		name, method, path, body, field string
	}{
		{"invalid UTF-8 in a value", "POST", base, `{"name":"n","data":{"k":"a` + "\xff" + `b"}}`, "data.k"},
		{"lone high surrogate in a value", "POST", base, `{"name":"n","data":{"k":"\ud800"}}`, "data.k"},
		{"lone low surrogate in a value", "POST", base, `{"name":"n","data":{"k":"x\udc00"}}`, "data.k"},
		{"high surrogate then a letter", "POST", base, `{"name":"n","data":{"k":"\ud800\u0041"}}`, "data.k"},
		{"null value", "POST", base, `{"name":"n","data":{"k":null}}`, "data.k"},
		{"null label", "POST", base, `{"name":"n","data":{"k":"v"},"labels":{"env":null}}`, "labels.env"},
		{"invalid UTF-8 in a label", "POST", base, `{"name":"n","data":{"k":"v"},"labels":{"env":"` + "\xc3" + `"}}`, "labels.env"},
		{"null labels", "POST", base, `{"name":"n","data":{"k":"v"},"labels":null}`, "labels"},
		{"duplicate data member", "POST", base, `{"name":"n","data":{"k":"v"},"data":{"k":"w"}}`, "data"},
		{"duplicate key in data", "POST", base, `{"name":"n","data":{"k":"v","k":"w"}}`, "data.k"},
		{"members differing in case", "POST", base, `{"name":"n","data":{"k":"v"},"DATA":{"k":"w"}}`, "body"},
		{"member in the wrong case", "POST", base, `{"name":"n","DATA":{"k":"v"}}`, "body"},
		{"replace: surrogate", "PUT", base + "/db", `{"data":{"password":"\udfff"}}`, "data.password"},
		{"replace: null", "PUT", base + "/db", `{"data":{"password":null}}`, "data.password"},
		{"patch: set null", "PATCH", base + "/db", `{"set":{"password":null}}`, "set.password"},
		{"patch: invalid UTF-8", "PATCH", base + "/db", `{"set":{"password":"` + "\xff" + `"}}`, "set.password"},
		{"patch: label surrogate", "PATCH", base + "/db", `{"labels":{"env":"\ud800"}}`, "labels.env"},
		{"patch: duplicate set", "PATCH", base + "/db", `{"set":{"a":"1"},"set":{"b":"2"}}`, "set"},
		{"patch: Set", "PATCH", base + "/db", `{"Set":{"a":"1"}}`, "body"},
		{"invalid UTF-8 in a member name", "PATCH", base + "/db", `{"set":{"a` + "\xff" + `":"1"}}`, "set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, "db", map[string]string{"password": canary})
			r := h.do(t, tc.method, tc.path, "t-admin", tc.body)
			require.Equal(t, http.StatusBadRequest, r.code, "%s", r.body)
			code, msg := errCode(t, r)
			require.Equal(t, api.CodeInvalidArgument, code)
			require.True(t, strings.HasPrefix(msg, "invalid "+tc.field+":"), "message %q should name %s", msg, tc.field)
			// Nothing was stored: db is still version 1 with its value,
			// and n was not created.
			sec := h.mem.secrets[key("payments", "db")]
			require.Len(t, sec.versions, 1)
			require.Equal(t, map[string]string{"password": canary}, sec.versions[0])
			require.Nil(t, h.mem.secrets[key("payments", "n")])
		})
	}

	// What is valid is stored exactly: a surrogate pair, U+FFFD as sent,
	// escapes and line breaks.
	h := newHarness(t)
	r := h.do(t, "POST", base, "t-admin", `{"name":"ok","data":{"emoji":"\ud83d\ude00","fffd":"a`+"\uFFFD"+`b","pem":"-----BEGIN-----\r\nAAA\n-----END-----\n","esc":"\"\\\/"}}`)
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	got := h.mem.secrets[key("payments", "ok")].versions[0]
	require.Equal(t, map[string]string{"emoji": "😀", "fffd": "a\uFFFDb", "pem": "-----BEGIN-----\r\nAAA\n-----END-----\n", "esc": `"\/`}, got)
}

func TestMetricsLabelsComeFromFixedSets(t *testing.T) {
	h := newHarness(t)
	for _, m := range []string{"RTFOO", "RTBAR", "X-1", "get"} {
		h.do(t, m, "/x", "", nil)
		h.do(t, m, base, "t-admin", nil)
	}
	r := h.do(t, "GET", "/metrics", "", nil)
	body := string(r.body)
	for _, m := range []string{"RTFOO", "RTBAR", "X-1", `"get"`} {
		require.NotContains(t, body, m)
	}
	require.Contains(t, body, `method="other"`)
}

func TestFailedAuthenticationCannotFloodTheAuditLog(t *testing.T) {
	h := newHarness(t)
	const flood = 1000
	for i := 0; i < flood; i++ {
		r := h.do(t, "POST", base, "wrong-token", `{"name":"x","data":{"k":"v"}}`)
		require.Equal(t, http.StatusUnauthorized, r.code)
	}
	unauth := 0
	for _, rec := range h.audit.records() {
		if rec.Outcome == api.CodeUnauthenticated {
			unauth++
		}
	}
	require.Greater(t, unauth, 0, "failed authentication is still audited")
	require.Less(t, unauth, authFailBurst+50, "a flood must not write a record per request")
	// Authenticated requests are always audited.
	before := len(h.audit.records())
	for i := 0; i < 50; i++ {
		require.Equal(t, http.StatusOK, h.do(t, "GET", base, "t-admin", nil).code)
	}
	require.Len(t, h.audit.records(), before+50)
	m := h.do(t, "GET", "/metrics", "", nil)
	require.Regexp(t, `secretgate_audit_records_dropped_total [1-9][0-9]*`, string(m.body))
}

func TestTwoAuthorizationHeadersAreRefused(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("GET", base, nil)
	req.Header.Add("Authorization", "Bearer t-admin")
	req.Header.Add("Authorization", "Bearer t-reader")
	w := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(w, req)
	require.Equal(t, http.StatusBadRequest, w.Code, "%s", w.Body)
	require.Contains(t, w.Body.String(), "invalid Authorization")
}

func TestEmptyBearerTokenNeverAuthenticates(t *testing.T) {
	// An authorizer that (wrongly) knows the empty token: the gateway's
	// own guard must still refuse an empty bearer.
	h := newHarness(t)
	authz := h.srv.live.Load().authz.(fakeAuthz)
	authz.tokens[""] = "admin"
	for _, hdr := range []string{"Bearer ", "Bearer", "Bearer    ", "bearer \t"} {
		req, _ := http.NewRequest("GET", base, nil)
		req.Header.Set("Authorization", hdr)
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		require.Equal(t, http.StatusUnauthorized, w.Code, "header %q", hdr)
	}
}

func TestSlowBodyAnswers408(t *testing.T) {
	h := newHarness(t)
	h.srv.readTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = h.srv.Serve(ln) }()
	t.Cleanup(func() { _ = h.srv.Shutdown(context.Background()) })

	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	body := `{"name":"slow","data":{"k":"` + canary + `"}}`
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t-admin\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", base, len(body), body[:10])
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "%s", got)
	require.Contains(t, string(got), api.CodeRequestTimeout)
	require.NotContains(t, string(got), canary)
	require.Nil(t, h.mem.secrets[key("payments", "slow")])
}

// A subject that may not migrate a project learns nothing about which
// backends exist: a real backend name and a guessed one get one answer.
func TestMigrationDoesNotRevealBackendNames(t *testing.T) {
	e := newMigrateEnv(t)
	answer := func(token, source, target string) (int, string) {
		r := e.h.do(t, "POST", "/v1/migrations", token, map[string]any{"source": source, "target": target, "projects": []string{"payments"}})
		return r.code, string(r.body)
	}
	realCode, realBody := answer("t-editor", "a", "b")
	require.Equal(t, http.StatusForbidden, realCode)
	for _, guess := range [][2]string{{"guess", "b"}, {"a", "guess"}, {"guess", "other-guess"}} {
		code, body := answer("t-editor", guess[0], guess[1])
		require.Equal(t, realCode, code, "source %s target %s", guess[0], guess[1])
		require.Equal(t, realBody, body)
	}
	// Someone who may migrate is told plainly.
	code, body := answer("t-admin", "guess", "b")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "invalid source")
}

// Page tokens are sealed with a fresh nonce each time: with AES-GCM a
// repeated nonce under one key would give away the XOR of two cursors and
// allow forgeries.
func TestPageTokensNeverRepeatANonce(t *testing.T) {
	p, err := newPageSealer()
	require.NoError(t, err)
	cur := pageCursor{Backend: "mem", Token: "t", After: "stripe-a"}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		tok, err := p.seal(cur, "stripe", "payments", "")
		require.NoError(t, err)
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, pageTokenPrefix))
		require.NoError(t, err)
		nonce := string(raw[:p.aead.NonceSize()])
		require.False(t, seen[nonce], "nonce repeated after %d seals", i)
		seen[nonce] = true
		got, err := p.open(tok, "stripe", "payments", "")
		require.NoError(t, err)
		require.Equal(t, cur, got)
	}
}
