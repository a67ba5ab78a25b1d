package aws

// Settings: what Configure reads, and the limits it holds them to.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretgate/secretgate/sdk"
)

// DefaultPrefix is prepended to every AWS secret name unless the `prefix`
// setting says otherwise.
const DefaultPrefix = "secretgate/"

const (
	defaultMaxAttempts = 5
	// writeAttempts bounds how often a write without ExpectedVersion starts
	// over after losing a race for the next version number.
	writeAttempts = 32
	listBatch     = 100 // ListSecrets/ListSecretVersionIds: MaxResults 1-100

	// DefaultDeleteWait is how long a create waits for a deleted name to be
	// freed by AWS, like Terraform's aws_secretsmanager_secret (2 minutes).
	DefaultDeleteWait = 2 * time.Minute
	// DefaultSettleWait bounds the retries of a read that follows a write
	// and finds AWS not showing it yet.
	DefaultSettleWait = 10 * time.Second
	// recentWindow is how long the plugin overlays its own writes on what
	// AWS shows: "ListSecrets might not reflect changes from the last five
	// minutes" (ListSecrets API reference).
	recentWindow = 5 * time.Minute
)

var knownSettings = []string{"region", "endpoint", "prefix", "profile", "kms_key_id", "tags", "max_attempts", "delete_wait", "settle_wait"}

// duration parses a duration setting within [0, limit].
func duration(settings map[string]string, key string, def, limit time.Duration) (time.Duration, error) {
	s, ok := settings[key]
	if !ok || s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > limit {
		return 0, sdk.Invalid(key, "must be a duration from 0s to %v, like \"30s\"", limit)
	}
	return d, nil
}

// Configure reads the settings (see the package doc) and loads credentials
// through the standard AWS chain. It makes no AWS call: Ping does.
func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	for k := range settings {
		if !slices.Contains(knownSettings, k) {
			return sdk.Invalid("settings."+k, "is not a setting of the aws backend (known: %s)", strings.Join(knownSettings, ", "))
		}
	}
	prefix, ok := settings["prefix"]
	if !ok {
		prefix = DefaultPrefix
	}
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	tags, err := parseTags(settings["tags"])
	if err != nil {
		return err
	}
	attempts := defaultMaxAttempts
	if s := settings["max_attempts"]; s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 20 {
			return sdk.Invalid("max_attempts", "must be an integer from 1 to 20")
		}
		attempts = n
	}
	deleteWait, err := duration(settings, "delete_wait", DefaultDeleteWait, 10*time.Minute)
	if err != nil {
		return err
	}
	settleWait, err := duration(settings, "settle_wait", DefaultSettleWait, time.Minute)
	if err != nil {
		return err
	}

	opts := []func(*config.LoadOptions) error{
		// The standard retryer backs off with jitter on throttling and
		// transient errors; once it gives up, mapError says ErrUnavailable.
		config.WithRetryer(func() awsv2.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				// LimitExceededException is a quota (versions per secret),
				// not a rate: retrying within seconds cannot help, so it is
				// answered at once (the SDK counts it as throttling).
				o.Retryables = append([]retry.IsErrorRetryable{noRetryCodes{codeLimitExceeded: true}}, o.Retryables...)
			})
		}),
	}
	if r := settings["region"]; r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	if p := settings["profile"]; p != "" {
		opts = append(opts, config.WithSharedConfigProfile(p))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("aws: loading configuration and credentials: %w", err)
	}
	if cfg.Region == "" {
		return sdk.Invalid("region", "is required (or AWS_REGION, or a region in the profile)")
	}
	endpoint := settings["endpoint"]
	b.client = secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if endpoint != "" {
			o.BaseEndpoint = awsv2.String(endpoint)
		}
	})
	b.prefix = prefix
	b.kmsKeyID = settings["kms_key_id"]
	b.tags = tags
	b.deleteWait, b.settleWait = deleteWait, settleWait
	if b.recent == nil {
		b.recent = newRecentWrites(recentWindow)
	}
	return nil
}
