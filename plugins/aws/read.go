package aws

// Reads: Describe, Read and Versions (List is in list.go), over the view of
// a secret this process should report (AWS's state overlaid with its own
// recent writes).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretgate/secretgate/sdk"
)

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
	// newer: recent is this process's write of a version newer than st
	// shows, or of the version st shows, with labels st may not show yet.
	newer bool
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
	case st.arn == r.arn && overlays(st, r, project, name):
		v.recent, v.newer = r, true
	}
	if !v.hasSt && !v.newer {
		return view{}, sdk.NotFound(project, name)
	}
	return v, nil
}

// overlays compares what AWS describes of a secret with this process's
// latest write of it (same ARN): true when that write is newer
// than the version AWS shows as current, and also when AWS shows that very
// version but the write's labels are known: tags are written by separate
// calls (TagResource, UntagResource) after the value, and AWS documents no
// order in which they become visible, so DescribeSecret can show the new
// version with the previous version's tags. A label change removing a tag
// computed from those would leave the tag in place. Labels are unknown
// (nil) after a tag call failed: AWS's tags are the better guess then.
func overlays(st state, r recentEntry, project, name string) bool {
	cur, err := st.currentNumber(project, name)
	return err == nil && (cur < r.meta.Version || cur == r.meta.Version && r.meta.Labels != nil)
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
