package gcptest_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/secretgate/secretgate/plugins/gcp/gcptest"
)

const proj = "projects/test-project"

// newClient is the real Secret Manager client, pointed at a fresh server.
func newClient(t *testing.T) (*secretmanager.Client, *gcptest.Running) {
	t.Helper()
	srv := gcptest.Start(t)
	c, err := secretmanager.NewClient(context.Background(),
		option.WithEndpoint(srv.Addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithoutAuthentication(),
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, srv
}

func requireCode(t *testing.T, want codes.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, status.Code(err), "error: %v", err)
}

func create(t *testing.T, c *secretmanager.Client, id string, labels map[string]string) *secretmanagerpb.Secret {
	t.Helper()
	s, err := c.CreateSecret(context.Background(), &secretmanagerpb.CreateSecretRequest{
		Parent: proj, SecretId: id,
		Secret: &secretmanagerpb.Secret{Labels: labels},
	})
	require.NoError(t, err)
	return s
}

func add(t *testing.T, c *secretmanager.Client, secret string, data string) *secretmanagerpb.SecretVersion {
	t.Helper()
	crc := gcptest.CRC32C([]byte(data))
	v, err := c.AddSecretVersion(context.Background(), &secretmanagerpb.AddSecretVersionRequest{
		Parent: secret, Payload: &secretmanagerpb.SecretPayload{Data: []byte(data), DataCrc32C: &crc},
	})
	require.NoError(t, err)
	return v
}

func TestCreateSecretRules(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	long := strings.Repeat("a", 64)
	cases := []struct {
		name   string
		parent string
		id     string
		secret *secretmanagerpb.Secret
		want   codes.Code
	}{
		{"ok", proj, "good_ID-1", &secretmanagerpb.Secret{}, codes.OK},
		{"ok 255 chars", proj, strings.Repeat("x", 255), &secretmanagerpb.Secret{}, codes.OK},
		{"ok regional", proj + "/locations/us-east1", "regional", &secretmanagerpb.Secret{}, codes.OK},
		{"id too long", proj, strings.Repeat("x", 256), &secretmanagerpb.Secret{}, codes.InvalidArgument},
		{"id with dot", proj, "a.b", &secretmanagerpb.Secret{}, codes.InvalidArgument},
		{"empty id", proj, "", &secretmanagerpb.Secret{}, codes.InvalidArgument},
		{"bad parent", "project/test-project", "x", &secretmanagerpb.Secret{}, codes.InvalidArgument},
		{"no secret", proj, "nosecret", nil, codes.InvalidArgument},
		{"label key uppercase", proj, "l1", &secretmanagerpb.Secret{Labels: map[string]string{"Env": "x"}}, codes.InvalidArgument},
		{"label key digit first", proj, "l2", &secretmanagerpb.Secret{Labels: map[string]string{"1env": "x"}}, codes.InvalidArgument},
		{"label key too long", proj, "l3", &secretmanagerpb.Secret{Labels: map[string]string{long: "x"}}, codes.InvalidArgument},
		{"label value uppercase", proj, "l4", &secretmanagerpb.Secret{Labels: map[string]string{"env": "Prod"}}, codes.InvalidArgument},
		{"label value too long", proj, "l5", &secretmanagerpb.Secret{Labels: map[string]string{"env": long}}, codes.InvalidArgument},
		{"label value empty ok", proj, "l6", &secretmanagerpb.Secret{Labels: map[string]string{"env": ""}}, codes.OK},
		{"65 labels", proj, "l7", &secretmanagerpb.Secret{Labels: nLabels(65)}, codes.InvalidArgument},
		{"64 labels ok", proj, "l8", &secretmanagerpb.Secret{Labels: nLabels(64)}, codes.OK},
		{"annotation key bad", proj, "a1", &secretmanagerpb.Secret{Annotations: map[string]string{"-x": "v"}}, codes.InvalidArgument},
		{"annotations 16KiB", proj, "a2", &secretmanagerpb.Secret{Annotations: map[string]string{"k": strings.Repeat("v", 16*1024)}}, codes.InvalidArgument},
		{"annotations just under", proj, "a3", &secretmanagerpb.Secret{Annotations: map[string]string{"k": strings.Repeat("v", 16*1024-2)}}, codes.OK},
		{"regional with replication", proj + "/locations/us-east1", "r2", &secretmanagerpb.Secret{Replication: automatic()}, codes.InvalidArgument},
		{"expiry not modelled", proj, "e1", &secretmanagerpb.Secret{Expiration: &secretmanagerpb.Secret_Ttl{Ttl: durationpb.New(time.Hour)}}, codes.Unimplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: tc.parent, SecretId: tc.id, Secret: tc.secret})
			if tc.want != codes.OK {
				requireCode(t, tc.want, err)
				return
			}
			require.NoError(t, err)
			// Names come back with the project number, whatever the request used.
			require.Equal(t, strings.Replace(tc.parent, "test-project", gcptest.ProjectNumber("test-project"), 1)+"/secrets/"+tc.id, s.GetName())
			require.NotNil(t, s.GetCreateTime())
			require.True(t, strings.HasPrefix(s.GetEtag(), `"`) && strings.HasSuffix(s.GetEtag(), `"`), "etag %s must be quoted", s.GetEtag())
		})
	}

	_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: proj, SecretId: "good_ID-1", Secret: &secretmanagerpb.Secret{}})
	requireCode(t, codes.AlreadyExists, err)
	// The same id in another location is another secret.
	_, err = c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: proj + "/locations/europe-west1", SecretId: "good_ID-1", Secret: &secretmanagerpb.Secret{}})
	require.NoError(t, err)
}

func nLabels(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func automatic() *secretmanagerpb.Replication {
	return &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}
}

func TestNotFoundShapes(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	missing := proj + "/secrets/missing"
	_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: missing})
	requireCode(t, codes.NotFound, err)
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: missing + "/versions/latest"})
	requireCode(t, codes.NotFound, err)
	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: missing})
	requireCode(t, codes.NotFound, err)
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: missing, Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")}})
	requireCode(t, codes.NotFound, err)

	s := create(t, c, "empty", nil)
	// A secret without versions has no latest.
	_, err = c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	requireCode(t, codes.NotFound, err)
	add(t, c, s.GetName(), "one")
	_, err = c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/2"})
	requireCode(t, codes.NotFound, err)
	_, err = c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/0"})
	requireCode(t, codes.InvalidArgument, err)
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/bad.id"})
	requireCode(t, codes.InvalidArgument, err)
}

func TestVersionsLatestStatesAndCRC(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	s := create(t, c, "versions", nil)
	secEtag := s.GetEtag()
	for i := 1; i <= 3; i++ {
		v := add(t, c, s.GetName(), fmt.Sprintf("data-%d", i))
		require.Equal(t, fmt.Sprintf("%s/versions/%d", s.GetName(), i), v.GetName())
		require.Equal(t, secretmanagerpb.SecretVersion_ENABLED, v.GetState())
		require.True(t, v.GetClientSpecifiedPayloadChecksum())
	}
	// Adding versions leaves the secret's etag alone.
	got, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.GetName()})
	require.NoError(t, err)
	require.Equal(t, secEtag, got.GetEtag())

	acc, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	require.NoError(t, err)
	require.Equal(t, s.GetName()+"/versions/3", acc.GetName())
	require.Equal(t, "data-3", string(acc.GetPayload().GetData()))
	require.Equal(t, gcptest.CRC32C([]byte("data-3")), acc.GetPayload().GetDataCrc32C())

	// Without a client checksum the server computes one.
	v4, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: []byte("data-4")}})
	require.NoError(t, err)
	require.False(t, v4.GetClientSpecifiedPayloadChecksum())
	acc, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: v4.GetName()})
	require.NoError(t, err)
	require.Equal(t, gcptest.CRC32C([]byte("data-4")), acc.GetPayload().GetDataCrc32C())

	// A wrong checksum, or a payload over 64 KiB, is refused.
	bad := gcptest.CRC32C([]byte("other"))
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: []byte("data"), DataCrc32C: &bad}})
	requireCode(t, codes.InvalidArgument, err)
	_, err = c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: s.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: make([]byte, 64*1024+1)}})
	requireCode(t, codes.InvalidArgument, err)
	add(t, c, s.GetName(), string(make([]byte, 64*1024))) // version 5, exactly 64 KiB

	// Disable: latest still resolves to the newest version, and access fails.
	v5, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	require.NoError(t, err)
	dis, err := c.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v5.GetName(), Etag: v5.GetEtag()})
	require.NoError(t, err)
	require.Equal(t, secretmanagerpb.SecretVersion_DISABLED, dis.GetState())
	require.NotEqual(t, v5.GetEtag(), dis.GetEtag())
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/latest"})
	requireCode(t, codes.FailedPrecondition, err)
	// Stale etag on a version transition.
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v5.GetName(), Etag: v5.GetEtag()})
	requireCode(t, codes.FailedPrecondition, err)
	en, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v5.GetName(), Etag: dis.GetEtag()})
	require.NoError(t, err)
	// A no-op transition still changes the etag.
	en2, err := c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: v5.GetName()})
	require.NoError(t, err)
	require.NotEqual(t, en.GetEtag(), en2.GetEtag())

	// Destroy: payload gone for good, no way back.
	des, err := c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: s.GetName() + "/versions/1", Etag: `"stale"`})
	requireCode(t, codes.FailedPrecondition, err)
	require.Nil(t, des)
	des, err = c.DestroySecretVersion(ctx, &secretmanagerpb.DestroySecretVersionRequest{Name: s.GetName() + "/versions/1"})
	require.NoError(t, err)
	require.Equal(t, secretmanagerpb.SecretVersion_DESTROYED, des.GetState())
	require.NotNil(t, des.GetDestroyTime())
	_, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	requireCode(t, codes.FailedPrecondition, err)
	_, err = c.EnableSecretVersion(ctx, &secretmanagerpb.EnableSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	requireCode(t, codes.FailedPrecondition, err)

	// Listing versions: newest first, paged, with a state filter.
	var names []string
	it := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.GetName(), PageSize: 2})
	for {
		v, err := it.Next()
		if err == iterator.Done {
			break
		}
		require.NoError(t, err)
		names = append(names, v.GetName()[len(s.GetName())+len("/versions/"):])
	}
	require.Equal(t, []string{"5", "4", "3", "2", "1"}, names)
	it = c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.GetName(), Filter: "state:DESTROYED"})
	v, err := it.Next()
	require.NoError(t, err)
	require.Equal(t, s.GetName()+"/versions/1", v.GetName())
	_, err = it.Next()
	require.Equal(t, iterator.Done, err)
}

func TestUpdateSecretEtagAndMask(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	s := create(t, c, "upd", map[string]string{"a": "1"})

	_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: s.GetName(), Labels: map[string]string{"b": "2"}}})
	requireCode(t, codes.InvalidArgument, err) // no mask
	for _, path := range []string{"replication", "name", "create_time", "etag", "labels.a", "nonsense"} {
		_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: s.GetName()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}},
		})
		requireCode(t, codes.InvalidArgument, err)
	}

	// Only masked fields change; the etag changes on every update.
	u1, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{
			Name: s.GetName(), Etag: s.GetEtag(),
			Labels:      map[string]string{"b": "2"},
			Annotations: map[string]string{"note": "Any Text, even spaces."},
		},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
	})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "1"}, u1.GetLabels())
	require.Equal(t, "Any Text, even spaces.", u1.GetAnnotations()["note"])
	require.NotEqual(t, s.GetEtag(), u1.GetEtag())

	// The old etag is now stale: FAILED_PRECONDITION, nothing changes.
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: s.GetEtag(), Labels: map[string]string{"c": "3"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	requireCode(t, codes.FailedPrecondition, err)

	// No etag: unconditional. A no-op update still changes the etag.
	u2, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Labels: map[string]string{"a": "1"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	require.NoError(t, err)
	require.NotEqual(t, u1.GetEtag(), u2.GetEtag())
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Labels: map[string]string{"BAD": "1"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	requireCode(t, codes.InvalidArgument, err)
	_, err = c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: proj + "/secrets/nope"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	requireCode(t, codes.NotFound, err)

	// Delete with a stale etag fails; with the current one it succeeds, and
	// takes the versions with it: the id can be created again at once.
	add(t, c, s.GetName(), "x")
	err = c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName(), Etag: u1.GetEtag()})
	requireCode(t, codes.FailedPrecondition, err)
	require.NoError(t, c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: s.GetName(), Etag: u2.GetEtag()}))
	create(t, c, "upd", nil)
	_, err = c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: s.GetName() + "/versions/1"})
	requireCode(t, codes.NotFound, err)
}

func TestEtagRaceOneWinner(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	s := create(t, c, "race", nil)
	const n = 8
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
				Secret:     &secretmanagerpb.Secret{Name: s.GetName(), Etag: s.GetEtag(), Annotations: map[string]string{"w": fmt.Sprint(i)}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
			})
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		if err == nil {
			wins++
			continue
		}
		require.Equal(t, codes.FailedPrecondition, status.Code(err))
	}
	require.Equal(t, 1, wins)
}

func listIDs(t *testing.T, c *secretmanager.Client, req *secretmanagerpb.ListSecretsRequest) []string {
	t.Helper()
	var ids []string
	it := c.ListSecrets(context.Background(), req)
	for {
		s, err := it.Next()
		if err == iterator.Done {
			return ids
		}
		require.NoError(t, err)
		ids = append(ids, s.GetName()[strings.LastIndex(s.GetName(), "/")+1:])
	}
}

// sortedIDs is listIDs in name order: the list order is not specified.
func sortedIDs(t *testing.T, c *secretmanager.Client, req *secretmanagerpb.ListSecretsRequest) []string {
	t.Helper()
	ids := listIDs(t, c, req)
	sort.Strings(ids)
	return ids
}

func TestListSecretsPagingAndFilters(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	for i := range 7 {
		env := "dev"
		if i%2 == 0 {
			env = "prod"
		}
		create(t, c, fmt.Sprintf("app_%d", i), map[string]string{"env": env})
	}
	create(t, c, "other", nil)
	_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: proj + "/locations/us-east1", SecretId: "app_regional", Secret: &secretmanagerpb.Secret{Labels: map[string]string{"env": "prod"}}})
	require.NoError(t, err)

	// Every page, only this parent, in no particular order.
	require.Equal(t, []string{"app_0", "app_1", "app_2", "app_3", "app_4", "app_5", "app_6", "other"},
		sortedIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, PageSize: 3}))
	require.Equal(t, []string{"app_0", "app_2", "app_4", "app_6"},
		sortedIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, PageSize: 2, Filter: "labels.env=prod"}))
	require.Equal(t, []string{"app_6"},
		listIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: `labels.env="prod" AND name:app_6`}))
	require.Equal(t, []string{"app_0", "app_2", "app_4", "app_6"},
		sortedIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: `labels.env=prod name:app_*`}))
	require.Equal(t, []string{"app_3"},
		listIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: `labels.env="dev" AND name:app_3`}))
	require.Equal(t, []string{"app_0", "app_1", "app_2", "app_3", "app_4", "app_5", "app_6"},
		sortedIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: "labels.env:*"}))
	require.Equal(t, []string{"app_regional"},
		listIDs(t, c, &secretmanagerpb.ListSecretsRequest{Parent: proj + "/locations/us-east1"}))

	// One raw page, to see the token and total_size.
	resp, err := rawList(ctx, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, PageSize: 5})
	require.NoError(t, err)
	require.Len(t, resp.GetSecrets(), 5)
	require.NotEmpty(t, resp.GetNextPageToken())
	require.EqualValues(t, 8, resp.GetTotalSize())
	// A token belongs to its parent and filter.
	_, err = rawList(ctx, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, PageSize: 5, PageToken: resp.GetNextPageToken(), Filter: "labels.env=prod"})
	requireCode(t, codes.InvalidArgument, err)
	_, err = rawList(ctx, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, PageToken: "garbage"})
	requireCode(t, codes.InvalidArgument, err)
	_, err = rawList(ctx, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, PageSize: -1})
	requireCode(t, codes.InvalidArgument, err)

	// Filters this server does not implement are refused, never ignored.
	for _, f := range []string{"labels.env=prod OR labels.env=dev", "NOT labels.env=prod", "create_time>2021-01-01T00:00:00Z", "(name:a)", "-labels.env=prod", "replication.automatic:*"} {
		_, err = rawList(ctx, c, &secretmanagerpb.ListSecretsRequest{Parent: proj, Filter: f})
		requireCode(t, codes.InvalidArgument, err)
	}
}

// rawList fetches exactly one page, bypassing the client's iterator.
func rawList(ctx context.Context, c *secretmanager.Client, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	it := c.ListSecrets(ctx, req)
	it.PageInfo().MaxSize = int(req.GetPageSize())
	if req.GetPageToken() != "" {
		it.PageInfo().Token = req.GetPageToken()
	}
	if _, err := it.Next(); err != nil && err != iterator.Done {
		return nil, err
	}
	return it.Response.(*secretmanagerpb.ListSecretsResponse), nil
}

func TestFailNextInjectsErrors(t *testing.T) {
	c, srv := newClient(t)
	ctx := context.Background()
	srv.FailNext("GetSecret", codes.PermissionDenied, 1)
	_, err := c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/x"})
	requireCode(t, codes.PermissionDenied, err)
	_, err = c.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: proj + "/secrets/x"})
	requireCode(t, codes.NotFound, err)
}
