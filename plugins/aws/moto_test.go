package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/sdk"
)

// fixture is an in-process backend on moto plus a raw SDK client, to check
// what the backend stores in AWS terms.
type fixture struct {
	b       *Backend
	raw     *secretsmanager.Client // straight to moto, never lagging
	proxy   *faultproxy.Proxy
	project string
}

func newFixture(t *testing.T, extra map[string]string) fixture {
	t.Helper()
	return newFixtureWith(t, faultproxy.CI, extra)
}

// newFixtureWith runs the backend against moto behind a fault proxy with
// cfg.
func newFixtureWith(t *testing.T, faults faultproxy.Config, extra map[string]string) fixture {
	t.Helper()
	moto := mototest.Start(t)
	proxy := faultproxy.Start(t, moto.Endpoint, faults)
	s := map[string]string{"region": mototest.Region, "endpoint": proxy.Endpoint}
	for k, v := range extra {
		s[k] = v
	}
	b := New().(*Backend)
	require.NoError(t, b.Configure(t.Context(), s))
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion(mototest.Region))
	require.NoError(t, err)
	raw := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = awsv2.String(moto.Endpoint) })
	return fixture{b: b, raw: raw, proxy: proxy, project: "p-" + uuid.NewString()[:8]}
}

func (f fixture) write(t *testing.T, name string, data map[string]string, mode sdk.WriteMode, expected int64, labels map[string]string) (sdk.Meta, error) {
	t.Helper()
	return f.b.Write(t.Context(), sdk.WriteRequest{Project: f.project, Name: name, Data: data, Mode: mode, ExpectedVersion: expected, Labels: labels})
}

// TestStoredShape checks the mapping as AWS consumers see it: the name, the
// plain JSON SecretString, the tags, and the version ids.
func TestStoredShape(t *testing.T) {
	f := newFixture(t, map[string]string{"tags": "team=platform"})
	ctx := t.Context()
	data := map[string]string{"user": "admin", "password": "s3cr3t <&>"}
	_, err := f.write(t, "db", data, sdk.WriteCreate, 0, map[string]string{"env": "prod"})
	require.NoError(t, err)

	id := "secretgate/" + f.project + "/db"
	d, err := f.raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(id)})
	require.NoError(t, err)
	tags := map[string]string{}
	for _, tg := range d.Tags {
		tags[*tg.Key] = *tg.Value
	}
	require.Equal(t, map[string]string{
		"secretgate:project": f.project, "secretgate:name": "db", "secretgate:label:env": "prod", "team": "platform",
	}, tags)
	require.Equal(t, versionToken(f.project, "db", 1), currentVersionID(d.VersionIdsToStages))

	v, err := f.raw.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(id)})
	require.NoError(t, err)
	want, err := sdk.EncodeData(data)
	require.NoError(t, err)
	require.Equal(t, string(want), *v.SecretString, "SecretString is the plain canonical JSON object")

	m, err := f.write(t, "db", map[string]string{"user": "admin"}, sdk.WriteReplace, 1, map[string]string{})
	require.NoError(t, err)
	require.Equal(t, int64(2), m.Version)
	require.Empty(t, m.Labels)
	d, err = f.raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(id)})
	require.NoError(t, err)
	require.Equal(t, versionToken(f.project, "db", 2), currentVersionID(d.VersionIdsToStages))
	for _, tg := range d.Tags {
		require.NotEqual(t, "secretgate:label:env", *tg.Key, "an emptied label set removes the label tags")
	}
}

// TestStaleCache: a Description that lags behind (a writer that died after
// PutSecretValue) or was edited by hand never yields wrong metadata.
func TestStaleCache(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	_, err := f.write(t, "db", map[string]string{"a": "1"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	id := awsv2.String("secretgate/" + f.project + "/db")
	// A second version written the way a crashed writer would leave it: the
	// value is stored, the Description still says version 1.
	_, err = f.raw.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: id, ClientRequestToken: awsv2.String(versionToken(f.project, "db", 2)), SecretString: awsv2.String(`{"a":"1","b":"2"}`),
	})
	require.NoError(t, err)
	for _, desc := range []string{"", "hand-edited", encodeCache(metaCache{V: 1, K: []string{"a"}})} {
		if desc != "" {
			_, err = f.raw.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: id, Description: awsv2.String(desc)})
			require.NoError(t, err)
		}
		m, err := f.b.Describe(ctx, sdk.Ref{Project: f.project, Name: "db"})
		require.NoError(t, err)
		require.Equal(t, int64(2), m.Version, "description %q", desc)
		require.Equal(t, []string{"a", "b"}, m.Keys, "description %q", desc)
		page, err := f.b.List(ctx, sdk.ListRequest{Project: f.project})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 1)
		require.Equal(t, m, page.Secrets[0])
	}
	// The next write through secretgate continues at 3. It leaves the
	// Description alone (a write spends one PutSecretValue, no UpdateSecret),
	// so readers without this process's memory of the write see a stale cache
	// and read the value instead.
	m, err := f.write(t, "db", map[string]string{"c": "3"}, sdk.WriteReplace, 2, nil)
	require.NoError(t, err)
	require.Equal(t, int64(3), m.Version)
	d, err := f.raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: id})
	require.NoError(t, err)
	c, ok := decodeCache(*d.Description)
	require.True(t, ok)
	require.Equal(t, int64(1), c.V)
	f.b.recent = newRecentWrites(recentWindow)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := f.b.Describe(ctx, sdk.Ref{Project: f.project, Name: "db"})
		require.NoError(c, err)
		require.Equal(c, int64(3), got.Version, "once AWS shows the write")
		require.Equal(c, []string{"c"}, got.Keys)
	}, 10*faultproxy.CI.Lag, faultproxy.CI.Lag/5)
}

// TestForeignVersion: a version written outside secretgate (console,
// rotation) is reported clearly, not misnumbered.
func TestForeignVersion(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	_, err := f.write(t, "db", map[string]string{"a": "1"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	_, err = f.raw.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: awsv2.String("secretgate/" + f.project + "/db"), SecretString: awsv2.String(`{"a":"2"}`),
	})
	require.NoError(t, err)
	_, err = f.b.Read(ctx, sdk.Ref{Project: f.project, Name: "db"})
	require.ErrorContains(t, err, "not written by secretgate")
	_, err = f.write(t, "db", map[string]string{"a": "3"}, sdk.WriteReplace, 0, nil)
	require.ErrorContains(t, err, "not written by secretgate")
	old, err := f.b.Read(ctx, sdk.Ref{Project: f.project, Name: "db", Version: 1})
	require.NoError(t, err, "secretgate's own versions stay readable by number")
	require.Equal(t, "1", old.Data["a"])
	vs, err := f.b.Versions(ctx, sdk.Ref{Project: f.project, Name: "db"})
	require.NoError(t, err)
	require.Len(t, vs, 1, "the foreign version has no number and is not listed")
}

// TestTokenRule checks the AWS rule that the check-and-set rests on, as
// the server at hand implements it: a ClientRequestToken that already names
// a version is refused with a different body, and accepted as a repeat with
// the same body (so two writers racing with byte-identical data both
// succeed, as documented in the package doc).
func TestTokenRule(t *testing.T) {
	f := newFixture(t, nil)
	m, err := f.write(t, "db", map[string]string{"a": "1"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	m, err = f.write(t, "db", map[string]string{"a": "2"}, sdk.WriteReplace, m.Version, nil)
	require.NoError(t, err)
	put := func(body string) (*secretsmanager.PutSecretValueOutput, error) {
		return f.raw.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{
			SecretId:           awsv2.String("secretgate/" + f.project + "/db"),
			ClientRequestToken: awsv2.String(versionToken(f.project, "db", 2)), SecretString: awsv2.String(body),
		})
	}
	out, err := put(`{"a":"2"}`)
	require.NoError(t, err, "the same body under an existing token is an idempotent repeat")
	require.Contains(t, out.VersionStages, stageCurrent)
	_, err = put(`{"a":"other"}`)
	require.True(t, isCode(err, codeExists), "a different body under an existing token: want ResourceExistsException, got %v", err)
	_, err = f.write(t, "db", map[string]string{"a": "late"}, sdk.WriteReplace, 1, nil)
	require.ErrorIs(t, err, sdk.ErrVersionMismatch, "a stale ExpectedVersion is refused")
	sec, err := f.b.Read(t.Context(), sdk.Ref{Project: f.project, Name: "db"})
	require.NoError(t, err)
	require.Equal(t, int64(2), sec.Version)
	require.Equal(t, "2", sec.Data["a"])
}

// TestCASRace: many writers expecting the same version, distinct bodies:
// exactly one wins. They run in two plugin instances (two processes'
// worth of memory) while AWS's views lag (faultproxy.CI), so half of them
// see no trace of the secret's writes but AWS's.
func TestCASRace(t *testing.T) {
	f := newFixture(t, nil)
	other := New().(*Backend)
	require.NoError(t, other.Configure(t.Context(), map[string]string{"region": mototest.Region, "endpoint": f.proxy.Endpoint}))
	_, err := f.write(t, "db", map[string]string{"a": "0"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	const writers = 8
	var wins, mismatches atomic.Int32
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := f.b
			if i%2 == 1 {
				b = other
			}
			_, err := b.Write(t.Context(), sdk.WriteRequest{Project: f.project, Name: "db", Data: map[string]string{"a": strconv.Itoa(i + 1)}, Mode: sdk.WriteReplace, ExpectedVersion: 1})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, sdk.ErrVersionMismatch):
				mismatches.Add(1)
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("CAS race under lag %v: %d writer(s) won, %d got a version mismatch", faultproxy.CI.Lag, wins.Load(), mismatches.Load())
	require.Equal(t, int32(1), wins.Load())
	require.Equal(t, int32(writers-1), mismatches.Load())
	// The winner may be either instance, and the other one sees AWS's
	// lag (docs/backends/aws.md): both show version 2 once it has passed.
	for _, b := range []*Backend{f.b, other} {
		// EventuallyWithT: the condition runs off the test's goroutine,
		// where require's FailNow must not be called.
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			m, err := b.Describe(t.Context(), sdk.Ref{Project: f.project, Name: "db"})
			require.NoError(c, err)
			require.LessOrEqual(c, m.Version, int64(2))
			assert.Equal(c, int64(2), m.Version)
		}, 10*faultproxy.CI.Lag, faultproxy.CI.Lag/10)
	}
}

// TestUpsertRace: writers without ExpectedVersion all land, each on its own
// version number.
func TestUpsertRace(t *testing.T) {
	f := newFixture(t, nil)
	const writers = 6
	versions := make(chan int64, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := f.write(t, "db", map[string]string{"w": strconv.Itoa(i)}, sdk.WriteUpsert, 0, nil)
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
				return
			}
			versions <- m.Version
		}()
	}
	wg.Wait()
	close(versions)
	seen := map[int64]bool{}
	for v := range versions {
		require.False(t, seen[v], "version %d answered twice", v)
		seen[v] = true
	}
	require.Len(t, seen, writers)
	vs, err := f.b.Versions(t.Context(), sdk.Ref{Project: f.project, Name: "db"})
	require.NoError(t, err)
	require.Len(t, vs, writers)
	for i, v := range vs {
		require.Equal(t, int64(i+1), v.Version)
	}
}

func TestLabelBudget(t *testing.T) {
	f := newFixture(t, map[string]string{"tags": "a=1,b=2"})
	labels := map[string]string{}
	for i := range 47 {
		labels["l"+strconv.Itoa(i)] = "v"
	}
	_, err := f.write(t, "db", map[string]string{"k": "v"}, sdk.WriteCreate, 0, labels)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.ErrorContains(t, err, "labels")
	delete(labels, "l0")
	m, err := f.write(t, "db", map[string]string{"k": "v"}, sdk.WriteCreate, 0, labels)
	require.NoError(t, err, "46 labels + 2 own tags + 2 configured tags = 50")
	require.Len(t, m.Labels, 46)
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		settings map[string]string
		field    string
	}{
		{map[string]string{"region": "us-east-1", "bogus": "1"}, "settings.bogus"},
		{map[string]string{"region": "us-east-1", "prefix": "has space/"}, "prefix"},
		{map[string]string{"region": "us-east-1", "tags": "nope"}, "tags"},
		{map[string]string{"region": "us-east-1", "max_attempts": "0"}, "max_attempts"},
	}
	for _, tc := range tests {
		err := New().Configure(t.Context(), tc.settings)
		require.ErrorIs(t, err, sdk.ErrInvalid)
		require.ErrorContains(t, err, tc.field)
	}
	_, err := New().Describe(t.Context(), sdk.Ref{Project: "p", Name: "n"})
	require.ErrorIs(t, err, sdk.ErrUnavailable, "an unconfigured backend says so")
}

// TestErrorsOverHTTP drives the SDK against a fake endpoint that answers
// with AWS error documents: throttling is retried max_attempts times, then
// ErrUnavailable; access denied names the IAM action.
func TestErrorsOverHTTP(t *testing.T) {
	tests := []struct {
		code     string
		want     error
		attempts int32
		contains string
	}{
		{"ThrottlingException", sdk.ErrThrottled, 2, "DescribeSecret request rate"},
		// A quota, not a rate: answered at once, not retried.
		{"LimitExceededException", sdk.ErrThrottled, 1, "quota"},
		{"AccessDeniedException", sdk.ErrPermission, 1, "secretsmanager:DescribeSecret"},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				w.Header().Set("X-Amzn-ErrorType", tc.code)
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"__type":%q,"message":"synthetic"}`, tc.code)
			}))
			t.Cleanup(srv.Close)
			b := New()
			require.NoError(t, b.Configure(context.Background(), map[string]string{"region": "us-east-1", "endpoint": srv.URL, "max_attempts": "2"}))
			_, err := b.Describe(t.Context(), sdk.Ref{Project: "p", Name: "db"})
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.contains)
			require.Equal(t, tc.attempts, calls.Load())
		})
	}
}
