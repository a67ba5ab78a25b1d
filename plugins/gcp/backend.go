package gcp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secretgate/secretgate/sdk"
)

// listConcurrency bounds the per-secret lookups of one List page.
const listConcurrency = 8

// maxWriteRounds bounds how often one Write re-reads the secret after losing
// a race to another writer, when it has no ExpectedVersion to fail on.
const maxWriteRounds = 50

// Backend is the GCP Secret Manager backend. Create it with New and
// Configure it before use.
type Backend struct {
	cfg    config
	client *secretmanager.Client
	now    func() time.Time
}

// New returns an unconfigured GCP backend.
func New() sdk.Backend { return &Backend{now: time.Now} }

var _ sdk.Backend = (*Backend)(nil)

func (b *Backend) Configure(ctx context.Context, settings map[string]string) error {
	if b.client != nil {
		return fmt.Errorf("gcp: Configure called twice: %w", sdk.ErrInvalid)
	}
	cfg, err := parseConfig(settings)
	if err != nil {
		return err
	}
	client, err := newClient(ctx, cfg)
	if err != nil {
		return err
	}
	b.cfg, b.client = cfg, client
	return nil
}

func (b *Backend) ready() error {
	if b.client == nil {
		return fmt.Errorf("gcp: backend used before Configure: %w", sdk.ErrUnavailable)
	}
	return nil
}

func (b *Backend) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	return sdk.Capabilities{Backend: "gcp", Versions: true, MaxVersions: 0, CAS: true, Labels: true}, nil
}

func (b *Backend) Ping(ctx context.Context) error {
	if err := b.ready(); err != nil {
		return err
	}
	_, err := retry(ctx, func(ctx context.Context) error {
		it := b.client.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: b.parent(), PageSize: 1, Filter: "labels." + labelProject + ":*"})
		it.PageInfo().MaxSize = 1
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		return err
	})
	return mapErr(ctx, "ListSecrets", b.parent(), err)
}

// --- small RPC wrappers: retried, errors mapped ---

func what(project, name string) string { return fmt.Sprintf("secret %q in project %q", name, project) }

func (b *Backend) getSecret(ctx context.Context, project, name string) (state, error) {
	var s *secretmanagerpb.Secret
	_, err := retry(ctx, func(ctx context.Context) (err error) {
		s, err = b.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: b.secretName(project, name)})
		return err
	})
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return state{}, sdk.NotFound(project, name)
		}
		return state{}, mapErr(ctx, "GetSecret", what(project, name), err)
	}
	return readState(s), nil
}

// latest returns the most recently created version; nil (no error) when the
// secret has none.
func (b *Backend) latest(ctx context.Context, project, name string) (*secretmanagerpb.SecretVersion, error) {
	return b.getVersion(ctx, project, name, "latest")
}

func (b *Backend) getVersion(ctx context.Context, project, name, v string) (*secretmanagerpb.SecretVersion, error) {
	var sv *secretmanagerpb.SecretVersion
	_, err := retry(ctx, func(ctx context.Context) (err error) {
		sv, err = b.client.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: b.secretName(project, name) + "/versions/" + v})
		return err
	})
	if status.Code(err) == codes.NotFound {
		return nil, nil
	}
	return sv, mapErr(ctx, "GetSecretVersion", what(project, name), err)
}

// access reads a version's payload and checks its CRC32C.
func (b *Backend) access(ctx context.Context, project, name, v string) (int64, map[string]string, error) {
	var resp *secretmanagerpb.AccessSecretVersionResponse
	_, err := retry(ctx, func(ctx context.Context) error {
		r, err := b.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: b.secretName(project, name) + "/versions/" + v})
		if err != nil {
			return err
		}
		if p := r.GetPayload(); p.DataCrc32C != nil && p.GetDataCrc32C() != crc32c(p.GetData()) {
			// Corrupted in transit: retried like an unavailable server.
			return status.Error(codes.Unavailable, "payload CRC32C mismatch")
		}
		resp = r
		return nil
	})
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.FailedPrecondition: // missing, disabled or destroyed
			if v == "latest" {
				return 0, nil, sdk.NotFound(project, name)
			}
			n, _ := versionNumberOf(v)
			return 0, nil, sdk.VersionNotFound(project, name, n)
		}
		return 0, nil, mapErr(ctx, "AccessSecretVersion", what(project, name), err)
	}
	n, err := versionNumber(resp.GetName())
	if err != nil {
		return 0, nil, err
	}
	data, err := sdk.DecodeData(resp.GetPayload().GetData())
	if err != nil {
		return 0, nil, fmt.Errorf("gcp: version %d of %s is not a secretgate JSON payload", n, what(project, name))
	}
	return n, data, nil
}

func versionNumberOf(v string) (int64, error) { return versionNumber("/versions/" + v) }

// --- reads ---

func (b *Backend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := b.ready(); err != nil {
		return sdk.Secret{}, err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	v := "latest"
	if ref.Version > 0 {
		v = fmt.Sprint(ref.Version)
	}
	// Three independent calls, in parallel: the secret (labels, creation),
	// the payload, and the version (its creation time). With `latest` a
	// write can land between the last two; then they disagree and we retry.
	for round := 0; ; round++ {
		var (
			wg          sync.WaitGroup
			st          state
			stErr, vErr error
			sv          *secretmanagerpb.SecretVersion
			n           int64
			data        map[string]string
			accErr      error
		)
		wg.Add(3)
		go func() { defer wg.Done(); st, stErr = b.getSecret(ctx, ref.Project, ref.Name) }()
		go func() { defer wg.Done(); sv, vErr = b.getVersion(ctx, ref.Project, ref.Name, v) }()
		go func() { defer wg.Done(); n, data, accErr = b.access(ctx, ref.Project, ref.Name, v) }()
		wg.Wait()
		for _, err := range []error{stErr, accErr, vErr} {
			if err != nil {
				return sdk.Secret{}, err
			}
		}
		if sv == nil {
			return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
		}
		if got, _ := versionNumber(sv.GetName()); got != n {
			if round < 3 {
				continue
			}
			return sdk.Secret{}, fmt.Errorf("gcp: %s keeps changing under the read: %w", what(ref.Project, ref.Name), sdk.ErrUnavailable)
		}
		return sdk.Secret{
			Meta: sdk.Meta{
				Project: ref.Project, Name: ref.Name,
				Keys:      sdk.SortedKeys(data),
				Version:   n,
				Labels:    st.labels,
				CreatedAt: st.secret.GetCreateTime().AsTime().UTC(),
				UpdatedAt: sv.GetCreateTime().AsTime().UTC(),
			},
			Data: data,
		}, nil
	}
}

// meta builds the metadata of a secret from its state and latest version,
// reading the payload only when the recorded key list is not that
// version's (a write in flight or abandoned, or keys too long to record).
func (b *Backend) meta(ctx context.Context, project, name string, st state, latest *secretmanagerpb.SecretVersion) (sdk.Meta, error) {
	n, err := versionNumber(latest.GetName())
	if err != nil {
		return sdk.Meta{}, err
	}
	keys := st.keys
	if st.claim != n || keys == nil {
		got, data, err := b.access(ctx, project, name, fmt.Sprint(n))
		if err != nil {
			return sdk.Meta{}, err
		}
		if got != n {
			return sdk.Meta{}, fmt.Errorf("gcp: asked for version %d, got %d", n, got)
		}
		keys = sdk.SortedKeys(data)
	}
	return sdk.Meta{
		Project: project, Name: name,
		Keys:      sortedCopy(keys),
		Version:   n,
		Labels:    st.labels,
		CreatedAt: st.secret.GetCreateTime().AsTime().UTC(),
		UpdatedAt: latest.GetCreateTime().AsTime().UTC(),
	}, nil
}

func (b *Backend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	ref.Version = 0
	if err := sdk.ValidateRef(ref); err != nil {
		return sdk.Meta{}, err
	}
	var (
		wg          sync.WaitGroup
		st          state
		lv          *secretmanagerpb.SecretVersion
		stErr, lErr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); st, stErr = b.getSecret(ctx, ref.Project, ref.Name) }()
	go func() { defer wg.Done(); lv, lErr = b.latest(ctx, ref.Project, ref.Name) }()
	wg.Wait()
	if stErr != nil {
		return sdk.Meta{}, stErr
	}
	if lErr != nil {
		return sdk.Meta{}, lErr
	}
	if lv == nil { // a creation that never added its first version
		return sdk.Meta{}, sdk.NotFound(ref.Project, ref.Name)
	}
	return b.meta(ctx, ref.Project, ref.Name, st, lv)
}

func (b *Backend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.ready(); err != nil {
		return nil, err
	}
	ref.Version = 0
	if err := sdk.ValidateRef(ref); err != nil {
		return nil, err
	}
	var out []sdk.VersionMeta
	_, err := retry(ctx, func(ctx context.Context) error {
		out = out[:0]
		it := b.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: b.secretName(ref.Project, ref.Name), PageSize: 1000})
		for {
			v, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			// Disabled and destroyed versions cannot be read: not listed.
			if v.GetState() != secretmanagerpb.SecretVersion_ENABLED {
				continue
			}
			n, err := versionNumber(v.GetName())
			if err != nil {
				return err
			}
			out = append(out, sdk.VersionMeta{Version: n, CreatedAt: v.GetCreateTime().AsTime().UTC()})
		}
	})
	if status.Code(err) == codes.NotFound {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	if err != nil {
		return nil, mapErr(ctx, "ListSecretVersions", what(ref.Project, ref.Name), err)
	}
	if len(out) == 0 {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// List pages through the project's secrets sorted by name. Secret Manager
// lists newest first (the proto) or by name (the filtering docs), and its
// page tokens follow its own order; so every page lists all of the
// project's secret names (names only, one ListSecrets sweep), sorts them,
// and continues after the last name of the previous page, which is what the
// page token holds (sdk's token, bound to the project and prefix).
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
	type candidate struct {
		name string
		st   state
	}
	var all []candidate
	_, err = retry(ctx, func(ctx context.Context) error {
		all = all[:0]
		it := b.client.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: b.parent(), Filter: filter, PageSize: 1000})
		for {
			s, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			// `name:` is a substring match: keep real prefixes only.
			name, ok := b.nameFromID(req.Project, s.GetName())
			if !ok || !strings.HasPrefix(name, req.Prefix) || name <= after {
				continue
			}
			all = append(all, candidate{name: name, st: readState(s)})
		}
	})
	if err != nil {
		return sdk.ListPage{}, mapErr(ctx, "ListSecrets", "in project "+req.Project, err)
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
				lv, err := b.latest(ctx, req.Project, c.name)
				if err != nil || lv == nil { // no version: an unfinished creation, not listed
					errs[j] = err
					return
				}
				m, err := b.meta(ctx, req.Project, c.name, c.st, lv)
				if isNotFound(err) { // deleted meanwhile
					return
				}
				metas[j], errs[j] = &m, err
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

// --- writes ---

func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.ready(); err != nil {
		return err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	req := &secretmanagerpb.DeleteSecretRequest{Name: b.secretName(ref.Project, ref.Name)}
	if ref.Version > 0 {
		// Check-and-set: the latest version must be ref.Version and no write
		// may be in flight; the etag makes the delete fail if any writer
		// claimed a version since we looked.
		st, err := b.getSecret(ctx, ref.Project, ref.Name)
		if err != nil {
			return err
		}
		lv, err := b.latest(ctx, ref.Project, ref.Name)
		if err != nil {
			return err
		}
		if lv == nil {
			return sdk.NotFound(ref.Project, ref.Name)
		}
		n, err := versionNumber(lv.GetName())
		if err != nil {
			return err
		}
		if n != ref.Version {
			return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, n)
		}
		if st.claim > n && b.now().Sub(st.claimAt) < b.cfg.lease {
			return fmt.Errorf("%w (a write of version %d is in flight)", sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, n), st.claim)
		}
		req.Etag = st.secret.GetEtag()
	}
	retried, err := retry(ctx, func(ctx context.Context) error { return b.client.DeleteSecret(ctx, req) })
	switch {
	case err == nil:
		return nil
	case status.Code(err) == codes.NotFound:
		if retried && req.Etag == "" { // the first, unanswered, attempt did it
			return nil
		}
		return sdk.NotFound(ref.Project, ref.Name)
	case req.Etag != "" && etagFailure(err):
		return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, 0)
	}
	return mapErr(ctx, "DeleteSecret", what(ref.Project, ref.Name), err)
}
