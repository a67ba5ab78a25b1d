package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

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
	// createAttempts bounds how long a create waits for a force-deleted name
	// to become free (DeleteSecret: the deletion is asynchronous, "there
	// might be a short delay before the secret is permanently deleted").
	listBatch = 100 // ListSecrets/ListSecretVersionIds: MaxResults 1-100

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

// state is what DescribeSecret tells about one secretgate secret.
type state struct {
	arn       string
	tags      []types.Tag
	created   time.Time
	currentID string // VersionId carrying AWSCURRENT
	cache     metaCache
	hasCache  bool
}

// describe fetches the secret's state; a secret that is missing, scheduled
// for deletion, or not tagged as this project's secret is ErrNotFound.
func (b *Backend) describe(ctx context.Context, project, name string) (state, error) {
	out, err := b.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awsv2.String(secretID(b.prefix, project, name))})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) {
			return state{}, sdk.NotFound(project, name)
		}
		return state{}, mapError("DescribeSecret", what(project, name), err)
	}
	return b.stateOf(project, name, out.ARN, out.Tags, out.CreatedDate, out.DeletedDate, out.VersionIdsToStages, out.Description)
}

// settle retries f with backoff while it reports retry, for at most
// settle_wait: reads that follow a write wait for AWS to show it.
func (b *Backend) settle(ctx context.Context, f func() (retry bool, err error)) error {
	deadline := time.Now().Add(b.settleWait)
	for attempt := 0; ; attempt++ {
		again, err := f()
		if !again || time.Now().After(deadline) {
			return err
		}
		if err := sleep(ctx, attempt+2); err != nil {
			return err
		}
	}
}

func (b *Backend) stateOf(project, name string, arn *string, tags []types.Tag, created, deleted *time.Time, stages map[string][]string, desc *string) (state, error) {
	// DeletedDate is set while a deletion is pending: the secret is gone for
	// secretgate's purposes even if AWS still shows it.
	if deleted != nil || !ownsSecret(tags, project, name) {
		return state{}, sdk.NotFound(project, name)
	}
	st := state{arn: deref(arn), tags: tags, created: utc(created), currentID: currentVersionID(stages)}
	st.cache, st.hasCache = decodeCache(deref(desc))
	if st.currentID == "" {
		// A secret without a current version holds no value; secretgate never
		// makes one (CreateSecret always carries SecretString).
		return state{}, sdk.NotFound(project, name)
	}
	return st, nil
}

func (st state) hint() int64 {
	if st.hasCache {
		return st.cache.V
	}
	return 1
}

// errForeign says that a version was not written by secretgate, so it has
// no number in the uniform model.
func errForeign(project, name, id string) error {
	return fmt.Errorf("aws: %s: its version %s was not written by secretgate (console, rotation lambda?); write it again through secretgate only after removing that version", what(project, name), id)
}

// currentNumber maps the AWSCURRENT version to its number.
func (st state) currentNumber(project, name string) (int64, error) {
	if st.hasCache && versionToken(project, name, st.cache.V) == st.currentID {
		return st.cache.V, nil
	}
	n, ok := versionNumber(project, name, st.currentID, st.hint())
	if !ok {
		return 0, errForeign(project, name, st.currentID)
	}
	return n, nil
}

// view is the secret as this process should report it: AWS's state, or,
// while AWS lags behind this process's own newer write or delete, what
// that write stored. ok is false when the secret is to be reported missing.
type view struct {
	st     state
	hasSt  bool
	recent recentEntry // valid when newer
	newer  bool        // recent describes a newer version than st
}

// current returns the view of a secret: describe, overlaid with this
// process's own recent writes (see recentWrites).
func (b *Backend) current(ctx context.Context, project, name string) (view, error) {
	st, err := b.describe(ctx, project, name)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return view{}, err
	}
	v := view{st: st, hasSt: err == nil}
	r, ok := b.recent.get(project, name)
	switch {
	case !ok:
	case r.deleted:
		if !v.hasSt || st.arn == r.arn {
			return view{}, sdk.NotFound(project, name)
		}
	case !v.hasSt:
		v.recent, v.newer = r, true
	case st.arn == r.arn:
		if cur, err := st.currentNumber(project, name); err != nil || cur < r.meta.Version {
			v.recent, v.newer = r, err == nil
		}
	}
	if !v.hasSt && !v.newer {
		return view{}, sdk.NotFound(project, name)
	}
	return v, nil
}

func (v view) arn() string {
	if v.newer {
		return v.recent.arn
	}
	return v.st.arn
}

// meta builds the latest metadata: from this process's newer write, from
// the Description cache when it describes the AWSCURRENT version, else by
// reading that version once.
func (b *Backend) meta(ctx context.Context, project, name string, v view) (sdk.Meta, error) {
	if v.newer {
		return cloneMeta(v.recent.meta), nil
	}
	st := v.st
	m := sdk.Meta{Project: project, Name: name, Labels: labelsFromTags(st.tags), CreatedAt: st.created}
	if st.hasCache && len(st.cache.K) > 0 && versionToken(project, name, st.cache.V) == st.currentID {
		m.Version, m.Keys, m.UpdatedAt = st.cache.V, slices.Clone(st.cache.K), st.cache.updated(st.created)
		if !m.UpdatedAt.IsZero() {
			return m, nil
		}
	}
	n, err := st.currentNumber(project, name)
	if err != nil {
		return sdk.Meta{}, err
	}
	out, err := b.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: awsv2.String(st.arn), VersionId: awsv2.String(st.currentID),
	})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) {
			return sdk.Meta{}, sdk.NotFound(project, name)
		}
		return sdk.Meta{}, mapError("GetSecretValue", what(project, name), err)
	}
	data, err := decodeValue(project, name, out.SecretString)
	if err != nil {
		return sdk.Meta{}, err
	}
	m.Version, m.Keys, m.UpdatedAt = n, sdk.SortedKeys(data), utc(out.CreatedDate)
	return m, nil
}

func decodeValue(project, name string, s *string) (map[string]string, error) {
	if s == nil {
		return nil, fmt.Errorf("aws: %s holds no SecretString; it was not written by secretgate", what(project, name))
	}
	data, err := sdk.DecodeData([]byte(*s))
	if err != nil {
		// The decoder's message could quote the value: do not wrap it.
		return nil, fmt.Errorf("aws: %s: SecretString is not a JSON object of strings", what(project, name))
	}
	return data, nil
}

// Describe returns the latest metadata, without reading the value unless the
// Description cache is stale (see the package doc).
func (b *Backend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateRef(sdk.Ref{Project: ref.Project, Name: ref.Name}); err != nil {
		return sdk.Meta{}, err
	}
	v, err := b.current(ctx, ref.Project, ref.Name)
	if err != nil {
		return sdk.Meta{}, err
	}
	return b.meta(ctx, ref.Project, ref.Name, v)
}

// Read returns one version's values. DescribeSecret (labels, creation) and
// GetSecretValue run concurrently. A latest read never returns a version
// older than one this process wrote (GetSecretValue by AWSCURRENT may lag).
func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := b.ready(); err != nil {
		return sdk.Secret{}, err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	id := secretID(b.prefix, ref.Project, ref.Name)
	get := func(version int64) (*secretsmanager.GetSecretValueOutput, error) {
		in := &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(id)}
		if version > 0 {
			in.VersionId = awsv2.String(versionToken(ref.Project, ref.Name, version))
		} else {
			in.VersionStage = awsv2.String(stageCurrent)
		}
		return b.client.GetSecretValue(ctx, in)
	}
	var (
		v      view
		out    *secretsmanager.GetSecretValueOutput
		getErr error
	)
	err := b.settle(ctx, func() (bool, error) {
		var (
			wg    sync.WaitGroup
			stErr error
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, stErr = b.current(ctx, ref.Project, ref.Name)
		}()
		out, getErr = get(ref.Version)
		wg.Wait()
		if stErr == nil || !errors.Is(stErr, sdk.ErrNotFound) || getErr != nil {
			return false, stErr
		}
		// The value is there but DescribeSecret does not show the secret
		// yet: it lags behind a create that another process made.
		return true, fmt.Errorf("aws: %s: AWS returns its value but does not describe it yet (eventual consistency); retry shortly: %w", what(ref.Project, ref.Name), sdk.ErrUnavailable)
	})
	if err != nil {
		return sdk.Secret{}, err
	}
	notFound := func() error {
		if ref.Version > 0 {
			return sdk.VersionNotFound(ref.Project, ref.Name, ref.Version)
		}
		return sdk.NotFound(ref.Project, ref.Name)
	}
	if getErr == nil && ref.Version == 0 && v.newer {
		if n, ok := versionNumber(ref.Project, ref.Name, deref(out.VersionId), v.recent.meta.Version); ok && n < v.recent.meta.Version {
			// AWSCURRENT still names an older version than this process
			// wrote (a newer one, written elsewhere, is kept).
			out, getErr = get(v.recent.meta.Version)
		}
	}
	if getErr != nil {
		if errors.Is(mapError("", "", getErr), sdk.ErrNotFound) || isCode(getErr, codeInvalidReq) {
			return sdk.Secret{}, notFound()
		}
		return sdk.Secret{}, mapError("GetSecretValue", what(ref.Project, ref.Name), getErr)
	}
	if deref(out.ARN) != v.arn() {
		// Deleted and created again between the two calls.
		return sdk.Secret{}, notFound()
	}
	n := ref.Version
	if n == 0 {
		hint := v.st.hint()
		if v.newer {
			hint = v.recent.meta.Version
		}
		var ok bool
		if n, ok = versionNumber(ref.Project, ref.Name, deref(out.VersionId), hint); !ok {
			return sdk.Secret{}, errForeign(ref.Project, ref.Name, deref(out.VersionId))
		}
	}
	data, err := decodeValue(ref.Project, ref.Name, out.SecretString)
	if err != nil {
		return sdk.Secret{}, err
	}
	m := sdk.Meta{
		Project: ref.Project, Name: ref.Name, Keys: sdk.SortedKeys(data), Version: n,
		Labels: labelsFromTags(v.st.tags), CreatedAt: v.st.created, UpdatedAt: utc(out.CreatedDate),
	}
	if v.newer {
		m.Labels, m.CreatedAt = sdk.CloneData(v.recent.meta.Labels), v.recent.meta.CreatedAt
	}
	return sdk.Secret{Meta: m, Data: data}, nil
}

// Write stores a new version. The version number is the check-and-set: the
// new version's ClientRequestToken is versionToken(n+1), and AWS refuses a
// token that already names a version with a different value
// (PutSecretValue, ClientRequestToken: "If a version with this value already
// exists and the version of the SecretString and SecretBinary values are
// different from those in the request, then the request fails because you
// can't modify a secret version"), so of two writers racing for n+1 exactly
// one stores a new value. Writes go to the ARN read just before, so a
// secret deleted and created again in between is not written to. A write
// is one PutSecretValue (one unit of the 50 per second that PutSecretValue
// and UpdateSecret share), plus TagResource/UntagResource when labels
// change.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	if req.Labels != nil {
		if err := checkTagBudget(2+len(b.tags), req.Labels); err != nil {
			return sdk.Meta{}, err
		}
	}
	body, err := sdk.EncodeData(req.Data)
	if err != nil {
		return sdk.Meta{}, sdk.Invalid("data", "cannot be encoded as JSON")
	}
	keys := sdk.SortedKeys(req.Data)
	settleBy := time.Now().Add(b.settleWait)
	var floor int64 // the lowest version number not yet known to be taken
	for attempt := 0; attempt < writeAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, attempt); err != nil {
				return sdk.Meta{}, err
			}
		}
		v, err := b.current(ctx, req.Project, req.Name)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			if req.ExpectedVersion > 0 && time.Now().Before(settleBy) && b.hasVersion(ctx, secretID(b.prefix, req.Project, req.Name), req, req.ExpectedVersion) {
				// The expected version exists, DescribeSecret does not show
				// its secret yet: wait (bounded) before answering 404.
				continue
			}
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, err
			}
			m, retry, err := b.create(ctx, req, body, keys)
			if retry {
				continue
			}
			return m, err
		case err != nil:
			return sdk.Meta{}, err
		}
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
		}
		var cur int64
		if v.newer {
			cur = v.recent.meta.Version
		} else if cur, err = v.st.currentNumber(req.Project, req.Name); err != nil {
			return sdk.Meta{}, err
		}
		labels := b.labelsOf(v)
		if req.Labels != nil {
			// Tags that others put on the secret count against the 50 too:
			// refuse before storing the value, not at TagResource after.
			others := countOtherTags(v.st.tags)
			if err := checkTagBudget(max(others, 2+len(b.tags)), req.Labels); err != nil {
				return sdk.Meta{}, err
			}
		}
		n := max(cur+1, floor)
		if req.ExpectedVersion > 0 {
			switch {
			case cur > req.ExpectedVersion:
				return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, cur)
			case cur < req.ExpectedVersion && !b.hasVersion(ctx, v.arn(), req, req.ExpectedVersion):
				return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, cur)
			}
			// Version e exists (AWS's view of AWSCURRENT may lag behind it).
			// Writing token(e+1) is the check-and-set: it fails if e+1
			// exists, and versions are written in order, so it succeeds only
			// while e is the latest.
			n = req.ExpectedVersion + 1
		}
		out, err := b.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:           awsv2.String(v.arn()),
			ClientRequestToken: awsv2.String(versionToken(req.Project, req.Name, n)),
			SecretString:       awsv2.String(string(body)),
		})
		lost := false
		switch {
		case isCode(err, codeExists):
			lost = true // another writer stored version n first
		case err != nil && (errors.Is(mapError("", "", err), sdk.ErrNotFound) || isCode(err, codeInvalidReq)):
			// Deleted (or scheduled for deletion) since describe.
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			}
			continue
		case err != nil:
			return sdk.Meta{}, mapError("PutSecretValue", what(req.Project, req.Name), err)
		case !slices.Contains(out.VersionStages, stageCurrent):
			// AWS ignored the request as a repeat of an identical version n
			// that is no longer current: a newer write won.
			lost = true
		}
		if lost {
			if req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, 0)
			}
			floor = n + 1 // version n exists whatever AWS shows
			continue
		}
		created := v.st.created
		if v.newer {
			created = v.recent.meta.CreatedAt
		}
		return b.finishWrite(ctx, req, v.arn(), labels, created, n, keys)
	}
	return sdk.Meta{}, fmt.Errorf("aws: %s: lost the race for a new version %d times in a row: %w", what(req.Project, req.Name), writeAttempts, sdk.ErrUnavailable)
}

// hasVersion says whether version n of the secret exists, by reading it by
// number: a lagging DescribeSecret may show an older AWSCURRENT than a
// caller has already seen. Errors count as "no": the caller then reports a
// mismatch, which is safe.
func (b *Backend) hasVersion(ctx context.Context, secretID string, req sdk.WriteRequest, n int64) bool {
	_, err := b.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: awsv2.String(secretID), VersionId: awsv2.String(versionToken(req.Project, req.Name, n)),
	})
	return err == nil
}

// labelsOf returns the labels a view shows.
func (b *Backend) labelsOf(v view) map[string]string {
	if v.newer {
		return sdk.CloneData(v.recent.meta.Labels)
	}
	return labelsFromTags(v.st.tags)
}

// newNonce returns a random tag for one create (see create).
func newNonce() (string, error) {
	var buf [8]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("aws: reading random bytes: %w", err)
	}
	return hex.EncodeToString(buf[:]), nil
}

// create makes a new secret holding version 1. retry reports that the name
// turned out to exist (an upsert then writes a new version).
//
// Two creates with identical data send the same ClientRequestToken and
// value, and AWS answers both with success (the second is ignored as a
// repeat). Each create therefore puts a random nonce in the Description and
// reads it back: the create that finds another nonce did not create the
// secret, and reports ErrAlreadyExists (create) or writes a new version
// (upsert), so no caller's labels are dropped silently.
func (b *Backend) create(ctx context.Context, req sdk.WriteRequest, body []byte, keys []string) (sdk.Meta, bool, error) {
	nonce, err := newNonce()
	if err != nil {
		return sdk.Meta{}, false, err
	}
	id := secretID(b.prefix, req.Project, req.Name)
	in := &secretsmanager.CreateSecretInput{
		Name:               awsv2.String(id),
		SecretString:       awsv2.String(string(body)),
		ClientRequestToken: awsv2.String(versionToken(req.Project, req.Name, 1)),
		Description:        awsv2.String(encodeCache(metaCache{V: 1, K: keys, C: nonce})),
		Tags:               createTags(req.Project, req.Name, b.tags, req.Labels),
	}
	if b.kmsKeyID != "" {
		in.KmsKeyId = awsv2.String(b.kmsKeyID)
	}
	out, err := b.createWaiting(ctx, req, in)
	switch {
	case isCode(err, codeExists):
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, false, sdk.AlreadyExists(req.Project, req.Name)
		}
		return sdk.Meta{}, true, nil
	case err != nil:
		return sdk.Meta{}, false, err
	}
	arn := deref(out.ARN)
	labels := sdk.CloneData(req.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	m := sdk.Meta{Project: req.Project, Name: req.Name, Keys: keys, Version: 1, Labels: labels}
	// Read the secret back for its creation time and the nonce, waiting
	// (bounded) for AWS to show it. If it never does within settle_wait the
	// value is stored all the same: the answer then carries this host's
	// clock and the nonce goes unchecked.
	var st state
	err = b.settle(ctx, func() (bool, error) {
		var err error
		st, err = b.describe(ctx, req.Project, req.Name)
		return errors.Is(err, sdk.ErrNotFound) || (err == nil && st.arn != arn), err
	})
	switch {
	case err == nil && st.arn == arn && st.cache.C != nonce:
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, false, sdk.AlreadyExists(req.Project, req.Name)
		}
		return sdk.Meta{}, true, nil
	case err == nil && st.arn == arn:
		m.CreatedAt = st.created
	case err != nil && !errors.Is(err, sdk.ErrNotFound):
		return sdk.Meta{}, false, fmt.Errorf("aws: %s was created as version 1, reading it back failed: %w", what(req.Project, req.Name), err)
	default:
		m.CreatedAt = time.Now().UTC()
	}
	m.UpdatedAt = m.CreatedAt
	b.recent.wrote(arn, m)
	return m, false, nil
}

// createWaiting sends CreateSecret, waiting while the name is still held by
// a deleted secret: AWS deletes asynchronously ("there might be a short
// delay before the secret is permanently deleted", DeleteSecret) and
// refuses the name with InvalidRequestException meanwhile. It waits at most
// delete_wait, and stops early enough to answer before ctx's deadline.
func (b *Backend) createWaiting(ctx context.Context, req sdk.WriteRequest, in *secretsmanager.CreateSecretInput) (*secretsmanager.CreateSecretOutput, error) {
	start := time.Now()
	stop := start.Add(b.deleteWait)
	if d, ok := ctx.Deadline(); ok {
		// Leave time to answer: a clear 503 beats a deadline error.
		stop = minTime(stop, d.Add(-time.Until(d)/10))
	}
	for attempt := 0; ; attempt++ {
		out, err := b.client.CreateSecret(ctx, in)
		switch {
		case err == nil, isCode(err, codeExists):
			return out, err
		case !isCode(err, codeInvalidReq) || !heldByDeletion(err):
			return nil, mapError("CreateSecret", what(req.Project, req.Name), err)
		}
		d := time.Duration(1<<min(attempt, 6)) * 50 * time.Millisecond // up to 3.2 s
		d = d/2 + sdk.Jitter(d)
		if time.Now().Add(d).After(stop) {
			return nil, fmt.Errorf("aws: %s: the name is still held by a deleted secret (AWS frees names asynchronously; waited %v): retry later: %w",
				what(req.Project, req.Name), time.Since(start).Round(time.Millisecond), sdk.ErrUnavailable)
		}
		if err := sdk.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// heldByDeletion says whether an InvalidRequestException of CreateSecret is
// the name being held by a deleted secret ("You can't create this secret
// because a secret with this name is already scheduled for deletion"), not
// another refusal that waiting cannot cure.
func heldByDeletion(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	msg := strings.ToLower(ae.ErrorMessage())
	return msg == "" || strings.Contains(msg, "delet")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finishWrite runs after version n is stored: it applies labels and
// answers. The value is already stored, so a failure here says so. UpdatedAt
// is this host's clock when AWS confirmed the write (PutSecretValue does not
// return the version's CreatedDate; reads report AWS's).
func (b *Backend) finishWrite(ctx context.Context, req sdk.WriteRequest, arn string, have map[string]string, created time.Time, n int64, keys []string) (sdk.Meta, error) {
	m := sdk.Meta{
		Project: req.Project, Name: req.Name, Keys: keys, Version: n, Labels: have,
		CreatedAt: created, UpdatedAt: time.Now().UTC(),
	}
	if m.UpdatedAt.Before(created) {
		m.UpdatedAt = created
	}
	if req.Labels != nil {
		set, remove := labelDiff(have, req.Labels)
		if len(remove) > 0 {
			if _, err := b.client.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: awsv2.String(arn), TagKeys: remove}); err != nil {
				b.recent.wrote(arn, m)
				return sdk.Meta{}, fmt.Errorf("stored as version %d, but labels were not updated: %w", n, mapError("UntagResource", what(req.Project, req.Name), err))
			}
		}
		if len(set) > 0 {
			if _, err := b.client.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: awsv2.String(arn), Tags: set}); err != nil {
				m.Labels = nil // unknown
				b.recent.wrote(arn, m)
				return sdk.Meta{}, fmt.Errorf("stored as version %d, but labels were not updated: %w", n, mapError("TagResource", what(req.Project, req.Name), err))
			}
		}
		m.Labels = sdk.CloneData(req.Labels)
	}
	b.recent.wrote(arn, m)
	return cloneMeta(m), nil
}

func (b *Backend) eachVersion(ctx context.Context, arn string, f func(types.SecretVersionsListEntry) bool) error {
	p := secretsmanager.NewListSecretVersionIdsPaginator(b.client, &secretsmanager.ListSecretVersionIdsInput{
		SecretId: awsv2.String(arn), IncludeDeprecated: awsv2.Bool(true), MaxResults: awsv2.Int32(listBatch),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, v := range page.Versions {
			if !f(v) {
				return nil
			}
		}
	}
	return nil
}

// Delete removes the secret with all its versions at once
// (ForceDeleteWithoutRecovery: no recovery window, the name is free again
// as soon as AWS's asynchronous deletion finishes, which create waits for).
// With ref.Version > 0 the version is checked just before deleting; AWS has
// no conditional delete, so a write landing between check and delete is
// deleted too.
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.ready(); err != nil {
		return err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	v, err := b.current(ctx, ref.Project, ref.Name)
	if err != nil {
		return err
	}
	if ref.Version > 0 {
		cur := v.recent.meta.Version
		if !v.newer {
			if cur, err = v.st.currentNumber(ref.Project, ref.Name); err != nil {
				return err
			}
		}
		if cur != ref.Version {
			return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, cur)
		}
	}
	_, err = b.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId: awsv2.String(v.arn()), ForceDeleteWithoutRecovery: awsv2.Bool(true),
	})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) || isCode(err, codeInvalidReq) {
			return sdk.NotFound(ref.Project, ref.Name)
		}
		return mapError("DeleteSecret", what(ref.Project, ref.Name), err)
	}
	b.recent.gone(ref.Project, ref.Name, v.arn())
	return nil
}

// Versions lists the versions AWS still keeps (deprecated ones included),
// oldest first, plus those this process wrote that AWS does not list yet.
// Versions not written by secretgate have no number and are left out.
func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := sdk.ValidateRef(sdk.Ref{Project: ref.Project, Name: ref.Name}); err != nil {
		return nil, err
	}
	v, err := b.current(ctx, ref.Project, ref.Name)
	if err != nil {
		return nil, err
	}
	hint := v.recent.meta.Version
	if !v.newer {
		if hint, err = v.st.currentNumber(ref.Project, ref.Name); err != nil {
			hint = v.st.hint()
		}
	}
	var vs []sdk.VersionMeta
	err = b.eachVersion(ctx, v.arn(), func(e types.SecretVersionsListEntry) bool {
		if n, ok := versionNumber(ref.Project, ref.Name, deref(e.VersionId), hint); ok {
			vs = append(vs, sdk.VersionMeta{Version: n, CreatedAt: utc(e.CreatedDate)})
		}
		return true
	})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) && !v.newer {
			return nil, sdk.NotFound(ref.Project, ref.Name)
		}
		if !errors.Is(mapError("", "", err), sdk.ErrNotFound) {
			return nil, mapError("ListSecretVersionIds", what(ref.Project, ref.Name), err)
		}
	}
	if r, ok := b.recent.get(ref.Project, ref.Name); ok && !r.deleted && r.arn == v.arn() {
		for _, w := range r.versions {
			if !slices.ContainsFunc(vs, func(x sdk.VersionMeta) bool { return x.Version == w.Version }) {
				vs = append(vs, w)
			}
		}
	}
	slices.SortFunc(vs, func(a, b sdk.VersionMeta) int { return int(a.Version - b.Version) })
	return vs, nil
}

// List pages through a project's secrets sorted by name. AWS documents no
// byte-order sort (ListSecrets SortBy=name has an unspecified collation),
// so each call scans the project's secrets with a name-prefix filter
// (Filter "name: Prefix match, case-sensitive"), 100 per ListSecrets call,
// and pages by the last name returned, in sdk's token (bound to the project
// and prefix). Every secret present during the whole listing appears exactly
// once, in order. ListSecrets lags ("might not reflect changes from the
// last five minutes"): this process's own writes and deletes of that time
// are overlaid.
func (b *Backend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := b.ready(); err != nil {
		return sdk.ListPage{}, err
	}
	if err := sdk.ValidateList(req); err != nil {
		return sdk.ListPage{}, err
	}
	after, err := sdk.DecodePageToken(req)
	if err != nil {
		return sdk.ListPage{}, err
	}
	entries := map[string]view{}
	p := secretsmanager.NewListSecretsPaginator(b.client, &secretsmanager.ListSecretsInput{
		Filters: []types.Filter{{
			Key:    types.FilterNameStringTypeName,
			Values: []string{projectPrefix(b.prefix, req.Project) + req.Prefix},
		}},
		MaxResults: awsv2.Int32(listBatch),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return sdk.ListPage{}, mapError("ListSecrets", "project "+strconv.Quote(req.Project), err)
		}
		for _, s := range page.SecretList {
			name, ok := parseSecretID(b.prefix, req.Project, deref(s.Name))
			if !ok || !strings.HasPrefix(name, req.Prefix) || name <= after {
				continue
			}
			st, err := b.stateOf(req.Project, name, s.ARN, s.Tags, s.CreatedDate, s.DeletedDate, s.SecretVersionsToStages, s.Description)
			if err != nil {
				continue // not ours, being deleted, or holding no value
			}
			entries[name] = view{st: st, hasSt: true}
		}
	}
	for _, name := range b.recent.project(req.Project) {
		if !strings.HasPrefix(name, req.Prefix) || name <= after {
			continue
		}
		r, ok := b.recent.get(req.Project, name)
		if !ok {
			continue
		}
		e, listed := entries[name]
		switch {
		case r.deleted:
			if !listed || e.st.arn == r.arn {
				delete(entries, name)
			}
		case !listed:
			entries[name] = view{recent: r, newer: true}
		case e.st.arn == r.arn:
			if cur, err := e.st.currentNumber(req.Project, name); err == nil && cur < r.meta.Version {
				entries[name] = view{st: e.st, hasSt: true, recent: r, newer: true}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	size := sdk.PageSize(req.PageSize)
	var next string
	if len(names) > size {
		names = names[:size]
		next = sdk.EncodePageToken(req, names[size-1])
	}
	page := sdk.ListPage{Secrets: make([]sdk.Meta, 0, len(names)), NextPageToken: next}
	batched := b.batchMeta(ctx, req.Project, names, entries)
	for _, name := range names {
		m, ok := batched[name]
		if !ok {
			var err error
			m, err = b.meta(ctx, req.Project, name, entries[name])
			if errors.Is(err, sdk.ErrNotFound) {
				continue // deleted while listing
			}
			if err != nil {
				return sdk.ListPage{}, err
			}
		}
		page.Secrets = append(page.Secrets, m)
	}
	return page, nil
}

// batchSize is BatchGetSecretValue's limit of SecretIdList (1-20).
const batchSize = 20

// batchMeta learns the keys of listed secrets whose Description cache is
// stale with BatchGetSecretValue, 20 secrets per call instead of one
// GetSecretValue each. It is best effort: secrets it could not read
// (errors, foreign versions, or the credentials lacking
// secretsmanager:BatchGetSecretValue, after which it is not tried again)
// are left to meta.
func (b *Backend) batchMeta(ctx context.Context, project string, names []string, entries map[string]view) map[string]sdk.Meta {
	out := map[string]sdk.Meta{}
	if b.noBatch.Load() {
		return out
	}
	byARN := map[string]string{}
	var arns []string
	for _, name := range names {
		v := entries[name]
		if v.newer || (v.st.hasCache && len(v.st.cache.K) > 0 && versionToken(project, name, v.st.cache.V) == v.st.currentID) {
			continue // no GetSecretValue needed
		}
		byARN[v.st.arn] = name
		arns = append(arns, v.st.arn)
	}
	if len(arns) < 2 {
		return out
	}
	for chunk := range slices.Chunk(arns, batchSize) {
		res, err := b.client.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: chunk})
		if err != nil {
			if errors.Is(mapError("", "", err), sdk.ErrPermission) {
				b.noBatch.Store(true)
			}
			return out
		}
		for _, e := range res.SecretValues {
			name, ok := byARN[deref(e.ARN)]
			if !ok {
				continue
			}
			st := entries[name].st
			n, ok := versionNumber(project, name, deref(e.VersionId), st.hint())
			if !ok {
				continue
			}
			data, err := decodeValue(project, name, e.SecretString)
			if err != nil {
				continue
			}
			out[name] = sdk.Meta{
				Project: project, Name: name, Keys: sdk.SortedKeys(data), Version: n,
				Labels: labelsFromTags(st.tags), CreatedAt: st.created, UpdatedAt: utc(e.CreatedDate),
			}
		}
	}
	return out
}

// sleep waits a jittered, growing delay before a retry.
func sleep(ctx context.Context, attempt int) error {
	d := time.Duration(1<<min(attempt, 7)) * 5 * time.Millisecond
	return sdk.Sleep(ctx, d/2+sdk.Jitter(d))
}
