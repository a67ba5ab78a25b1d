package vault

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/secretgate/secretgate/sdk"
)

// List pages over the project's names. Vault's LIST returns every name of a
// folder at once and no metadata, so each page costs one LIST of the whole
// project plus one Describe per listed name (one data read, and a metadata
// read for secrets past version 1), at most listConcurrency at a time. The
// page token is sdk.PageNames': the last name of the page, bound to the
// project and prefix. Pages stay consistent while secrets come and go, and a
// secret deleted between the LIST and its Describe is left out.
func (b *Backend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := b.configured(); err != nil {
		return sdk.ListPage{}, err
	}
	if err := sdk.ValidateList(req); err != nil {
		return sdk.ListPage{}, err
	}
	// Refused before the round trip to Vault, which PageNames would follow.
	if _, err := sdk.DecodePageToken(req); err != nil {
		return sdk.ListPage{}, err
	}
	names, err := b.listNames(ctx, req.Project)
	if err != nil {
		return sdk.ListPage{}, err
	}
	sort.Strings(names)
	page, next, err := sdk.PageNames(names, req)
	if err != nil {
		return sdk.ListPage{}, err
	}

	metas, err := b.describeAll(ctx, req.Project, page)
	if err != nil {
		return sdk.ListPage{}, err
	}
	return sdk.ListPage{Secrets: metas, NextPageToken: next}, nil
}

// describeAll describes names with bounded concurrency, keeping their order
// and leaving out the ones that no longer exist.
func (b *Backend) describeAll(ctx context.Context, project string, names []string) ([]sdk.Meta, error) {
	metas := make([]sdk.Meta, len(names))
	found := make([]bool, len(names))
	errs := make([]error, len(names))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sem := make(chan struct{}, max(1, b.listConcurrency))
	var wg sync.WaitGroup
	for i, n := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, err := b.Describe(ctx, sdk.Ref{Project: project, Name: n})
			switch {
			case err == nil:
				metas[i], found[i] = m, true
			case errors.Is(err, sdk.ErrNotFound):
			default:
				errs[i] = err
				cancel() // one failure fails the page: stop the others
			}
		}()
	}
	wg.Wait()
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	out := make([]sdk.Meta, 0, len(names))
	for i := range names {
		if found[i] {
			out = append(out, metas[i])
		}
	}
	return out, nil
}

// firstErr returns the first error that is not a consequence of cancelling
// the others.
func firstErr(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if first == nil {
			first = err
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return first
}
