package aws

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretgate/secretgate/sdk"
)

// Backend is the AWS Secrets Manager backend. New returns it unconfigured;
// Configure must be called first. It is safe for concurrent use.
type Backend struct {
	client     *secretsmanager.Client
	prefix     string
	kmsKeyID   string
	tags       map[string]string
	deleteWait time.Duration
	settleWait time.Duration
	recent     *recentWrites
	noBatch    atomic.Bool // BatchGetSecretValue was refused (IAM)
}

// New returns an unconfigured AWS Secrets Manager backend.
func New() sdk.Backend { return &Backend{recent: newRecentWrites(recentWindow)} }

func (b *Backend) ready() error {
	if b.client == nil {
		return fmt.Errorf("aws backend is not configured: %w", sdk.ErrUnavailable)
	}
	return nil
}

// Capabilities. MaxVersions is 0 because AWS prunes by its own rule, not by
// a count: it "keeps 100 of the most recent versions, but it keeps all
// secret versions created in the last 24 hours" (PutSecretValue), so no
// fixed number of versions is guaranteed to be gone or kept. Versions lists
// what AWS still has.
func (b *Backend) Capabilities(context.Context) (sdk.Capabilities, error) {
	// AWS frees a deleted name asynchronously; create waits up to
	// delete_wait for it, so that is the delay callers may see.
	return sdk.Capabilities{Backend: "aws", Versions: true, MaxVersions: 0, CAS: true, Labels: true, DeletePropagation: b.deleteWait}, nil
}

// Ping lists at most one secret under the prefix: it proves the endpoint,
// the credentials and the secretsmanager:ListSecrets permission.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.ready(); err != nil {
		return err
	}
	in := &secretsmanager.ListSecretsInput{MaxResults: awsv2.Int32(1)}
	if b.prefix != "" {
		in.Filters = []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{b.prefix}}}
	}
	_, err := b.client.ListSecrets(ctx, in)
	return mapError("ListSecrets", "prefix "+strconv.Quote(b.prefix), err)
}

func what(project, name string) string {
	return fmt.Sprintf("secret %q in project %q", name, project)
}

// sleep waits a jittered, growing delay before a retry.
func sleep(ctx context.Context, attempt int) error {
	d := time.Duration(1<<min(attempt, 7)) * 5 * time.Millisecond
	return sdk.Sleep(ctx, d/2+sdk.Jitter(d))
}
