package gcp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretgate/secretgate/sdk"
)

// lagRounds bounds how often an operation looks again when what it saw may
// be a lagging view (a version newer than the one seen is expected, an etag
// failed): 50ms doubling, about 3s in all. Past it the answer is the safe
// one (ErrVersionMismatch), never a guess.
const lagRounds = 7

// errNewestDisabled: AccessSecretVersion(latest) found the newest version
// disabled or destroyed (FAILED_PRECONDITION).
var errNewestDisabled = errors.New("the newest version is disabled or destroyed")

// errVersionDisabled: a version read by number exists but is disabled or
// destroyed (it reads as not found).
var errVersionDisabled = errors.New("disabled or destroyed in GCP")

// view is the secret as this process knows it best: the metadata cache when
// useCache and it is fresh (our own last answer, or a GetSecret younger than
// metadata_ttl), else GetSecret (which may lag). fromCache says which.
func (b *Backend) view(ctx context.Context, project, name string, useCache bool) (st state, fromCache bool, err error) {
	if useCache {
		if e, ok, fresh := b.cache.get(b.secretName(project, name)); ok && fresh && !e.stale {
			if e.deleted {
				return state{}, true, sdk.NotFound(project, name)
			}
			if e.pb != nil {
				return readState(e.pb), true, nil
			}
		}
	}
	st, err = b.getSecret(ctx, project, name)
	if err != nil && !isNotFound(err) {
		return st, false, err
	}
	// GetSecret may lag behind what this process knows: a secret it saw
	// may not show yet, a claim it made may not. A stale entry is still
	// better than a lagging NOT_FOUND: a write on it fails its etag (or
	// finds it gone, which then is current) and looks again.
	if e, ok, fresh := b.cache.get(b.secretName(project, name)); ok && fresh && !e.deleted && e.pb != nil {
		if err != nil {
			return readState(e.pb), true, nil
		}
		if own := readState(e.pb); e.own && !e.stale && sameIncarnation(e.pb, st.secret) && own.claim > st.claim {
			return own, true, nil
		}
	}
	return st, false, err
}

// exists reports whether version n exists, by an access by number (the one
// read Google documents as strongly consistent).
func (b *Backend) exists(ctx context.Context, project, name string, n int64) (bool, error) {
	_, _, err := b.access(ctx, project, name, fmt.Sprint(n))
	switch {
	case err == nil || errors.Is(err, errVersionDisabled):
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, err
}

// headInfo is the current version of a secret as the claim protocol sees it.
type headInfo struct {
	n        int64     // 0: no version (an unfinished creation)
	inFlight bool      // a younger-than-lease claim on n+1 has not landed yet
	keys     []string  // n's keys; nil when not known
	updated  time.Time // n's UpdatedAt
}

// head works out the current version of the secret in st. The claimed
// version C is current when it exists; that is checked with an access by
// number (the one strongly consistent read), unless this process already
// knows it. When C does not exist its writer is still at work (claim
// younger than the lease) or died, and C-1 is current.
func (b *Backend) head(ctx context.Context, project, name string, st state, wantKeys bool) (headInfo, error) {
	c := st.claim
	if c == 0 {
		return headInfo{}, nil
	}
	key := b.secretName(project, name)
	created := st.secret.GetCreateTime().AsTime().UTC()
	claimed := st.claimAt.UTC()
	if claimed.Before(created) {
		claimed = created
	}
	known := func(n int64) (time.Time, bool) {
		e, ok, _ := b.cache.get(key)
		if !ok || !sameIncarnation(e.pb, st.secret) {
			return time.Time{}, false
		}
		t, ok := e.versions[n]
		return t, ok
	}
	h := headInfo{n: c, keys: st.keys}
	t, exists := known(c)
	if !exists || (wantKeys && st.keys == nil) {
		n, data, err := b.access(ctx, project, name, fmt.Sprint(c))
		switch {
		case err == nil:
			exists = true
			h.keys = sdk.SortedKeys(data)
			_ = n
		case isNotFound(err):
			exists = errors.Is(err, errVersionDisabled)
		default:
			return headInfo{}, err
		}
		if exists {
			b.cache.addVersion(key, st.secret, c, time.Time{})
		}
	}
	if exists {
		h.updated = claimed
		if !t.IsZero() {
			h.updated = t
		}
		return h, nil
	}
	// Claim C never landed.
	h = headInfo{n: c - 1, inFlight: b.now().Sub(st.claimAt) < b.cfg.lease}
	if h.n == 0 {
		return h, nil
	}
	if wantKeys {
		_, data, err := b.access(ctx, project, name, fmt.Sprint(h.n))
		if err != nil && !errors.Is(err, errVersionDisabled) {
			return headInfo{}, err
		}
		h.keys = sdk.SortedKeys(data)
	}
	h.updated = b.versionTime(ctx, project, name, st, h.n)
	return h, nil
}

// versionTime is the create time of version n: known to the cache (our own
// adds), else GetSecretVersion (a read; the answer is immutable and kept).
// When it cannot be had, the secret's creation stands in.
func (b *Backend) versionTime(ctx context.Context, project, name string, st state, n int64) time.Time {
	key := b.secretName(project, name)
	if e, ok, _ := b.cache.get(key); ok && sameIncarnation(e.pb, st.secret) {
		if t := e.versions[n]; !t.IsZero() {
			return t
		}
	}
	v, err := b.getVersion(ctx, project, name, fmt.Sprint(n))
	if err != nil || v == nil {
		return st.secret.GetCreateTime().AsTime().UTC()
	}
	t := v.GetCreateTime().AsTime().UTC()
	b.cache.addVersion(key, st.secret, n, t)
	return t
}

// newestEnabled reads the newest ENABLED version: what Read of the latest
// version answers when the newest one was disabled (or destroyed) in GCP.
func (b *Backend) newestEnabled(ctx context.Context, project, name string) (int64, map[string]string, error) {
	vs, err := b.listVersions(ctx, project, name, false)
	if err != nil {
		return 0, nil, err
	}
	if len(vs) == 0 {
		return 0, nil, fmt.Errorf("gcp: %s has no enabled version: %w", what(project, name), sdk.ErrNotFound)
	}
	return b.access(ctx, project, name, fmt.Sprint(vs[len(vs)-1].Version))
}

func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := b.ready(); err != nil {
		return sdk.Secret{}, err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	key := b.secretName(ref.Project, ref.Name)
	e, cached, fresh := b.cache.get(key)
	if cached && fresh && e.deleted {
		// A lagging `latest` would still show what we deleted.
		return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
	}
	v := "latest"
	if ref.Version > 0 {
		v = fmt.Sprint(ref.Version)
	}
	// The hot path: one AccessSecretVersion, whose answer names the version.
	n, data, err := b.access(ctx, ref.Project, ref.Name, v)
	if ref.Version == 0 {
		if errors.Is(err, errNewestDisabled) {
			n, data, err = b.newestEnabled(ctx, ref.Project, ref.Name)
		}
		// `latest` may lag behind what our own writes know (Google documents
		// only access by number as strongly consistent): the newest version
		// this process added or verified is read by number instead.
		var mine int64
		if cached && fresh && e.pb != nil {
			for k := range e.versions {
				mine = max(mine, k)
			}
		}
		switch {
		case mine > 0 && (isNotFound(err) || err == nil && n < mine):
			if n2, d2, err2 := b.access(ctx, ref.Project, ref.Name, fmt.Sprint(mine)); err2 == nil {
				n, data, err = n2, d2, nil
			}
		case mine > 0 && err == nil && n > mine:
			// Newer than we know: another writer, or a lagging `latest` of
			// the incarnation we deleted before re-creating. By number tells.
			n2, d2, err2 := b.access(ctx, ref.Project, ref.Name, fmt.Sprint(n))
			switch {
			case err2 == nil:
				n, data = n2, d2
			case isNotFound(err2):
				n, data, err = b.access(ctx, ref.Project, ref.Name, fmt.Sprint(mine))
			default:
				err = err2
			}
		}
	}
	if err != nil {
		return sdk.Secret{}, err
	}
	var st state
	if cached && fresh && e.pb != nil {
		st = readState(e.pb)
	} else if st, err = b.getSecret(ctx, ref.Project, ref.Name); err != nil {
		if isNotFound(err) {
			// Its payload is there but its metadata is not visible yet: a
			// secret created moments ago (eventual consistency).
			return sdk.Secret{}, fmt.Errorf("gcp: %s was created moments ago and its metadata is not visible yet: %w", what(ref.Project, ref.Name), sdk.ErrUnavailable)
		}
		return sdk.Secret{}, err
	}
	updated := st.secret.GetCreateTime().AsTime().UTC()
	if n == st.claim {
		if claimed := st.claimAt.UTC(); claimed.After(updated) {
			updated = claimed
		}
		if e2, ok, _ := b.cache.get(key); ok && sameIncarnation(e2.pb, st.secret) && !e2.versions[n].IsZero() {
			updated = e2.versions[n]
		}
	} else {
		updated = b.versionTime(ctx, ref.Project, ref.Name, st, n)
	}
	return sdk.Secret{
		Meta: sdk.Meta{
			Project: ref.Project, Name: ref.Name,
			Keys:      sdk.SortedKeys(data),
			Version:   n,
			Labels:    copyLabels(st.labels),
			CreatedAt: st.secret.GetCreateTime().AsTime().UTC(),
			UpdatedAt: updated,
		},
		Data: data,
	}, nil
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (b *Backend) metaOf(project, name string, st state, h headInfo) sdk.Meta {
	return sdk.Meta{
		Project: project, Name: name,
		Keys:      sortedCopy(h.keys),
		Version:   h.n,
		Labels:    copyLabels(st.labels),
		CreatedAt: st.secret.GetCreateTime().AsTime().UTC(),
		UpdatedAt: h.updated,
	}
}

func (b *Backend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	ref.Version = 0
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Meta{}, err
	}
	st, _, err := b.view(ctx, ref.Project, ref.Name, true)
	if err != nil {
		return sdk.Meta{}, err
	}
	h, err := b.head(ctx, ref.Project, ref.Name, st, true)
	if err != nil {
		return sdk.Meta{}, err
	}
	if h.n == 0 { // a creation that never added its first version
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	return b.metaOf(ref.Project, ref.Name, st, h), nil
}

// listVersions is ListSecretVersions (ENABLED only, oldest first), merged
// with what this process knows: the lagging list may miss versions we just
// added, and may still show those of an incarnation we deleted.
func (b *Backend) listVersions(ctx context.Context, project, name string, mergeOwn bool) ([]sdk.VersionMeta, error) {
	key := b.secretName(project, name)
	e, cached, fresh := b.cache.get(key)
	if cached && fresh && e.deleted {
		return nil, sdk.NotFound(project, name)
	}
	var bornAt time.Time // versions older than the secret we know belong to a deleted incarnation
	if cached && e.pb != nil {
		bornAt = e.pb.GetCreateTime().AsTime()
	}
	var out []sdk.VersionMeta
	listed := map[int64]bool{} // in any state
	_, err := retry(ctx, func(ctx context.Context) error {
		out = out[:0]
		clear(listed)
		it := b.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: key, PageSize: 1000})
		for {
			v, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			n, err := versionNumber(v.GetName())
			if err != nil {
				return err
			}
			if v.GetCreateTime().AsTime().Before(bornAt) {
				continue // an incarnation we deleted, in a lagging list
			}
			listed[n] = true
			// Disabled and destroyed versions cannot be read: not listed.
			if v.GetState() == secretmanagerpb.SecretVersion_ENABLED {
				out = append(out, sdk.VersionMeta{Version: n, CreatedAt: v.GetCreateTime().AsTime().UTC()})
			}
		}
	})
	if err != nil && status.Code(err) != codes.NotFound {
		return nil, mapErr(ctx, "ListSecretVersions", what(project, name), err)
	}
	if cached && e.pb != nil {
		if fresh && mergeOwn {
			// Versions we added that the lagging list does not show yet.
			for n, t := range e.versions {
				if !listed[n] && !t.IsZero() {
					out = append(out, sdk.VersionMeta{Version: n, CreatedAt: t.UTC()})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	ref.Version = 0
	if err := sdk.ValidateRef(ref); err != nil {
		return nil, err
	}
	out, err := b.listVersions(ctx, ref.Project, ref.Name, true)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	return out, nil
}

// List pages through the project's secrets sorted by name. ListSecrets has
// no documented order and its page tokens follow its own; so every page
// lists all of the project's secrets (one sweep, which carries their
// metadata: version, keys and labels are in our annotations), sorts them,
// and continues after the last name of the previous page, which is what the
// page token holds (sdk's token, bound to the project and prefix). A secret
// costs a call of its own only when its claimed version was never seen to
// exist by this process: one AccessSecretVersion by number, once.
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
	size := sdk.PageSize(req.PageSize)

	idPrefix := b.secretID(req.Project, req.Prefix)
	filter := fmt.Sprintf("labels.%s=%s AND name:%s", labelProject, req.Project, idPrefix)
	found := map[string]*secretmanagerpb.Secret{}
	_, err = retry(ctx, func(ctx context.Context) error {
		clear(found)
		it := b.client.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: b.parent(), Filter: filter, PageSize: 25000})
		for {
			s, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			found[s.GetName()[strings.LastIndex(s.GetName(), "/")+1:]] = s
		}
	})
	if err != nil {
		return sdk.ListPage{}, mapErr(ctx, "ListSecrets", "in project "+req.Project, err)
	}
	for id, s := range found {
		b.cache.putSeen(b.parent()+"/secrets/"+id, s)
	}
	// The listing lags; what our own writes and deletes did is newer.
	for key, pb := range b.cache.ownNames() {
		id := key[strings.LastIndex(key, "/")+1:]
		if pb == nil {
			delete(found, id)
		} else if strings.HasPrefix(id, idPrefix) {
			found[id] = pb
		}
	}
	type candidate struct {
		name string
		st   state
	}
	var all []candidate
	for id, s := range found {
		// `name:` is a substring match: keep real prefixes only.
		name, ok := b.nameFromID(req.Project, id)
		if !ok || !strings.HasPrefix(name, req.Prefix) || name <= after {
			continue
		}
		all = append(all, candidate{name: name, st: readState(s)})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })

	page := sdk.ListPage{Secrets: []sdk.Meta{}}
	i := 0
	for i < len(all) && len(page.Secrets) < size {
		batch := all[i:min(len(all), i+size-len(page.Secrets))]
		metas := make([]*sdk.Meta, len(batch))
		errs := make([]error, len(batch))
		sem := make(chan struct{}, listConcurrency)
		var wg sync.WaitGroup
		for j, c := range batch {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				h, err := b.head(ctx, req.Project, c.name, c.st, true)
				if isNotFound(err) || err == nil && h.n == 0 { // deleted meanwhile, or an unfinished creation
					return
				}
				if err != nil {
					errs[j] = err
					return
				}
				m := b.metaOf(req.Project, c.name, c.st, h)
				metas[j] = &m
			}()
		}
		wg.Wait()
		for j := range batch {
			if errs[j] != nil {
				return sdk.ListPage{}, errs[j]
			}
			if metas[j] != nil {
				page.Secrets = append(page.Secrets, *metas[j])
			}
		}
		i += len(batch)
	}
	if i < len(all) {
		page.NextPageToken = sdk.EncodePageToken(req, all[i-1].name)
	}
	return page, nil
}
