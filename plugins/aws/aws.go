package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

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
	createAttempts = 8
	listBatch      = 100 // ListSecrets/ListSecretVersionIds: MaxResults 1-100
)

// Backend is the AWS Secrets Manager backend. New returns it unconfigured;
// Configure must be called first. It is safe for concurrent use.
type Backend struct {
	client   *secretsmanager.Client
	prefix   string
	kmsKeyID string
	tags     map[string]string
}

// New returns an unconfigured AWS Secrets Manager backend.
func New() sdk.Backend { return &Backend{} }

var knownSettings = []string{"region", "endpoint", "prefix", "profile", "kms_key_id", "tags", "max_attempts"}

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

	opts := []func(*config.LoadOptions) error{
		// The standard retryer backs off with jitter on throttling and
		// transient errors; once it gives up, mapError says ErrUnavailable.
		config.WithRetryer(func() awsv2.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = attempts })
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
	return sdk.Capabilities{Backend: "aws", Versions: true, MaxVersions: 0, CAS: true, Labels: true}, nil
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

// meta builds the latest metadata: from the Description cache when it
// describes the AWSCURRENT version, else by reading that version once.
func (b *Backend) meta(ctx context.Context, project, name string, st state) (sdk.Meta, error) {
	m := sdk.Meta{Project: project, Name: name, Labels: labelsFromTags(st.tags), CreatedAt: st.created}
	if st.hasCache && st.cache.complete() && versionToken(project, name, st.cache.V) == st.currentID {
		m.Version, m.Keys, m.UpdatedAt = st.cache.V, slices.Clone(st.cache.K), st.cache.U.UTC()
		return m, nil
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
	st, err := b.describe(ctx, ref.Project, ref.Name)
	if err != nil {
		return sdk.Meta{}, err
	}
	return b.meta(ctx, ref.Project, ref.Name, st)
}

// Read returns one version's values. DescribeSecret (labels, creation) and
// GetSecretValue run concurrently.
func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := b.ready(); err != nil {
		return sdk.Secret{}, err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	in := &secretsmanager.GetSecretValueInput{SecretId: awsv2.String(secretID(b.prefix, ref.Project, ref.Name))}
	if ref.Version > 0 {
		in.VersionId = awsv2.String(versionToken(ref.Project, ref.Name, ref.Version))
	} else {
		in.VersionStage = awsv2.String(stageCurrent)
	}
	var (
		wg     sync.WaitGroup
		st     state
		stErr  error
		out    *secretsmanager.GetSecretValueOutput
		getErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, stErr = b.describe(ctx, ref.Project, ref.Name)
	}()
	out, getErr = b.client.GetSecretValue(ctx, in)
	wg.Wait()
	if stErr != nil {
		return sdk.Secret{}, stErr
	}
	if getErr != nil {
		if errors.Is(mapError("", "", getErr), sdk.ErrNotFound) || isCode(getErr, codeInvalidReq) {
			if ref.Version > 0 {
				return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, ref.Version)
			}
			return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
		}
		return sdk.Secret{}, mapError("GetSecretValue", what(ref.Project, ref.Name), getErr)
	}
	n := ref.Version
	if n == 0 {
		var ok bool
		if n, ok = versionNumber(ref.Project, ref.Name, deref(out.VersionId), st.hint()); !ok {
			return sdk.Secret{}, errForeign(ref.Project, ref.Name, deref(out.VersionId))
		}
	}
	data, err := decodeValue(ref.Project, ref.Name, out.SecretString)
	if err != nil {
		return sdk.Secret{}, err
	}
	return sdk.Secret{
		Meta: sdk.Meta{
			Project: ref.Project, Name: ref.Name, Keys: sdk.SortedKeys(data), Version: n,
			Labels: labelsFromTags(st.tags), CreatedAt: st.created, UpdatedAt: utc(out.CreatedDate),
		},
		Data: data,
	}, nil
}

// Write stores a new version. The version number is the check-and-set: the
// new version's ClientRequestToken is versionToken(n+1), and AWS refuses a
// token that already names a version with a different value
// (PutSecretValue, ClientRequestToken: "If a version with this value already
// exists and the version of the SecretString and SecretBinary values are
// different from those in the request, then the request fails because you
// can't modify a secret version"), so of two writers racing for n+1 exactly
// one stores a new value. Writes go to the ARN read just before, so a
// secret deleted and created again in between is not written to.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	if req.Labels != nil {
		if err := checkTagBudget(len(b.tags), req.Labels); err != nil {
			return sdk.Meta{}, err
		}
	}
	body, err := sdk.EncodeData(req.Data)
	if err != nil {
		return sdk.Meta{}, sdk.Invalid("data", "cannot be encoded as JSON")
	}
	keys := sdk.SortedKeys(req.Data)
	for attempt := 0; attempt < writeAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, attempt); err != nil {
				return sdk.Meta{}, err
			}
		}
		st, err := b.describe(ctx, req.Project, req.Name)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
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
		cur, err := st.currentNumber(req.Project, req.Name)
		if err != nil {
			return sdk.Meta{}, err
		}
		if req.ExpectedVersion > 0 && cur != req.ExpectedVersion {
			return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, cur)
		}
		n := cur + 1
		out, err := b.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:           awsv2.String(st.arn),
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
			continue
		}
		return b.finishWrite(ctx, req, st, n, keys)
	}
	return sdk.Meta{}, fmt.Errorf("aws: %s: lost the race for a new version %d times in a row: %w", what(req.Project, req.Name), writeAttempts, sdk.ErrUnavailable)
}

// create makes a new secret holding version 1. retry reports that the name
// turned out to exist (an upsert then replaces it).
func (b *Backend) create(ctx context.Context, req sdk.WriteRequest, body []byte, keys []string) (sdk.Meta, bool, error) {
	id := secretID(b.prefix, req.Project, req.Name)
	in := &secretsmanager.CreateSecretInput{
		Name:               awsv2.String(id),
		SecretString:       awsv2.String(string(body)),
		ClientRequestToken: awsv2.String(versionToken(req.Project, req.Name, 1)),
		Description:        awsv2.String(encodeCache(metaCache{V: 1, K: keys})),
		Tags:               createTags(req.Project, req.Name, b.tags, req.Labels),
	}
	if b.kmsKeyID != "" {
		in.KmsKeyId = awsv2.String(b.kmsKeyID)
	}
	var (
		out *secretsmanager.CreateSecretOutput
		err error
	)
	for attempt := 0; attempt < createAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, attempt+2); err != nil {
				return sdk.Meta{}, false, err
			}
		}
		out, err = b.client.CreateSecret(ctx, in)
		// InvalidRequestException on create: the name belongs to a secret
		// whose (forced, asynchronous) deletion has not finished yet.
		if !isCode(err, codeInvalidReq) {
			break
		}
	}
	switch {
	case isCode(err, codeExists):
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, false, sdk.AlreadyExists(req.Project, req.Name)
		}
		return sdk.Meta{}, true, nil
	case isCode(err, codeInvalidReq):
		return sdk.Meta{}, false, fmt.Errorf("aws: %s: the name is still held by a secret being deleted: %w", what(req.Project, req.Name), sdk.ErrUnavailable)
	case err != nil:
		return sdk.Meta{}, false, mapError("CreateSecret", what(req.Project, req.Name), err)
	}
	st, err := b.describe(ctx, req.Project, req.Name)
	if err != nil {
		return sdk.Meta{}, false, fmt.Errorf("aws: %s was created, reading it back failed: %w", what(req.Project, req.Name), err)
	}
	if st.arn != deref(out.ARN) {
		// Deleted and created again by someone else in the meantime.
		return sdk.Meta{}, false, fmt.Errorf("aws: %s was replaced concurrently: %w", what(req.Project, req.Name), sdk.ErrVersionMismatch)
	}
	req.Labels = nil // set by CreateSecret already
	m, err := b.finishWrite(ctx, req, st, 1, keys)
	return m, false, err
}

// finishWrite runs after version n is stored: it applies labels, learns the
// version's creation time, and refreshes the Description cache. The value
// is already stored, so a failure here says so.
func (b *Backend) finishWrite(ctx context.Context, req sdk.WriteRequest, st state, n int64, keys []string) (sdk.Meta, error) {
	labels := labelsFromTags(st.tags)
	if req.Labels != nil {
		set, remove := labelDiff(st.tags, req.Labels)
		if len(remove) > 0 {
			if _, err := b.client.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: awsv2.String(st.arn), TagKeys: remove}); err != nil {
				return sdk.Meta{}, fmt.Errorf("stored as version %d, but labels were not updated: %w", n, mapError("UntagResource", what(req.Project, req.Name), err))
			}
		}
		if len(set) > 0 {
			if _, err := b.client.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: awsv2.String(st.arn), Tags: set}); err != nil {
				return sdk.Meta{}, fmt.Errorf("stored as version %d, but labels were not updated: %w", n, mapError("TagResource", what(req.Project, req.Name), err))
			}
		}
		labels = sdk.CloneData(req.Labels)
	}
	updated, err := b.versionCreated(ctx, st.arn, versionToken(req.Project, req.Name, n))
	if err != nil {
		return sdk.Meta{}, fmt.Errorf("stored as version %d: %w", n, mapError("ListSecretVersionIds", what(req.Project, req.Name), err))
	}
	// The cache is an optimisation that readers verify, so a failure to
	// refresh it costs reads a GetSecretValue but loses nothing.
	_, _ = b.client.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{
		SecretId:    awsv2.String(st.arn),
		Description: awsv2.String(encodeCache(metaCache{V: n, K: keys, U: updated})),
	})
	return sdk.Meta{
		Project: req.Project, Name: req.Name, Keys: keys, Version: n, Labels: labels,
		CreatedAt: st.created, UpdatedAt: updated,
	}, nil
}

// versionCreated finds the CreatedDate of one version.
func (b *Backend) versionCreated(ctx context.Context, arn, id string) (time.Time, error) {
	var found time.Time
	err := b.eachVersion(ctx, arn, func(v types.SecretVersionsListEntry) bool {
		if deref(v.VersionId) == id {
			found = utc(v.CreatedDate)
			return false
		}
		return true
	})
	if err == nil && found.IsZero() {
		err = fmt.Errorf("version %s is not listed: %w", id, sdk.ErrNotFound)
	}
	return found, err
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
	st, err := b.describe(ctx, ref.Project, ref.Name)
	if err != nil {
		return err
	}
	if ref.Version > 0 {
		cur, err := st.currentNumber(ref.Project, ref.Name)
		if err != nil {
			return err
		}
		if cur != ref.Version {
			return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, cur)
		}
	}
	_, err = b.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId: awsv2.String(st.arn), ForceDeleteWithoutRecovery: awsv2.Bool(true),
	})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) || isCode(err, codeInvalidReq) {
			return sdk.NotFound(ref.Project, ref.Name)
		}
		return mapError("DeleteSecret", what(ref.Project, ref.Name), err)
	}
	return nil
}

// Versions lists the versions AWS still keeps (deprecated ones included),
// oldest first. Versions not written by secretgate have no number and are
// left out.
func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := sdk.ValidateRef(sdk.Ref{Project: ref.Project, Name: ref.Name}); err != nil {
		return nil, err
	}
	st, err := b.describe(ctx, ref.Project, ref.Name)
	if err != nil {
		return nil, err
	}
	hint, err := st.currentNumber(ref.Project, ref.Name)
	if err != nil {
		hint = st.hint()
	}
	var vs []sdk.VersionMeta
	err = b.eachVersion(ctx, st.arn, func(v types.SecretVersionsListEntry) bool {
		if n, ok := versionNumber(ref.Project, ref.Name, deref(v.VersionId), hint); ok {
			vs = append(vs, sdk.VersionMeta{Version: n, CreatedAt: utc(v.CreatedDate)})
		}
		return true
	})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) {
			return nil, sdk.NotFound(ref.Project, ref.Name)
		}
		return nil, mapError("ListSecretVersionIds", what(ref.Project, ref.Name), err)
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
// once, in order.
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
	type entry struct {
		name string
		st   state
	}
	var entries []entry
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
			entries = append(entries, entry{name, st})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	entries = slices.CompactFunc(entries, func(a, b entry) bool { return a.name == b.name })
	size := sdk.PageSize(req.PageSize)
	var next string
	if len(entries) > size {
		entries = entries[:size]
		next = sdk.EncodePageToken(req, entries[size-1].name)
	}
	page := sdk.ListPage{Secrets: make([]sdk.Meta, 0, len(entries)), NextPageToken: next}
	for _, e := range entries {
		m, err := b.meta(ctx, req.Project, e.name, e.st)
		if errors.Is(err, sdk.ErrNotFound) {
			continue // deleted while listing
		}
		if err != nil {
			return sdk.ListPage{}, err
		}
		page.Secrets = append(page.Secrets, m)
	}
	return page, nil
}

// sleep waits a jittered, growing delay before a retry.
func sleep(ctx context.Context, attempt int) error {
	d := time.Duration(1<<min(attempt, 7)) * 5 * time.Millisecond
	return sdk.Sleep(ctx, d/2+sdk.Jitter(d))
}
