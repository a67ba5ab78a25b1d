package aws

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
	"github.com/secretgate/secretgate/sdk"
)

// The tests in this file run against moto behind the fault proxy and check
// the plugin against AWS behaviours that moto alone does not have.

// TestReadYourWritesUnderLag: with DescribeSecret, ListSecretVersionIds and
// ListSecrets a full second behind, a created or replaced secret is found at
// once by every operation of the same process, and no write that AWS stored
// is answered with an error.
func TestReadYourWritesUnderLag(t *testing.T) {
	f := newFixtureWith(t, faultproxy.Config{Lag: time.Second}, nil)
	ctx := t.Context()
	ref := sdk.Ref{Project: f.project, Name: "db"}
	m, err := f.write(t, "db", map[string]string{"a": "1"}, sdk.WriteCreate, 0, map[string]string{"env": "dev"})
	require.NoError(t, err, "create must not read back and fail")
	require.Equal(t, int64(1), m.Version)
	m, err = f.write(t, "db", map[string]string{"b": "2"}, sdk.WriteReplace, 1, map[string]string{"env": "prod"})
	require.NoError(t, err, "a CAS write right after create")
	require.Equal(t, int64(2), m.Version)

	d, err := f.b.Describe(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, int64(2), d.Version)
	require.Equal(t, []string{"b"}, d.Keys)
	require.Equal(t, map[string]string{"env": "prod"}, d.Labels)
	sec, err := f.b.Read(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, int64(2), sec.Version)
	require.Equal(t, "2", sec.Data["b"])
	require.Equal(t, map[string]string{"env": "prod"}, sec.Labels)
	page, err := f.b.List(ctx, sdk.ListRequest{Project: f.project})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 1)
	require.Equal(t, int64(2), page.Secrets[0].Version)
	vs, err := f.b.Versions(ctx, ref)
	require.NoError(t, err)
	require.Len(t, vs, 2)
	_, err = f.write(t, "db", map[string]string{"c": "3"}, sdk.WriteReplace, 1, nil)
	require.ErrorIs(t, err, sdk.ErrVersionMismatch, "a stale ExpectedVersion is refused while AWS lags")
	require.NoError(t, f.b.Delete(ctx, sdk.Ref{Project: f.project, Name: "db", Version: 2}), "a CAS delete right after a write")
	page, err = f.b.List(ctx, sdk.ListRequest{Project: f.project})
	require.NoError(t, err)
	require.Empty(t, page.Secrets, "a deleted secret is not listed")
}

// TestOwnLabelsWhileTagsLag: AWS shows a new version while the tag calls
// made right after its value are not visible yet (faultproxy TagLag). The
// process that wrote it shows the labels it wrote, and the next label
// change, computed from them, removes the tag it must (from the stale tags
// it would remove nothing, and the tag would stay for good).
func TestOwnLabelsWhileTagsLag(t *testing.T) {
	f := newFixtureWith(t, faultproxy.Config{TagLag: 5 * time.Second}, nil)
	other := New().(*Backend)
	require.NoError(t, other.Configure(t.Context(), map[string]string{"region": "us-east-1", "endpoint": f.proxy.Endpoint}))
	ctx := t.Context()
	ref := sdk.Ref{Project: f.project, Name: "db"}
	_, err := f.write(t, "db", map[string]string{"a": "1"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	written := map[string]string{"env": "prod", "owner": "a"}
	_, err = f.write(t, "db", map[string]string{"a": "2"}, sdk.WriteReplace, 1, written)
	require.NoError(t, err)

	stale, err := other.Describe(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, int64(2), stale.Version, "AWS shows the new version")
	require.Empty(t, stale.Labels, "but not its tags yet: the case under test")

	d, err := f.b.Describe(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, written, d.Labels)
	sec, err := f.b.Read(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, written, sec.Labels)
	page, err := f.b.List(ctx, sdk.ListRequest{Project: f.project})
	require.NoError(t, err)
	require.Len(t, page.Secrets, 1)
	require.Equal(t, written, page.Secrets[0].Labels)

	_, err = f.write(t, "db", map[string]string{"a": "2"}, sdk.WriteReplace, 2, map[string]string{"owner": "a"})
	require.NoError(t, err)
	raw, err := f.raw.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("secretgate/" + f.project + "/db")})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"owner": "a"}, labelsFromTags(raw.Tags), "AWS itself holds the labels of version 3")
}

// TestOtherProcessUnderLag: a second plugin process (no memory of the
// writes) reads a secret created a moment ago: Read waits, bounded, for
// DescribeSecret instead of answering 404, and a CAS write holding a version
// that AWS does not describe yet is checked by number, not refused.
func TestOtherProcessUnderLag(t *testing.T) {
	f := newFixtureWith(t, faultproxy.Config{Lag: time.Second}, nil)
	other := New().(*Backend)
	require.NoError(t, other.Configure(t.Context(), map[string]string{"region": "us-east-1", "endpoint": f.proxy.Endpoint}))
	ctx := t.Context()
	_, err := f.write(t, "db", map[string]string{"a": "1"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	_, err = f.write(t, "db", map[string]string{"a": "2"}, sdk.WriteReplace, 1, nil)
	require.NoError(t, err)
	m, err := other.Write(ctx, sdk.WriteRequest{Project: f.project, Name: "db", Data: map[string]string{"a": "3"}, Mode: sdk.WriteReplace, ExpectedVersion: 2})
	require.NoError(t, err, "version 2 exists though DescribeSecret does not show it yet")
	require.Equal(t, int64(3), m.Version)
	_, err = other.Write(ctx, sdk.WriteRequest{Project: f.project, Name: "db", Data: map[string]string{"a": "x"}, Mode: sdk.WriteReplace, ExpectedVersion: 2})
	require.ErrorIs(t, err, sdk.ErrVersionMismatch)
	_, err = other.Write(ctx, sdk.WriteRequest{Project: f.project, Name: "db", Data: map[string]string{"a": "x"}, Mode: sdk.WriteReplace, ExpectedVersion: 9})
	require.ErrorIs(t, err, sdk.ErrVersionMismatch, "a version that does not exist is refused at once")
	sec, err := other.Read(ctx, sdk.Ref{Project: f.project, Name: "db"})
	require.NoError(t, err)
	require.Equal(t, int64(3), sec.Version)
}

// TestDeleteThenCreate: AWS frees a deleted name asynchronously. A create
// waits for it (bounded by delete_wait), and says so plainly when it gives
// up; Capabilities declares the wait.
func TestDeleteThenCreate(t *testing.T) {
	const hold = 3 * time.Second
	f := newFixtureWith(t, faultproxy.Config{DeleteHold: hold}, nil)
	ctx := t.Context()
	ref := sdk.Ref{Project: f.project, Name: "db"}
	caps, err := f.b.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, DefaultDeleteWait, caps.DeletePropagation)

	_, err = f.write(t, "db", map[string]string{"gen": "1"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err)
	require.NoError(t, f.b.Delete(ctx, ref))
	start := time.Now()
	m, err := f.write(t, "db", map[string]string{"gen": "2"}, sdk.WriteCreate, 0, nil)
	require.NoError(t, err, "the create waits until AWS frees the name")
	require.Equal(t, int64(1), m.Version)
	require.GreaterOrEqual(t, time.Since(start), hold-500*time.Millisecond)

	short := New().(*Backend)
	require.NoError(t, short.Configure(ctx, map[string]string{"region": "us-east-1", "endpoint": f.proxy.Endpoint, "delete_wait": "500ms"}))
	caps, err = short.Capabilities(ctx)
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, caps.DeletePropagation)
	require.NoError(t, short.Delete(ctx, ref))
	_, err = short.Write(ctx, sdk.WriteRequest{Project: f.project, Name: "db", Data: map[string]string{"gen": "3"}, Mode: sdk.WriteCreate})
	require.ErrorIs(t, err, sdk.ErrUnavailable)
	require.ErrorContains(t, err, "still held by a deleted secret")
	_, err = short.Read(ctx, ref)
	require.ErrorIs(t, err, sdk.ErrNotFound, "meanwhile the secret reads as missing")
}

// TestIdenticalCreateRace: creates with identical data send the same
// ClientRequestToken and value, which AWS answers with success for all of
// them. Exactly one caller may be told it created the secret, and the
// secret carries that caller's labels.
func TestIdenticalCreateRace(t *testing.T) {
	f := newFixture(t, nil)
	const racers = 6
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		wins   []string
		exists int
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := strconv.Itoa(i)
			_, err := f.write(t, "db", map[string]string{"same": "data"}, sdk.WriteCreate, 0, map[string]string{"who": who})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, who)
			case errors.Is(err, sdk.ErrAlreadyExists):
				exists++
			default:
				t.Errorf("racer %s: %v", who, err)
			}
		}()
	}
	wg.Wait()
	require.Len(t, wins, 1, "exactly one create succeeds")
	require.Equal(t, racers-1, exists)
	d, err := f.raw.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("secretgate/" + f.project + "/db")})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"who": wins[0]}, labelsFromTags(d.Tags), "the winner's labels")
}

// TestForeignTagsBudget: tags that others add count toward AWS's 50; a
// write whose labels would not fit is refused before the value is stored.
func TestForeignTagsBudget(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	labels := map[string]string{}
	for i := range 40 {
		labels["l"+strconv.Itoa(i)] = "v"
	}
	_, err := f.write(t, "db", map[string]string{"k": "1"}, sdk.WriteCreate, 0, labels)
	require.NoError(t, err)
	var foreign []types.Tag
	for i := range 8 {
		foreign = append(foreign, types.Tag{Key: awsv2.String(fmt.Sprintf("ops-%d", i)), Value: awsv2.String("x")})
	}
	foreign = append(foreign, types.Tag{Key: awsv2.String("aws:cloudformation:stack-name"), Value: awsv2.String("free")})
	_, err = f.raw.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: awsv2.String("secretgate/" + f.project + "/db"), Tags: foreign})
	require.NoError(t, err)
	// 2 own + 8 foreign + 40 labels = 50 (aws: tags do not count).
	labels["one-more"] = "v"
	_, err = f.write(t, "db", map[string]string{"k": "2"}, sdk.WriteReplace, 1, labels)
	require.ErrorIs(t, err, sdk.ErrInvalid)
	require.ErrorContains(t, err, "labels")
	sec, err := f.b.Read(ctx, sdk.Ref{Project: f.project, Name: "db"})
	require.NoError(t, err)
	require.Equal(t, int64(1), sec.Version, "nothing was stored")
	delete(labels, "l0")
	m, err := f.write(t, "db", map[string]string{"k": "2"}, sdk.WriteReplace, 1, labels)
	require.NoError(t, err, "40 labels fit")
	require.Len(t, m.Labels, 40)
}

// TestQuotas: the versions quota and the write rate are distinct errors,
// both ErrThrottled naming the limit; the versions quota is not retried.
func TestQuotas(t *testing.T) {
	t.Run("versions", func(t *testing.T) {
		f := newFixtureWith(t, faultproxy.Config{MaxVersions: 3}, nil)
		for i := range 3 {
			_, err := f.write(t, "db", map[string]string{"i": strconv.Itoa(i)}, sdk.WriteUpsert, 0, nil)
			require.NoError(t, err)
		}
		f.proxy.Reset()
		_, err := f.write(t, "db", map[string]string{"i": "3"}, sdk.WriteUpsert, 0, nil)
		var te *sdk.ThrottleError
		require.ErrorAs(t, err, &te)
		require.Contains(t, te.Limit, "versions per secret")
		require.Equal(t, 10*time.Minute, te.RetryAfter)
		require.Equal(t, 1, f.proxy.Calls()["PutSecretValue"], "a quota is not retried")
	})
	t.Run("rate", func(t *testing.T) {
		f := newFixtureWith(t, faultproxy.Config{WriteRate: 0.01, WriteBurst: 1}, map[string]string{"max_attempts": "2"})
		_, err := f.write(t, "db", map[string]string{"i": "0"}, sdk.WriteCreate, 0, nil)
		require.NoError(t, err, "CreateSecret has its own quota")
		_, err = f.write(t, "db", map[string]string{"i": "1"}, sdk.WriteReplace, 1, nil)
		require.NoError(t, err, "the burst allows one write")
		_, err = f.write(t, "db", map[string]string{"i": "2"}, sdk.WriteReplace, 2, nil)
		var te *sdk.ThrottleError
		require.ErrorAs(t, err, &te)
		require.Contains(t, te.Limit, "PutSecretValue and UpdateSecret together, 50 requests per second")
		require.NotErrorIs(t, err, sdk.ErrUnavailable)
	})
}

// TestCallsPerOperation counts the calls each operation makes (in the
// proxy) and checks the budget: a write spends one unit of the
// PutSecretValue+UpdateSecret quota. The figures are logged (go test -v).
func TestCallsPerOperation(t *testing.T) {
	f := newFixtureWith(t, faultproxy.Config{}, nil)
	ctx := t.Context()
	for i := range 100 {
		_, err := f.write(t, fmt.Sprintf("s%03d", i), map[string]string{"k": "v"}, sdk.WriteCreate, 0, nil)
		require.NoError(t, err)
	}
	measure := func(name string, op func()) map[string]int {
		f.proxy.Reset()
		op()
		c := f.proxy.Calls()
		t.Logf("%s: %v", name, c)
		return c
	}
	fresh := func() { f.b.recent = newRecentWrites(recentWindow) } // as another process would
	create := measure("Write (create)", func() {
		_, err := f.write(t, "db", map[string]string{"k": "1"}, sdk.WriteCreate, 0, nil)
		require.NoError(t, err)
	})
	write := measure("Write (new version)", func() {
		_, err := f.write(t, "db", map[string]string{"k": "2"}, sdk.WriteReplace, 1, nil)
		require.NoError(t, err)
	})
	fresh()
	read := measure("Read", func() {
		_, err := f.b.Read(ctx, sdk.Ref{Project: f.project, Name: "s000"})
		require.NoError(t, err)
	})
	list := measure("List of 100 (never rewritten)", func() {
		page, err := f.b.List(ctx, sdk.ListRequest{Project: f.project, Prefix: "s"})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 100)
	})
	for i := range 100 {
		_, err := f.write(t, fmt.Sprintf("s%03d", i), map[string]string{"k": "w"}, sdk.WriteReplace, 1, nil)
		require.NoError(t, err)
	}
	fresh()
	rewritten := measure("List of 100 (each written twice)", func() {
		page, err := f.b.List(ctx, sdk.ListRequest{Project: f.project, Prefix: "s"})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 100)
		require.Equal(t, int64(2), page.Secrets[0].Version)
	})
	del := measure("Delete", func() {
		require.NoError(t, f.b.Delete(ctx, sdk.Ref{Project: f.project, Name: "db"}))
	})
	require.Equal(t, 1, write["PutSecretValue"]+write["UpdateSecret"], "one write quota unit per write")
	require.Zero(t, create["PutSecretValue"]+create["UpdateSecret"], "a create spends none")
	require.Equal(t, map[string]int{"DescribeSecret": 1, "GetSecretValue": 1}, read)
	require.Equal(t, map[string]int{"ListSecrets": 1}, list)
	require.Equal(t, map[string]int{"ListSecrets": 1, "BatchGetSecretValue": 5}, rewritten, "20 values per BatchGetSecretValue")
	require.Equal(t, map[string]int{"DescribeSecret": 1, "DeleteSecret": 1}, del)
}

// TestListWithoutBatchPermission: credentials without
// secretsmanager:BatchGetSecretValue still list, one GetSecretValue per
// rewritten secret, and the refused call is not tried again.
func TestListWithoutBatchPermission(t *testing.T) {
	f := newFixtureWith(t, faultproxy.Config{Deny: []string{"BatchGetSecretValue"}}, nil)
	ctx := t.Context()
	for i := range 3 {
		name := fmt.Sprintf("s%d", i)
		_, err := f.write(t, name, map[string]string{"k": "1"}, sdk.WriteCreate, 0, nil)
		require.NoError(t, err)
		_, err = f.write(t, name, map[string]string{"k": "1", "j": "2"}, sdk.WriteReplace, 1, nil)
		require.NoError(t, err)
	}
	f.b.recent = newRecentWrites(recentWindow)
	for range 2 {
		f.proxy.Reset()
		page, err := f.b.List(ctx, sdk.ListRequest{Project: f.project})
		require.NoError(t, err)
		require.Len(t, page.Secrets, 3)
		for _, m := range page.Secrets {
			require.Equal(t, int64(2), m.Version)
			require.Equal(t, []string{"j", "k"}, m.Keys)
		}
		require.Equal(t, 3, f.proxy.Calls()["GetSecretValue"])
	}
	require.Zero(t, f.proxy.Calls()["BatchGetSecretValue"], "not tried again after AccessDenied")
}
