package faultproxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/mototest/faultproxy"
)

// slowCreate is an upstream that applies CreateSecret at once but answers
// it only when released, as moto does when it is starved of processor
// between storing a secret and replying: the window in which a read may
// see a write that has not returned.
type slowCreate struct {
	mu      sync.Mutex
	created bool
	applied chan struct{}
	release chan struct{}
}

const slowARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:slow/a-AbCdEf"

func (u *slowCreate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	u.mu.Lock()
	created := u.created
	u.mu.Unlock()
	answer := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	switch {
	case op == "CreateSecret":
		u.mu.Lock()
		u.created = true
		u.mu.Unlock()
		close(u.applied)
		<-u.release
		answer(map[string]string{"ARN": slowARN, "Name": "slow/a", "VersionId": "00000000-0000-4000-8000-000000000001"})
	case op == "ListSecrets" && created:
		answer(map[string]any{"SecretList": []map[string]any{{"ARN": slowARN, "Name": "slow/a"}}})
	case op == "ListSecrets":
		answer(map[string]any{"SecretList": []any{}})
	case !created:
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.WriteHeader(http.StatusBadRequest)
		answer(map[string]string{"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
	case op == "DescribeSecret":
		answer(map[string]string{"ARN": slowARN, "Name": "slow/a"})
	default: // ListSecretVersionIds
		answer(map[string]any{"ARN": slowARN, "Name": "slow/a", "Versions": []any{}})
	}
}

// TestNothingVisibleBeforeTheWriteReturns: a write the upstream has applied
// but not answered is not seen by reads through the proxy, and is seen the
// lag after it returned. Seen earlier, a reader could see a secret and then,
// once the write's snapshot was registered, not see it any more.
func TestNothingVisibleBeforeTheWriteReturns(t *testing.T) {
	const lag = 300 * time.Millisecond
	u := &slowCreate{applied: make(chan struct{}), release: make(chan struct{})}
	up := httptest.NewServer(u)
	t.Cleanup(up.Close)
	var once sync.Once
	release := func() { once.Do(func() { close(u.release) }) }
	t.Cleanup(release) // runs first: a failed check must not leave Close waiting
	p := faultproxy.Start(t, up.URL, faultproxy.Config{Lag: lag})
	c, ctx := client(t, p), t.Context()

	created := make(chan error, 1)
	go func() {
		_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("slow/a"), SecretString: awsv2.String("1")})
		created <- err
	}()
	<-u.applied
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("slow/a")})
	require.Equal(t, "ResourceNotFoundException", code(err), "a create in flight is not described")
	l, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	require.NoError(t, err)
	require.Empty(t, l.SecretList, "nor listed")

	release()
	require.NoError(t, <-created)
	returned := time.Now()
	_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("slow/a")})
	require.Equal(t, "ResourceNotFoundException", code(err), "nor right after it returned")
	require.Less(t, time.Since(returned), lag, "the check ran within the lag")
	time.Sleep(lag)
	_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("slow/a")})
	require.NoError(t, err, "described once the lag after the write has passed")
	l, err = c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	require.NoError(t, err)
	require.Len(t, l.SecretList, 1, "and listed")
}

// TestFailedWriteLeavesNoLag: a write moto refuses changed nothing, so it
// holds back nothing: a value written after it is described once its own
// lag has passed. (Its snapshot, pending while it was in flight, is gone.)
func TestFailedWriteLeavesNoLag(t *testing.T) {
	const lag = 200 * time.Millisecond
	p := faultproxy.StartMoto(t, faultproxy.Config{Lag: lag})
	c, ctx := client(t, p), t.Context()
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("failed/a"), SecretString: awsv2.String("1"), ClientRequestToken: awsv2.String("00000000-0000-4000-8000-000000000001")})
	require.NoError(t, err)
	time.Sleep(2 * lag)
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awsv2.String("failed/a"), SecretString: awsv2.String("other")})
	require.Equal(t, "ResourceExistsException", code(err), "a second create of the name is refused")
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awsv2.String("failed/a"), SecretString: awsv2.String("2"), ClientRequestToken: awsv2.String("00000000-0000-4000-8000-000000000002")})
	require.NoError(t, err)
	time.Sleep(2 * lag)
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String("failed/a")})
	require.NoError(t, err)
	require.Len(t, d.VersionIdsToStages, 2, "the new version is described after its lag, not held back by the refused create")
}
