package gcp_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/secretgate/secretgate/plugins/gcp"
	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/backendtest"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

const gcpProject = "test-project"

func TestMain(m *testing.M) {
	plugintest.ServeIfChild(func() sdk.Backend { return gcp.New() })
	os.Exit(m.Run())
}

func settings(addr string, extra ...string) map[string]string {
	s := map[string]string{"gcp_project": gcpProject, "endpoint": addr, "insecure": "true"}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i]] = extra[i+1]
	}
	return s
}

// inProcess is a configured backend in this process, for protocol tests
// that need to reach around it with the raw client.
func inProcess(t *testing.T, addr string, extra ...string) sdk.Backend {
	t.Helper()
	b := gcp.New()
	require.NoError(t, b.Configure(context.Background(), settings(addr, extra...)))
	return b
}

func rawClient(t *testing.T, addr string) *secretmanager.Client { return rawClientTB(t, addr) }

func rawClientTB(t testing.TB, addr string) *secretmanager.Client {
	t.Helper()
	c, err := secretmanager.NewClient(context.Background(),
		option.WithEndpoint(addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithoutAuthentication(),
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// The conformance suite runs against the stand-in with lag and quotas on
// (ciOptions), through the plugin process, regional, and in process.
func TestConformanceThroughPlugin(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, settings(srv.Addr))
	})
}

func TestConformanceRegionalThroughPlugin(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	backendtest.Run(t, func(t *testing.T) sdk.Backend {
		return plugintest.Start(t, settings(srv.Addr, "location", "europe-west1", "prefix", "rg"))
	})
}

// The suite in process too: it reaches the backend's own validation without
// the plugin transport in between.
func TestConformanceInProcess(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	backendtest.Run(t, func(t *testing.T) sdk.Backend { return inProcess(t, srv.Addr, "prefix", "inproc") })
}

func data(v string) map[string]string { return map[string]string{"user": "app", "password": v} }

func TestNameMappingAndStoredShape(t *testing.T) {
	srv := gcptest.Start(t)
	b := inProcess(t, srv.Addr)
	c := rawClient(t, srv.Addr)
	ctx := context.Background()
	_, err := b.Write(ctx, sdk.WriteRequest{Project: "payments", Name: "db_Main-1", Data: data("s3cret"), Labels: map[string]string{"env": "Prod Value", "team": "core"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)

	s, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: "projects/test-project/secrets/sg_payments_db_Main-1"})
	require.NoError(t, err)
	// The project marker, and the labels that fit GCP's rules mirrored.
	require.Equal(t, map[string]string{"secretgate-project": "payments", "team": "core"}, s.GetLabels())
	require.Equal(t, "1", s.GetAnnotations()["secretgate-claim"])
	require.Equal(t, "password,user", s.GetAnnotations()["secretgate-keys"])
	require.JSONEq(t, `{"env":"Prod Value","team":"core"}`, s.GetAnnotations()["secretgate-labels"])
	require.NotNil(t, s.GetReplication().GetAutomatic())

	acc, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	require.NoError(t, err)
	require.Equal(t, `{"password":"s3cret","user":"app"}`, string(acc.GetPayload().GetData()))
	v, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	require.NoError(t, err)
	require.True(t, v.GetClientSpecifiedPayloadChecksum(), "the plugin sends data_crc32c")

	// Same name in another project is another secret; the label filter keeps
	// listings apart.
	_, err = b.Write(ctx, sdk.WriteRequest{Project: "pay", Name: "ments_db_Main-1", Data: data("x"), Mode: sdk.WriteCreate})
	require.NoError(t, err)
	page, err := b.List(ctx, sdk.ListRequest{Project: "payments"})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 1)
	require.Equal(t, "db_Main-1", page.Secrets[0].Name)
	require.Equal(t, map[string]string{"env": "Prod Value", "team": "core"}, page.Secrets[0].Labels)
}

// setClaim plays a writer that claimed the next version with UpdateSecret
// and died before AddSecretVersion.
// setClaim stamps a claim of version by a dead writer, made age ago, and
// returns the stamp. The stamp is taken at the attempt that lands: GetSecret
// lags and the first attempts may fail their etag, and a stamp taken before
// them would let a short lease run out before the test looks.
func setClaim(t *testing.T, c *secretmanager.Client, name string, version int64, age time.Duration) time.Time {
	t.Helper()
	ctx := context.Background()
	// GetSecret lags: until it shows the current state its etag fails.
	var err error
	var at time.Time
	require.Eventually(t, func() bool {
		at = time.Now().Add(-age)
		var s *secretmanagerpb.Secret
		if s, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: name}); err != nil {
			return false
		}
		ann := s.GetAnnotations()
		ann["secretgate-claim"] = strconv.FormatInt(version, 10)
		ann["secretgate-claim-id"] = "dead-writer"
		ann["secretgate-claim-at"] = at.UTC().Format(time.RFC3339Nano)
		ann["secretgate-keys"] = "not,these"
		_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: name, Etag: s.GetEtag(), Annotations: ann},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
		})
		return err == nil
	}, 10*ciLag, ciLag/10, "claiming by hand: %v", err)
	return at
}

func TestWriterDiesBetweenClaimAndAdd(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	// A lease long enough that the claim is still live when the
	// check-and-set write below looks, on a loaded machine too.
	b := inProcess(t, srv.Addr, "claim_lease", "2s")
	c := rawClient(t, srv.Addr)
	ctx := context.Background()
	ref := sdk.Ref{Project: "p1", Name: "db"}
	name := "projects/test-project/secrets/sg_p1_db"
	_, err := b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v1"), Mode: sdk.WriteCreate})
	require.NoError(t, err)

	claimedAt := setClaim(t, c, name, 2, 0)
	// Readers are not fooled: version 1 is still the latest, with its keys.
	m, err := b.Describe(ctx, ref)
	require.NoError(t, err)
	require.EqualValues(t, 1, m.Version)
	require.Equal(t, []string{"password", "user"}, m.Keys)
	// While the claim is live, a check-and-set write cannot be sure: refused.
	_, err = b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v2"), Mode: sdk.WriteReplace, ExpectedVersion: 1})
	require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	// An unconditional write waits the claim out (2s lease) and succeeds.
	m, err = b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v2"), Mode: sdk.WriteReplace})
	require.NoError(t, err)
	require.EqualValues(t, 2, m.Version)
	require.GreaterOrEqual(t, time.Since(claimedAt), time.Second, "the write must have waited for the live claim to expire")

	// An expired claim is taken over at once, also by check-and-set writes.
	setClaim(t, c, name, 3, time.Hour)
	m, err = b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: map[string]string{"only": "v3"}, Mode: sdk.WriteReplace, ExpectedVersion: 2})
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Version)
	sec, err := b.Read(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"only": "v3"}, sec.Data)
	require.Equal(t, []string{"only"}, sec.Keys)
	m, err = b.Describe(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, []string{"only"}, m.Keys)
}

func TestCreationDiesBeforeFirstVersion(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	b := inProcess(t, srv.Addr, "claim_lease", "1s")
	c := rawClient(t, srv.Addr)
	ctx := context.Background()
	ref := sdk.Ref{Project: "p2", Name: "half"}
	// A creator that made the secret with its claim, then died.
	_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/test-project", SecretId: "sg_p2_half",
		Secret: &secretmanagerpb.Secret{
			Labels: map[string]string{"secretgate-project": "p2"},
			Annotations: map[string]string{
				"secretgate-claim": "1", "secretgate-claim-id": "dead", "secretgate-keys": "k",
				"secretgate-claim-at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano),
			},
		},
	})
	require.NoError(t, err)

	// It does not exist for secretgate.
	_, err = b.Describe(ctx, ref)
	require.ErrorIs(t, err, sdk.ErrNotFound)
	_, err = b.Read(ctx, ref)
	require.ErrorIs(t, err, sdk.ErrNotFound)
	_, err = b.Versions(ctx, ref)
	require.ErrorIs(t, err, sdk.ErrNotFound)
	page, err := b.List(ctx, sdk.ListRequest{Project: "p2"})
	require.NoError(t, err)
	require.Empty(t, page.Secrets)
	_, err = b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("x"), Mode: sdk.WriteReplace})
	require.ErrorIs(t, err, sdk.ErrNotFound)

	// And it can be created: the dead creation is taken over.
	m, err := b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("x"), Labels: map[string]string{"a": "b"}, Mode: sdk.WriteCreate})
	require.NoError(t, err)
	require.EqualValues(t, 1, m.Version)
	m, err = b.Describe(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, []string{"password", "user"}, m.Keys)
	require.Equal(t, map[string]string{"a": "b"}, m.Labels)
}

func TestCASRaceOneWinner(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	ctx := context.Background()
	// Separate backends, as separate gateway replicas would be.
	var bs []sdk.Backend
	for range 6 {
		bs = append(bs, inProcess(t, srv.Addr))
	}
	_, err := bs[0].Write(ctx, sdk.WriteRequest{Project: "race", Name: "s", Data: data("0"), Mode: sdk.WriteCreate})
	require.NoError(t, err)
	time.Sleep(ciLag) // the other replicas learn of it from the service
	var wg sync.WaitGroup
	errs := make([]error, len(bs))
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Write(ctx, sdk.WriteRequest{Project: "race", Name: "s", Data: data(fmt.Sprint(i)), Mode: sdk.WriteReplace, ExpectedVersion: 1})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	}
	require.Equal(t, 1, wins)
	m, err := bs[0].Describe(ctx, sdk.Ref{Project: "race", Name: "s"})
	require.NoError(t, err)
	require.EqualValues(t, 2, m.Version)

	// Unconditional writers all get through, each with its own version.
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Write(ctx, sdk.WriteRequest{Project: "race", Name: "s", Data: data(fmt.Sprint(i)), Mode: sdk.WriteUpsert})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	time.Sleep(ciLag) // versions the other replicas added
	vs, err := bs[0].Versions(ctx, sdk.Ref{Project: "race", Name: "s"})
	require.NoError(t, err)
	require.Len(t, vs, 2+len(bs))
}

func TestErrorMapping(t *testing.T) {
	srv := gcptest.StartWith(t, ciOptions())
	b := inProcess(t, srv.Addr)
	ctx := context.Background()
	ref := sdk.Ref{Project: "errs", Name: "s"}
	_, err := b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v"), Mode: sdk.WriteCreate})
	require.NoError(t, err)

	// A few UNAVAILABLEs are retried away.
	srv.FailNext("AccessSecretVersion", codes.Unavailable, 2)
	srv.FailNext("GetSecret", codes.ResourceExhausted, 2)
	sec, err := b.Read(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, "v", sec.Data["password"])

	// A lost AddSecretVersion answer does not add twice.
	srv.FailNext("AddSecretVersion", codes.Unavailable, 1)
	m, err := b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v2"), Mode: sdk.WriteReplace, ExpectedVersion: 1})
	require.NoError(t, err)
	require.EqualValues(t, 2, m.Version)

	// A delete the quota refused never ran: retried, NOT_FOUND still means
	// the secret was not there. After an UNAVAILABLE it may have run, so
	// NOT_FOUND is its own success.
	missing := sdk.Ref{Project: ref.Project, Name: "never-created"}
	srv.FailNext("DeleteSecret", codes.ResourceExhausted, 1)
	require.ErrorIs(t, b.Delete(ctx, missing), sdk.ErrNotFound, "delete of a missing secret after a quota refusal")
	srv.FailNext("DeleteSecret", codes.Unavailable, 1)
	require.NoError(t, b.Delete(ctx, missing), "delete whose first attempt went unanswered")

	cases := []struct {
		name   string
		method string
		code   codes.Code
		n      int
		call   func() error
		want   error
		text   string
	}{
		{"unavailable persists", "AccessSecretVersion", codes.Unavailable, 10, func() error { _, err := b.Read(ctx, ref); return err }, sdk.ErrUnavailable, ""},
		{"permission on read", "AccessSecretVersion", codes.PermissionDenied, 1, func() error { _, err := b.Read(ctx, ref); return err }, sdk.ErrPermission, "secretmanager.versions.access"},
		{"permission on list", "ListSecrets", codes.PermissionDenied, 1, func() error { _, err := b.List(ctx, sdk.ListRequest{Project: "errs"}); return err }, sdk.ErrPermission, "secretmanager.secrets.list"},
		{"permission on add", "AddSecretVersion", codes.PermissionDenied, 1, func() error {
			_, err := b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v3"), Mode: sdk.WriteReplace})
			return err
		}, sdk.ErrPermission, "secretmanager.versions.add"},
		{"unauthenticated ping", "ListSecrets", codes.Unauthenticated, 1, func() error { return b.Ping(ctx) }, sdk.ErrPermission, "credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(srv.ClearFaults)
			srv.FailNext(tc.method, tc.code, tc.n)
			err := tc.call()
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), tc.text)
			require.NotContains(t, err.Error(), "v3")
		})
	}
	require.NoError(t, b.Ping(ctx))
}

// A delete answered NOT_FOUND tells this replica the secret is gone: its
// metadata cache forgets it at once rather than describe it until
// metadata_ttl runs out.
func TestDeleteNotFoundForgetsCachedSecret(t *testing.T) {
	srv := gcptest.Start(t)
	a := inProcess(t, srv.Addr, "metadata_ttl", "1h")
	b := inProcess(t, srv.Addr, "metadata_ttl", "1h")
	ctx := context.Background()
	ref := sdk.Ref{Project: "gone", Name: "s"}
	_, err := a.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data("v"), Mode: sdk.WriteCreate})
	require.NoError(t, err)
	_, err = a.Describe(ctx, ref) // cached by a
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, ref), "deleted through another replica")
	require.ErrorIs(t, a.Delete(ctx, ref), sdk.ErrNotFound)
	_, err = a.Describe(ctx, ref)
	require.ErrorIs(t, err, sdk.ErrNotFound, "described from a cache the NOT_FOUND should have cleared")
}

func TestConfigure(t *testing.T) {
	cases := []struct {
		name     string
		settings map[string]string
		field    string
	}{
		{"no project", map[string]string{}, "settings.gcp_project"},
		{"bad project", map[string]string{"gcp_project": "Bad_Project"}, "settings.gcp_project"},
		{"bad location", map[string]string{"gcp_project": gcpProject, "location": "US East"}, "settings.location"},
		{"bad prefix", map[string]string{"gcp_project": gcpProject, "prefix": "a/b"}, "settings.prefix"},
		{"insecure remote", map[string]string{"gcp_project": gcpProject, "endpoint": "secretmanager.googleapis.com:443", "insecure": "true"}, "settings.insecure"},
		{"insecure no endpoint", map[string]string{"gcp_project": gcpProject, "insecure": "true"}, "settings.insecure"},
		{"bad insecure", map[string]string{"gcp_project": gcpProject, "insecure": "maybe"}, "settings.insecure"},
		{"bad lease", map[string]string{"gcp_project": gcpProject, "claim_lease": "1ns"}, "settings.claim_lease"},
		{"unknown", map[string]string{"gcp_project": gcpProject, "projct": "x"}, "settings.projct"},
		{"missing credentials file", map[string]string{"gcp_project": gcpProject, "credentials_file": "/nonexistent/creds.json"}, "settings.credentials_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := gcp.New().Configure(context.Background(), tc.settings)
			require.ErrorIs(t, err, sdk.ErrInvalid)
			var fe *sdk.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.field, fe.Field)
		})
	}
}
