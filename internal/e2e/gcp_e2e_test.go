package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
	"github.com/secretgate/secretgate/sdk"
)

// gcpLag is the stand-in's consistency lag in the end-to-end tests.
const gcpLag = 300 * time.Millisecond

// gcpGateway starts the real binary with project "payments" on the built-in
// gcp plugin, which talks to an in-memory Secret Manager listening on
// loopback in this test process. The stand-in lags (GetSecret, `latest`
// and the lists answer from gcpLag ago) and enforces quotas shaped like
// Google's (per second rather than per minute, so that tests finish).
func gcpGateway(t testing.TB) (*testenv.Server, *gcptest.Running) {
	t.Helper()
	sm := gcptest.StartWith(t, gcptest.Options{Lag: gcpLag, Quotas: gcptest.Quotas{
		Access:    gcptest.Limit{N: 1500, Per: time.Second},
		Read:      gcptest.Limit{N: 100, Per: time.Second},
		Write:     gcptest.Limit{N: 100, Per: time.Second},
		PerSecret: []gcptest.Limit{{N: 20, Per: time.Second}},
	}})
	srv := testenv.Start(t, testenv.Options{
		Backends: []testenv.Backend{{Name: "google", Plugin: "gcp", Settings: map[string]string{
			"gcp_project": "e2e-project", "endpoint": sm.Addr, "insecure": "true", "prefix": "e2e",
		}}},
		Projects: []testenv.Project{{Name: "payments", Backend: "google"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "payments", Role: "editor"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
		},
	})
	return srv, sm
}

// TestGCPEndToEnd: CRUD over HTTP on a gcp project, the stored shape in
// Secret Manager, a check-and-set race, and a canary value that never
// appears in the server's output or audit log.
func TestGCPEndToEnd(t *testing.T) {
	srv, sm := gcpGateway(t)
	canary := "canary-" + awsRandHex(t)
	base := "/v1/projects/payments/secrets"

	resp := srv.Do(t, "POST", base, srv.Token("editor"), map[string]any{
		"name": "stripe-key", "data": map[string]string{"api_key": canary, "account": "acct_1"}, "labels": map[string]string{"env": "prod"},
	})
	require.Equal(t, http.StatusCreated, resp.Status, "%s", resp.Body)
	require.NotContains(t, string(resp.Body), canary)
	resp = srv.Do(t, "POST", base, srv.Token("editor"), map[string]any{"name": "stripe-key", "data": map[string]string{"a": "b"}})
	require.Equal(t, http.StatusConflict, resp.Status, "%s", resp.Body)

	// What landed in Secret Manager: <prefix>_<project>_<name>, labelled.
	c, err := secretmanager.NewClient(context.Background(), option.WithEndpoint(sm.Addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())), option.WithoutAuthentication())
	require.NoError(t, err)
	defer c.Close()
	// Secret Manager's GetSecret is eventually consistent (the stand-in lags
	// by gcpLag); the gateway's own reads below are not allowed to be.
	var s *secretmanagerpb.Secret
	require.Eventually(t, func() bool {
		s, err = c.GetSecret(context.Background(), &secretmanagerpb.GetSecretRequest{Name: "projects/e2e-project/secrets/e2e_payments_stripe-key"})
		return err == nil
	}, 10*gcpLag, gcpLag/10, "GetSecret: %v", err)
	require.Equal(t, "payments", s.GetLabels()["secretgate-project"])

	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	var sec struct {
		Version int64             `json:"version"`
		Keys    []string          `json:"keys"`
		Labels  map[string]string `json:"labels"`
		Data    map[string]string `json:"data"`
	}
	resp.JSON(t, &sec)
	require.Equal(t, canary, sec.Data["api_key"])
	require.Equal(t, []string{"account", "api_key"}, sec.Keys)
	require.Equal(t, map[string]string{"env": "prod"}, sec.Labels)
	require.Equal(t, `"1"`, resp.Header.Get("ETag"))
	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("editor"), nil)
	require.NotContains(t, string(resp.Body), canary, "an editor never gets values")

	ifMatchRace(t, srv, base+"/stripe-key", srv.Token("editor"), canary, 6)

	// Right after the race, through the lag, the gateway reads the newest.
	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	require.Equal(t, `"2"`, resp.Header.Get("ETag"), "read-your-writes through a lagging `latest`")

	// An exhausted quota is a 429 naming the limit, with Retry-After.
	sm.FailNext("AccessSecretVersion", codes.ResourceExhausted, 10)
	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("reader"), nil)
	sm.ClearFaults()
	require.Equal(t, http.StatusTooManyRequests, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), "backend_throttled")
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	resp = srv.Do(t, "GET", base+"/stripe-key/versions", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), `"version":2`)
	resp = srv.Do(t, "GET", base+"/stripe-key?version=1", srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	resp.JSON(t, &sec)
	require.Equal(t, canary, sec.Data["api_key"], "version 1 stays readable")

	resp = srv.Do(t, "GET", base, srv.Token("reader"), nil)
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	require.Contains(t, string(resp.Body), `"stripe-key"`)
	require.NotContains(t, string(resp.Body), canary)

	resp = srv.Do(t, "DELETE", base+"/stripe-key", srv.Token("editor"), nil, "If-Match", `"1"`)
	require.Equal(t, http.StatusPreconditionFailed, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "DELETE", base+"/stripe-key", srv.Token("editor"), nil)
	require.Less(t, resp.Status, 300, "%s", resp.Body)
	resp = srv.Do(t, "GET", base+"/stripe-key", srv.Token("reader"), nil)
	require.Equal(t, http.StatusNotFound, resp.Status, "%s", resp.Body)
	resp = srv.Do(t, "POST", base, srv.Token("editor"), map[string]any{"name": "stripe-key", "data": map[string]string{"api_key": "new"}})
	require.Equal(t, http.StatusCreated, resp.Status, "a deleted name is reusable at once: %s", resp.Body)

	srv.Stop(t)
	for what, text := range map[string]string{"stdout": srv.Stdout(), "stderr": srv.Stderr(), "audit log": srv.Audit()} {
		require.False(t, strings.Contains(text, canary), "the canary value appeared in the server's %s", what)
	}
}

// BenchmarkGCPGatewayGet: GET of a secret through the gateway on gcp, with
// BenchmarkGCPDirectAccess (the Google client straight to the same kind of
// local server) as the baseline of the same run.
func BenchmarkGCPGatewayGet(b *testing.B) {
	srv, _ := gcpGateway(b)
	tok := srv.Token("admin")
	r := srv.Do(b, "POST", "/v1/projects/payments/secrets", tok, map[string]any{"name": "db", "data": gcpBenchData})
	require.Equal(b, http.StatusCreated, r.Status, "%s", r.Body)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := srv.Try("GET", "/v1/projects/payments/secrets/db", tok, nil)
			if err != nil || r.Status != http.StatusOK {
				b.Errorf("GET: %v", err)
				return
			}
			var v struct {
				Data map[string]string `json:"data"`
			}
			if json.Unmarshal(r.Body, &v) != nil || len(v.Data) == 0 {
				b.Error("no data in the answer")
				return
			}
		}
	})
}

var gcpBenchData = map[string]string{"username": "admin", "password": "correct horse battery staple", "host": "db.internal:5432"}

func BenchmarkGCPDirectAccess(b *testing.B) {
	sm := gcptest.Start(b)
	ctx := context.Background()
	c, err := secretmanager.NewClient(ctx, option.WithEndpoint(sm.Addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())), option.WithoutAuthentication())
	require.NoError(b, err)
	defer c.Close()
	s, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/e2e-project", SecretId: "direct", Secret: &secretmanagerpb.Secret{}})
	require.NoError(b, err)
	body, err := sdk.EncodeData(gcpBenchData)
	require.NoError(b, err)
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: body}})
	require.NoError(b, err)
	name := s.GetName() + "/versions/latest"
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
