package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

func randomCanary(t *testing.T) string {
	t.Helper()
	var b [12]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "CANARY" + hex.EncodeToString(b[:])
}

// roleEnv starts a gateway with one subject per role on "payments", a
// glob-narrowed editor, a subject bound only to "other", and a second file
// backend holding project "isolated".
func roleEnv(t *testing.T) *testenv.Server {
	t.Helper()
	dir := t.TempDir()
	on := func(role string) []testenv.Grant { return []testenv.Grant{{Project: "payments", Role: role}} }
	return testenv.Start(t, testenv.Options{
		Dir:      dir,
		Backends: []testenv.Backend{testenv.FileBackend("local", dir), testenv.FileBackend("second", dir)},
		Projects: []testenv.Project{{Name: "payments", Backend: "local"}, {Name: "other", Backend: "local"}, {Name: "isolated", Backend: "second"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "viewer", Grants: on("viewer")},
			{Name: "editor", Grants: on("editor")},
			{Name: "reader", Grants: on("reader")},
			{Name: "stripe", Grants: []testenv.Grant{{Project: "payments", Role: "admin", Secrets: []string{"stripe-*"}}}},
			{Name: "outsider", Grants: []testenv.Grant{{Project: "other", Role: "admin"}}},
		},
	})
}

const pay = "/v1/projects/payments/secrets"

func TestAPIEndToEnd(t *testing.T) {
	srv := roleEnv(t)
	admin := srv.Token("admin")
	canary := randomCanary(t)
	var errorBodies []string
	expect := func(r *testenv.Response, status int, code string) {
		t.Helper()
		require.Equal(t, status, r.Status, "%s", r.Body)
		require.NotEmpty(t, r.Header.Get("X-Request-Id"))
		if code != "" {
			require.Equal(t, code, r.ErrorCode(), "%s", r.Body)
			errorBodies = append(errorBodies, string(r.Body))
		}
	}

	// Create, then every read route.
	r := srv.Do(t, "POST", pay, admin, map[string]any{"name": "database-config", "data": map[string]string{"user": "app", "password": canary}, "labels": map[string]string{"env": "prod"}})
	expect(r, 201, "")
	require.Equal(t, `"1"`, r.Header.Get("ETag"))
	require.NotContains(t, string(r.Body), canary)

	r = srv.Do(t, "GET", pay, admin, nil)
	expect(r, 200, "")
	var list struct {
		Secrets []struct {
			Name string   `json:"name"`
			Keys []string `json:"keys"`
		} `json:"secrets"`
		NextPageToken string `json:"next_page_token"`
	}
	r.JSON(t, &list)
	require.Len(t, list.Secrets, 1)
	require.Equal(t, []string{"password", "user"}, list.Secrets[0].Keys)
	require.NotContains(t, string(r.Body), canary, "a list never shows values")

	r = srv.Do(t, "GET", pay+"/database-config", srv.Token("reader"), nil)
	expect(r, 200, "")
	require.Contains(t, string(r.Body), canary)
	r = srv.Do(t, "GET", pay+"/database-config/metadata", srv.Token("editor"), nil)
	expect(r, 200, "")
	require.NotContains(t, string(r.Body), canary)

	// PATCH rotates one key without knowing the others; PUT replaces.
	r = srv.Do(t, "PATCH", pay+"/database-config", srv.Token("editor"), map[string]any{"set": map[string]string{"password": "rotated"}}, "If-Match", `"1"`)
	expect(r, 200, "")
	require.Equal(t, `"2"`, r.Header.Get("ETag"))
	r = srv.Do(t, "PUT", pay+"/database-config", srv.Token("editor"), map[string]any{"data": map[string]string{"user": "app", "password": "third"}})
	expect(r, 200, "")
	r = srv.Do(t, "GET", pay+"/database-config?version=1", admin, nil)
	expect(r, 200, "")
	require.Contains(t, string(r.Body), canary)
	r = srv.Do(t, "GET", pay+"/database-config/versions", srv.Token("viewer"), nil)
	expect(r, 200, "")
	var vs struct {
		Versions []struct {
			Version int64 `json:"version"`
		} `json:"versions"`
	}
	r.JSON(t, &vs)
	require.Len(t, vs.Versions, 3)

	// Every error code the API can give without breaking a plugin (503 is
	// in TestPluginSIGKILL, audit failures in TestAuditFailsClosed).
	expect(srv.Do(t, "GET", pay, "", nil), 401, "unauthenticated")
	expect(srv.Do(t, "GET", pay, "wrong-token", nil), 401, "unauthenticated")
	expect(srv.Do(t, "GET", pay+"/database-config", srv.Token("editor"), nil), 403, "permission_denied")
	expect(srv.Do(t, "GET", pay+"/nope", admin, nil), 404, "not_found")
	expect(srv.Do(t, "GET", pay+"/database-config?version=99", admin, nil), 404, "not_found")
	expect(srv.Do(t, "POST", pay, admin, map[string]any{"name": "database-config", "data": map[string]string{"a": canary}}), 409, "already_exists")
	expect(srv.Do(t, "PUT", pay+"/database-config", admin, map[string]any{"data": map[string]string{"a": canary}}, "If-Match", `"1"`), 412, "version_mismatch")
	expect(srv.Do(t, "PATCH", pay+"/database-config", admin, map[string]any{"set": map[string]string{"a": canary}}, "If-Match", `"1"`), 412, "version_mismatch")
	expect(srv.Do(t, "DELETE", pay+"/database-config", admin, nil, "If-Match", `"1"`), 412, "version_mismatch")
	expect(srv.Do(t, "POST", pay, admin, `{"name":"big","data":{"a":"`+strings.Repeat(canary, 1<<20/len(canary)+1)+`"}}`), 413, "payload_too_large")
	expect(srv.Do(t, "POST", pay, admin, map[string]any{"name": "toolong", "data": map[string]string{"a": strings.Repeat(canary, 70000/len(canary))}}), 400, "invalid_argument")
	expect(srv.Do(t, "POST", pay, admin, `{"name":"x","data":{"a":"`+canary+`"},"dat":{}}`), 400, "invalid_argument")
	expect(srv.Do(t, "POST", pay, admin, `{"name":"x","data":{"a":"`+canary+`"`), 400, "invalid_argument")
	expect(srv.Do(t, "POST", pay, admin, map[string]any{"name": "bad name", "data": map[string]string{"a": canary}}), 400, "invalid_argument")
	expect(srv.Do(t, "PATCH", pay+"/database-config", admin, map[string]any{"unset": []string{"user", "password"}}), 400, "invalid_argument")
	expect(srv.Do(t, "GET", pay+"?page_size=5000", admin, nil), 400, "invalid_argument")
	for _, body := range errorBodies {
		require.NotContains(t, body, canary, "an error body echoed a value")
	}
	require.Contains(t, srv.Do(t, "PATCH", pay+"/database-config", admin, map[string]any{"unset": []string{"user", "password"}}).ErrorCode(), "invalid_argument")
	r = srv.Do(t, "PATCH", pay+"/database-config", admin, map[string]any{"unset": []string{"user", "password"}})
	require.Contains(t, string(r.Body), "unset")

	// Delete, and the name is free again at once.
	expect(srv.Do(t, "DELETE", pay+"/database-config", srv.Token("editor"), nil, "If-Match", `"3"`), 204, "")
	expect(srv.Do(t, "GET", pay+"/database-config/metadata", admin, nil), 404, "not_found")
	expect(srv.Do(t, "POST", pay, admin, map[string]any{"name": "database-config", "data": map[string]string{"a": "b"}}), 201, "")

	// Health and metrics.
	expect(srv.Do(t, "GET", "/healthz", "", nil), 200, "")
	expect(srv.Do(t, "GET", "/readyz", "", nil), 200, "")
	r = srv.Do(t, "GET", "/metrics", "", nil)
	expect(r, 200, "")
	require.Contains(t, string(r.Body), `secretgate_backend_up{backend="local"} 1`)
	require.NotContains(t, string(r.Body), "database-config")

	// The canary never reached the logs or the audit file.
	require.NotContains(t, srv.Stdout(), canary)
	require.NotContains(t, srv.Stderr(), canary)
	audit := srv.Audit()
	require.NotContains(t, audit, canary)
	require.NotContains(t, audit, admin, "tokens never reach the audit log")
	recs := srv.AuditRecords(t)
	require.NotEmpty(t, recs)
	for _, rec := range recs {
		for _, k := range []string{"time", "request_id", "subject", "action", "phase"} {
			require.Contains(t, rec, k)
		}
	}
}

func TestRoleMatrix(t *testing.T) {
	srv := roleEnv(t)
	admin := srv.Token("admin")
	seed := func(name string) {
		r := srv.Do(t, "POST", pay, admin, map[string]any{"name": name, "data": map[string]string{"k": "v"}})
		require.Equal(t, 201, r.Status, "%s", r.Body)
	}
	type action struct {
		name string
		do   func(tok, secret string) *testenv.Response
		ok   int
	}
	actions := []action{
		{"list", func(tok, _ string) *testenv.Response { return srv.Do(t, "GET", pay, tok, nil) }, 200},
		{"describe", func(tok, s string) *testenv.Response { return srv.Do(t, "GET", pay+"/"+s+"/metadata", tok, nil) }, 200},
		{"versions", func(tok, s string) *testenv.Response { return srv.Do(t, "GET", pay+"/"+s+"/versions", tok, nil) }, 200},
		{"read", func(tok, s string) *testenv.Response { return srv.Do(t, "GET", pay+"/"+s, tok, nil) }, 200},
		{"create", func(tok, s string) *testenv.Response {
			return srv.Do(t, "POST", pay, tok, map[string]any{"name": s + "-new", "data": map[string]string{"k": "v"}})
		}, 201},
		{"replace", func(tok, s string) *testenv.Response {
			return srv.Do(t, "PUT", pay+"/"+s, tok, map[string]any{"data": map[string]string{"k": "w"}})
		}, 200},
		{"patch", func(tok, s string) *testenv.Response {
			return srv.Do(t, "PATCH", pay+"/"+s, tok, map[string]any{"set": map[string]string{"j": "x"}})
		}, 200},
		{"delete", func(tok, s string) *testenv.Response { return srv.Do(t, "DELETE", pay+"/"+s, tok, nil) }, 204},
	}
	allowed := map[string][]string{
		"viewer": {"list", "describe", "versions"},
		"editor": {"list", "describe", "versions", "create", "replace", "patch", "delete"},
		"reader": {"list", "describe", "versions", "read"},
		"admin":  {"list", "describe", "versions", "read", "create", "replace", "patch", "delete"},
	}
	for _, role := range []string{"viewer", "editor", "reader", "admin"} {
		for _, a := range actions {
			t.Run(role+"/"+a.name, func(t *testing.T) {
				secret := fmt.Sprintf("m-%s-%s", role, a.name)
				seed(secret)
				r := a.do(srv.Token(role), secret)
				want := 403
				for _, ok := range allowed[role] {
					if ok == a.name {
						want = a.ok
					}
				}
				require.Equal(t, want, r.Status, "%s", r.Body)
				if want == 403 {
					require.Equal(t, "permission_denied", r.ErrorCode())
				}
			})
		}
	}

	t.Run("no binding is 404 for everything", func(t *testing.T) {
		seed("exists-for-sure")
		for _, a := range actions {
			r := a.do(srv.Token("outsider"), "exists-for-sure")
			require.Equal(t, 404, r.Status, "%s: %s", a.name, r.Body)
			r2 := a.do(srv.Token("outsider"), "never-existed")
			require.Equal(t, 404, r2.Status, "%s", a.name)
			require.Equal(t, r.ErrorCode(), r2.ErrorCode())
		}
	})

	t.Run("glob narrowing", func(t *testing.T) {
		seed("stripe-key")
		seed("paypal-key")
		tok := srv.Token("stripe")
		require.Equal(t, 200, srv.Do(t, "GET", pay+"/stripe-key", tok, nil).Status)
		require.Equal(t, 403, srv.Do(t, "GET", pay+"/paypal-key", tok, nil).Status)
		require.Equal(t, 403, srv.Do(t, "POST", pay, tok, map[string]any{"name": "paypal-2", "data": map[string]string{"k": "v"}}).Status)
		require.Equal(t, 201, srv.Do(t, "POST", pay, tok, map[string]any{"name": "stripe-2", "data": map[string]string{"k": "v"}}).Status)
		r := srv.Do(t, "GET", pay+"?page_size=1000", tok, nil)
		require.Equal(t, 200, r.Status)
		var list struct {
			Secrets []struct {
				Name string `json:"name"`
			} `json:"secrets"`
		}
		r.JSON(t, &list)
		var names []string
		for _, s := range list.Secrets {
			names = append(names, s.Name)
		}
		require.Equal(t, []string{"stripe-2", "stripe-key"}, names)
	})
}

func TestProjectIsolation(t *testing.T) {
	srv := roleEnv(t)
	admin := srv.Token("admin")
	for _, p := range []string{"payments", "other", "isolated"} {
		r := srv.Do(t, "POST", "/v1/projects/"+p+"/secrets", admin, map[string]any{"name": "shared-name", "data": map[string]string{"project": p}})
		require.Equal(t, 201, r.Status, "%s", r.Body)
	}
	for _, p := range []string{"payments", "other", "isolated"} {
		r := srv.Do(t, "GET", "/v1/projects/"+p+"/secrets/shared-name", admin, nil)
		require.Equal(t, 200, r.Status)
		require.Contains(t, string(r.Body), `"project":"`+p+`"`)
		require.Contains(t, string(r.Body), `"data":{"project":"`+p+`"}`)
	}
	require.Equal(t, 204, srv.Do(t, "DELETE", "/v1/projects/other/secrets/shared-name", admin, nil).Status)
	require.Equal(t, 200, srv.Do(t, "GET", "/v1/projects/payments/secrets/shared-name", admin, nil).Status)
	require.Equal(t, 200, srv.Do(t, "GET", "/v1/projects/isolated/secrets/shared-name", admin, nil).Status)
	// The outsider's binding on "other" gives nothing in "payments", and an
	// unconfigured project looks the same as one without a binding.
	r1 := srv.Do(t, "GET", "/v1/projects/payments/secrets/shared-name", srv.Token("outsider"), nil)
	r2 := srv.Do(t, "GET", "/v1/projects/no-such-project/secrets/shared-name", srv.Token("outsider"), nil)
	require.Equal(t, 404, r1.Status)
	require.Equal(t, 404, r2.Status)
}

func TestConcurrentPatches(t *testing.T) {
	srv := testenv.Start(t, testenv.Options{})
	tok := srv.Token("admin")
	const base = "/v1/projects/default/secrets"
	r := srv.Do(t, "POST", base, tok, map[string]any{"name": "database-config", "data": map[string]string{"host": "db"}})
	require.Equal(t, 201, r.Status, "%s", r.Body)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := srv.Try("PATCH", base+"/database-config", tok, map[string]any{"set": map[string]string{fmt.Sprintf("key%02d", i): fmt.Sprintf("v%d", i)}})
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("patch %d: %d %s", i, r.Status, r.Body)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	r = srv.Do(t, "GET", base+"/database-config", tok, nil)
	require.Equal(t, 200, r.Status)
	var sec struct {
		Version int64             `json:"version"`
		Data    map[string]string `json:"data"`
	}
	r.JSON(t, &sec)
	require.Equal(t, int64(1+n), sec.Version)
	require.Len(t, sec.Data, n+1)
	for i := 0; i < n; i++ {
		require.Equal(t, fmt.Sprintf("v%d", i), sec.Data[fmt.Sprintf("key%02d", i)])
	}
}
