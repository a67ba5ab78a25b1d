package aws

// List: a scan of the project's secrets by name prefix, overlaid with this
// process's recent writes, and the keys of stale Description caches learned
// 20 secrets per BatchGetSecretValue call.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/secretgate/secretgate/sdk"
)

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
			if overlays(e.st, r, req.Project, name) {
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
