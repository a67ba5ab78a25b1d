package client_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

func newClient(t *testing.T, f *gatewaytest.Server, token string) *client.Client {
	t.Helper()
	c, err := client.New(f.URL, token, client.WithTimeout(5*time.Second))
	require.NoError(t, err)
	return c
}

func TestCRUDRoundTrip(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	c := newClient(t, f, gatewaytest.AdminToken)

	m, err := c.Create(ctx, "payments", "database-config", map[string]string{"host": "db", "password": "pw1"}, map[string]string{"env": "prod"})
	require.NoError(t, err)
	require.Equal(t, client.Metadata{
		Project: "payments", Name: "database-config", Keys: []string{"host", "password"}, Version: 1,
		Labels: map[string]string{"env": "prod"}, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}, m)
	require.False(t, m.CreatedAt.IsZero())

	_, err = c.Create(ctx, "payments", "database-config", map[string]string{"x": "y"}, nil)
	require.ErrorIs(t, err, sdk.ErrAlreadyExists)

	s, err := c.Get(ctx, "payments", "database-config")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"host": "db", "password": "pw1"}, s.Data)
	require.Equal(t, int64(1), s.Version)

	m, err = c.Patch(ctx, "payments", "database-config", map[string]string{"password": "pw2"}, []string{"host"}, 1)
	require.NoError(t, err)
	require.Equal(t, int64(2), m.Version)
	require.Equal(t, []string{"password"}, m.Keys)
	require.Equal(t, map[string]string{"env": "prod"}, m.Labels)

	_, err = c.Patch(ctx, "payments", "database-config", map[string]string{"a": "b"}, nil, 1)
	require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 412, apiErr.Status)
	require.Equal(t, "version_mismatch", apiErr.Code)
	require.NotEmpty(t, apiErr.RequestID)

	m, err = c.Update(ctx, "payments", "database-config", map[string]string{"user": "u"}, nil, 2)
	require.NoError(t, err)
	require.Equal(t, int64(3), m.Version)
	require.Equal(t, []string{"user"}, m.Keys)
	require.Equal(t, map[string]string{"env": "prod"}, m.Labels, "nil labels keep the labels")

	m, err = c.Update(ctx, "payments", "database-config", map[string]string{"user": "u2"}, map[string]string{"team": "a"}, 0)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"team": "a"}, m.Labels)

	old, err := c.GetVersion(ctx, "payments", "database-config", 2)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"password": "pw2"}, old.Data)
	require.Equal(t, int64(2), old.Version)
	_, err = c.GetVersion(ctx, "payments", "database-config", 99)
	require.ErrorIs(t, err, sdk.ErrNotFound)

	d, err := c.Describe(ctx, "payments", "database-config")
	require.NoError(t, err)
	require.Equal(t, int64(4), d.Version)

	vs, err := c.Versions(ctx, "payments", "database-config")
	require.NoError(t, err)
	require.Len(t, vs, 4)
	for i, v := range vs {
		require.Equal(t, int64(i+1), v.Version)
		require.False(t, v.CreatedAt.IsZero())
	}
	require.Nil(t, vs[0].Keys, "keys only when asked")
	vs, err = c.VersionsWithKeys(ctx, "payments", "database-config")
	require.NoError(t, err)
	require.Len(t, vs, 4)
	require.Equal(t, []string{"password"}, vs[1].Keys)
	require.Equal(t, []string{"user"}, vs[3].Keys)

	_, err = c.Update(ctx, "payments", "missing", map[string]string{"a": "b"}, nil, 0)
	require.ErrorIs(t, err, sdk.ErrNotFound)
	require.True(t, client.IsNotFound(err))

	require.ErrorIs(t, c.Delete(ctx, "payments", "database-config", 3), sdk.ErrVersionMismatch)
	require.NoError(t, c.Delete(ctx, "payments", "database-config", 4))
	_, err = c.Get(ctx, "payments", "database-config")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	require.ErrorIs(t, c.Delete(ctx, "payments", "database-config", 0), sdk.ErrNotFound)
}

func TestHeaders(t *testing.T) {
	f := gatewaytest.Start(t)
	c := newClient(t, f, gatewaytest.AdminToken)
	ctx := client.WithRequestID(context.Background(), "req-123")
	_, err := c.Create(ctx, "default", "a", map[string]string{"k": "v"}, nil)
	require.NoError(t, err)
	_, err = c.Update(context.Background(), "default", "a", map[string]string{"k": "w"}, nil, 1)
	require.NoError(t, err)

	reqs := f.Requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "POST", reqs[0].Method)
	require.Equal(t, "/v1/projects/default/secrets", reqs[0].Path)
	require.Equal(t, "req-123", reqs[0].Header.Get("X-Request-Id"))
	require.Equal(t, "Bearer "+gatewaytest.AdminToken, reqs[0].Header.Get("Authorization"))
	require.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
	require.Empty(t, reqs[0].Header.Get("If-Match"))
	require.Equal(t, "PUT", reqs[1].Method)
	require.Equal(t, `"1"`, reqs[1].Header.Get("If-Match"))
	require.Len(t, reqs[1].Header.Get("X-Request-Id"), 32, "random request id")
}

func TestErrors(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	admin := newClient(t, f, gatewaytest.AdminToken)
	_, err := admin.Create(ctx, "payments", "stripe-key", map[string]string{"k": "v"}, nil)
	require.NoError(t, err)
	_, err = admin.Create(ctx, "payments", "db", map[string]string{"k": "v"}, nil)
	require.NoError(t, err)

	bad, err := client.New(f.URL, "sg_wrong")
	require.NoError(t, err)
	_, err = bad.List(ctx, "payments", client.ListOptions{})
	require.ErrorIs(t, err, client.ErrUnauthenticated)

	editor := newClient(t, f, gatewaytest.EditorToken)
	_, err = editor.Get(ctx, "payments", "db")
	require.ErrorIs(t, err, client.ErrPermissionDenied)
	require.NotErrorIs(t, err, sdk.ErrNotFound)
	_, err = editor.Describe(ctx, "payments", "db")
	require.NoError(t, err, "an editor may describe")
	_, err = editor.List(ctx, "elsewhere", client.ListOptions{})
	require.ErrorIs(t, err, sdk.ErrNotFound, "no binding: 404")

	narrow := newClient(t, f, gatewaytest.NarrowToken)
	page, err := narrow.List(ctx, "payments", client.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 1)
	require.Equal(t, "stripe-key", page.Secrets[0].Name)
	// The gateway refuses before asking the backend (docs/api.md), so a
	// name outside the globs is a 403 that says nothing of its existence.
	_, err = narrow.Get(ctx, "payments", "db")
	require.ErrorIs(t, err, client.ErrPermissionDenied, "a name outside the globs")
	require.NotErrorIs(t, err, sdk.ErrNotFound)

	_, err = admin.Create(ctx, "payments", "big", map[string]string{"k": strings.Repeat("x", 2<<20)}, nil)
	require.ErrorIs(t, err, client.ErrPayloadTooLarge)
	_, err = admin.Create(ctx, "payments", "nokeys", map[string]string{}, nil)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.ErrorContains(t, err, "invalid_argument (400)")

	f.SetUnavailable(true)
	_, err = admin.Get(ctx, "payments", "db")
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, time.Second, apiErr.RetryAfter)
	f.SetUnavailable(false)

	// Client-side validation: bad names never reach the wire.
	n := len(f.Requests())
	_, err = admin.Get(ctx, "payments", "../etc")
	require.ErrorIs(t, err, sdk.ErrInvalid)
	_, err = admin.List(ctx, "Bad_Project", client.ListOptions{})
	require.ErrorIs(t, err, sdk.ErrInvalid)
	_, err = admin.Patch(ctx, "payments", "db", nil, nil, 0)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.Len(t, f.Requests(), n)
}

func TestNonEnvelopeErrorsAndUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "<html>proxy says no: secret-ish body</html>", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "t")
	require.NoError(t, err)
	_, err = c.Describe(context.Background(), "p", "n")
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.NotContains(t, err.Error(), "secret-ish", "an unknown body is not echoed")
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 7*time.Second, apiErr.RetryAfter)

	srv.Close()
	_, err = c.Describe(context.Background(), "p", "n")
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.ErrorIs(t, err, client.ErrUnreachable)
	require.False(t, errors.As(err, &apiErr))
	require.ErrorContains(t, err, "cannot reach the gateway")
}

func TestListPaging(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	c := newClient(t, f, gatewaytest.AdminToken)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("app-%02d", i)
		want = append(want, name)
		_, err := c.Create(ctx, "default", name, map[string]string{"k": "v"}, nil)
		require.NoError(t, err)
	}
	_, err := c.Create(ctx, "default", "other", map[string]string{"k": "v"}, nil)
	require.NoError(t, err)

	page, err := c.List(ctx, "default", client.ListOptions{Prefix: "app-", PageSize: 10})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 10)
	require.NotEmpty(t, page.NextPageToken)
	require.Equal(t, "page_size=10&prefix=app-", f.Requests()[len(f.Requests())-1].RawQuery)

	all, err := c.Collect(ctx, "default", client.ListOptions{Prefix: "app-", PageSize: 7})
	require.NoError(t, err)
	var got []string
	for _, m := range all {
		got = append(got, m.Name)
		require.Equal(t, []string{"k"}, m.Keys)
	}
	require.Equal(t, want, got)

	// Breaking out of the iterator stops paging.
	before := len(f.Requests())
	n := 0
	for _, err := range c.ListAll(ctx, "default", client.ListOptions{PageSize: 5}) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	require.Len(t, f.Requests(), before+1)

	empty, err := c.List(ctx, "payments", client.ListOptions{})
	require.NoError(t, err)
	require.Equal(t, []client.Metadata{}, empty.Secrets)
	require.Empty(t, empty.NextPageToken)
}

func TestConcurrentPatches(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	c := newClient(t, f, gatewaytest.EditorToken)
	_, err := c.Create(ctx, "default", "shared", map[string]string{"k0": "v"}, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := c.Patch(ctx, "default", "shared", map[string]string{fmt.Sprintf("k%d", i+1): "v"}, nil, 0)
			assert.NoError(t, err) // not require: FailNow belongs to the test goroutine
		})
	}
	wg.Wait()
	m, err := c.Describe(ctx, "default", "shared")
	require.NoError(t, err)
	require.Equal(t, int64(21), m.Version)
	require.Len(t, m.Keys, 21)
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct{ addr, token, want string }{
		{"ftp://x", "t", "scheme"},
		{"http://", "t", "no host"},
		{"http://x", "", "token is empty"},
		{"http://x", "a\nb", "control characters"},
	} {
		_, err := client.New(tc.addr, tc.token)
		require.ErrorContains(t, err, tc.want)
	}
	c, err := client.New("127.0.0.1:1", "t")
	require.NoError(t, err)
	require.NotNil(t, c)
	_, err = client.New("https://x", "t", client.WithCACert([]byte("not pem")))
	require.ErrorContains(t, err, "no PEM certificate")
	_, err = client.New("https://x", "t", client.WithCAFile(filepath.Join(t.TempDir(), "missing.pem")))
	require.ErrorContains(t, err, "CA file")
}

func TestHTTPSWithCustomCA(t *testing.T) {
	var gotAuth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"project":"p","name":"n","keys":["a"],"version":3,"labels":{},"created_at":"2025-01-02T03:04:05Z","updated_at":"2025-01-02T03:04:05Z"}`))
	}))
	t.Cleanup(srv.Close)
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(caPath, pemBytes, 0o600))

	c, err := client.New(srv.URL, "tok", client.WithCAFile(caPath))
	require.NoError(t, err)
	m, err := c.Describe(context.Background(), "p", "n")
	require.NoError(t, err)
	require.Equal(t, int64(3), m.Version)
	require.Equal(t, "Bearer tok", gotAuth)
	require.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), m.CreatedAt)

	// Without the CA the server is not trusted.
	plain, err := client.New(srv.URL, "tok", client.WithTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	require.NoError(t, err)
	_, err = plain.Describe(context.Background(), "p", "n")
	require.Error(t, err)
	require.False(t, errors.Is(err, sdk.ErrNotFound))
}

// A backend that keeps no times gives metadata without them: the client
// decodes that as zero times.
func TestMetadataWithoutTimes(t *testing.T) {
	var s client.Secret
	require.NoError(t, json.Unmarshal([]byte(`{"project":"p","name":"n","keys":["k"],"version":1,"labels":{},"data":{"k":"v"}}`), &s))
	require.True(t, s.CreatedAt.IsZero())
	require.Equal(t, "v", s.Data["k"])
}

// PatchWithLabels and SetLabels send labels (and {} to clear them); the
// values are kept.
func TestPatchLabels(t *testing.T) {
	f := gatewaytest.Start(t)
	ctx := context.Background()
	c := newClient(t, f, gatewaytest.AdminToken)
	_, err := c.Create(ctx, "payments", "db", map[string]string{"pw": "x"}, map[string]string{"env": "dev"})
	require.NoError(t, err)
	m, err := c.SetLabels(ctx, "payments", "db", map[string]string{"env": "prod"}, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"env": "prod"}, m.Labels)
	require.Equal(t, int64(2), m.Version)
	m, err = c.PatchWithLabels(ctx, "payments", "db", map[string]string{"user": "app"}, nil, map[string]string{}, 0)
	require.NoError(t, err)
	require.Empty(t, m.Labels, "{} clears the labels")
	require.Equal(t, []string{"pw", "user"}, m.Keys)
	_, err = c.SetLabels(ctx, "payments", "db", map[string]string{"Bad Key": "x"}, 0)
	require.ErrorIs(t, err, sdk.ErrInvalid)
}

func TestThrottledAnswerIsErrThrottled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"backend_throttled","message":"backend \"gcp\" refused the call for a limit of its service (600 reads per minute); retry after 30s"}}`))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, "tok")
	require.NoError(t, err)
	_, err = c.Get(context.Background(), "p", "db")
	require.ErrorIs(t, err, sdk.ErrThrottled)
	require.NotErrorIs(t, err, sdk.ErrUnavailable)
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 30*time.Second, apiErr.RetryAfter)
}
