package gcp

import (
	"context"
	"errors"
	"fmt"
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
	cache  *cache
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
	b.cache = newCache(cfg.metaTTL, b.now)
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
	b.cache.putSeen(b.secretName(project, name), s)
	return readState(s), nil
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
		case codes.FailedPrecondition: // disabled or destroyed
			if v == "latest" {
				return 0, nil, errNewestDisabled
			}
			n, _ := versionNumberOf(v)
			return 0, nil, fmt.Errorf("%w (%w)", sdk.VersionNotFound(project, name, n), errVersionDisabled)
		case codes.NotFound:
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
