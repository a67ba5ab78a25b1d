// Package gcptest is an in-memory Google Cloud Secret Manager (v1) gRPC
// server, faithful to the semantics Google documents in the proto comments
// of google.cloud.secretmanager.v1 and on cloud.google.com/secret-manager/docs,
// for tests and for trying secretgate's gcp plugin without a GCP project.
//
// What it implements, and the errors it answers with:
//   - Resource names projects/{p}/secrets/{s}[/versions/{v}] and their
//     regional form projects/{p}/locations/{l}/secrets/...; a malformed name,
//     a secret id outside [A-Za-z0-9_-]{1,255}, labels breaking the label
//     rules (key/value regexes, 63 characters, 64 labels) or annotations
//     breaking theirs (key regex, < 16 KiB in total): INVALID_ARGUMENT.
//   - CreateSecret of an existing id: ALREADY_EXISTS. Unknown secrets and
//     versions: NOT_FOUND. Regional secrets refuse a replication policy.
//   - Etags on Secret and SecretVersion: quoted strings, new at creation and
//     on every modification, even a no-op one. Only UpdateSecret changes a
//     secret's etag (adding a version does not: "updating a secret version
//     doesn't affect the secret etag, and vice versa"). A request carrying an
//     etag that does not match fails with FAILED_PRECONDITION, which is what
//     https://cloud.google.com/secret-manager/docs/etags documents (AIP-154
//     recommends ABORTED, Secret Manager predates that).
//   - UpdateSecret needs an update_mask; the paths labels, annotations,
//     version_aliases and topics are supported. Any other path, immutable in
//     Secret Manager or outside what this stand-in models, is refused with
//     INVALID_ARGUMENT naming the path, never ignored.
//   - Versions are numbered 1, 2, 3... per secret, states ENABLED, DISABLED,
//     DESTROYED; `latest` is the most recently created version, whatever its
//     state; aliases resolve through version_aliases. AccessSecretVersion of
//     a DISABLED or DESTROYED version: FAILED_PRECONDITION. Enabling or
//     disabling a DESTROYED version: FAILED_PRECONDITION.
//   - Payloads are at most 64 KiB; a data_crc32c (Castagnoli) that does not
//     match the data is INVALID_ARGUMENT; AccessSecretVersion always returns
//     data_crc32c (computed when the client sent none).
//   - ListSecrets pages follow an order that is neither creation nor name
//     order, different per server (Google documents none); ListSecretVersions
//     returns newest first. page_size 0 means "the server decides"
//     (everything here), above 25000 is capped, negative is
//     INVALID_ARGUMENT; page tokens are opaque and bound to the parent and
//     filter they came from. The filter subset is documented in filter.go;
//     anything else is INVALID_ARGUMENT.
//   - Resource names in answers carry the project number (ProjectNumber: a
//     stable hash of the id), whatever the request used, as Secret Manager
//     answers; requests may name the project by id or number.
//   - DeleteSecret removes the secret with every version; the id can be
//     created again at once.
//
// Faithful to the real service where it is weaker (Options, NewServerWith,
// StartWith), with the source of each behaviour:
//   - Lag (documented, cloud.google.com/secret-manager/docs/reference/
//     consistency): only AccessSecretVersion by number is strongly
//     consistent; `latest`, aliases, GetSecret, GetSecretVersion,
//     ListSecrets and ListSecretVersions answer from the state of Options.Lag
//     ago (Options.LatestLag for `latest` and aliases when set). A fixed lag
//     is an assumption: Google says "typically within minutes, but may take
//     a few hours", and does not say whether the reads converge together.
//     Mutations and their etag checks see the current state: an assumption
//     (the etag page documents optimistic concurrency, not how it meets the
//     eventual consistency).
//   - Quotas (documented, cloud.google.com/secret-manager/quotas): 90,000
//     access, 600 read and 600 write requests per minute per project, and
//     AddSecretVersion+UpdateSecret at 2 per second and 120 per minute per
//     global secret (GoogleQuotas). Counted here in fixed windows (Google
//     does not say how it counts), and the per-secret limit is enforced
//     always (Google calls it "soft-enforced": served while its backends
//     cope). A refused call is RESOURCE_EXHAUSTED with an ErrorInfo (reason
//     RATE_LIMIT_EXCEEDED, quota_metric, quota_limit: the AIP-193 shape
//     Google's APIs use) and a RetryInfo until the window resets, which is
//     an assumption: clients must cope without it. A refused call is not
//     applied. Whether a refused call spends quota is not documented; here
//     it does not.
//   - Calls and ResetCalls count the calls of each method, for measuring
//     what a client spends.
//
// It is safe for concurrent use. It models no IAM, rotation, Pub/Sub, expiry
// or CMEK: an expiry is refused with UNIMPLEMENTED, the other settings are
// kept as given and have no effect.
package gcptest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the checksum Secret Manager uses for payloads.
func CRC32C(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

type version struct {
	pb   *secretmanagerpb.SecretVersion
	data []byte
	crc  int64
}

type secret struct {
	pb       *secretmanagerpb.Secret
	order    uint64 // list position: a hash of the name, so that list order is not creation order
	versions []*version
}

// Server is the in-memory Secret Manager. The zero value is not usable; use
// NewServer.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	mu      sync.RWMutex
	secrets map[string]*secret // by full resource name, with the project number
	history map[string][]rev   // past states, for lagged readers (Options.Lag)
	salt    uint64             // per server: list order differs between servers
	etag    uint64
	now     func() time.Time

	opts   Options
	faults faults
	count  counter
	quota  quotaState
}

// NewServer returns an empty server.
func NewServer() *Server {
	var salt [8]byte
	_, _ = rand.Read(salt[:])
	return &Server{secrets: map[string]*secret{}, history: map[string][]rev{}, salt: binary.LittleEndian.Uint64(salt[:]), now: time.Now}
}

// listOrder is where a secret lists: Google does not document the order of
// ListSecrets (the proto says nothing; clients must not rely on one), so
// this server uses an order that is neither creation nor name order.
func (s *Server) listOrder(name string) uint64 {
	h := fnv.New64a()
	_ = binary.Write(h, binary.LittleEndian, s.salt)
	h.Write([]byte(name))
	return h.Sum64() | 1 // never 0: 0 means "no token"
}

// nextEtag must be called with mu held for writing.
func (s *Server) nextEtag() string {
	s.etag++
	return fmt.Sprintf("%q", fmt.Sprintf("%016x", uint64(s.now().UnixNano())^s.etag<<1|s.etag))
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }

func (s *Server) CreateSecret(ctx context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	p, err := parseParent(req.GetParent())
	if err != nil {
		return nil, err
	}
	if !secretIDRe.MatchString(req.GetSecretId()) {
		return nil, invalid("secret_id %q must be 1-255 characters of [A-Za-z0-9_-]", req.GetSecretId())
	}
	in := req.GetSecret()
	if in == nil {
		return nil, invalid("secret is required")
	}
	if p.location != "" && in.GetReplication() != nil {
		return nil, invalid("regional secrets (%s) do not take a replication policy", p)
	}
	if r := in.GetReplication(); r != nil {
		if um := r.GetUserManaged(); um != nil && len(um.GetReplicas()) == 0 {
			return nil, invalid("replication.user_managed.replicas must not be empty")
		}
	}
	if err := validateLabels(in.GetLabels()); err != nil {
		return nil, err
	}
	if err := validateAnnotations(in.GetAnnotations()); err != nil {
		return nil, err
	}
	if err := validateAliases(in.GetVersionAliases()); err != nil {
		return nil, err
	}
	name := p.String() + "/secrets/" + req.GetSecretId()

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", name)
	}
	pb := clone(in)
	pb.Name = name
	pb.CreateTime = timestamppb.New(s.now())
	pb.Etag = s.nextEtag()
	// Expiry is outside what this server models; refusing it keeps a caller
	// from believing a secret will expire when it never would.
	if in.GetExpiration() != nil {
		return nil, status.Error(codes.Unimplemented, "expire_time and ttl are not supported by this test server")
	}
	if p.location == "" && pb.Replication == nil {
		pb.Replication = &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}
	}
	s.secrets[name] = &secret{pb: pb, order: s.listOrder(name)}
	s.record(name)
	return clone(pb), nil
}

// lookup finds a secret by resource name; mu must be held.
func (s *Server) lookup(name string) (*secret, error) {
	if _, _, err := parseSecretName(name); err != nil {
		return nil, err
	}
	sec, ok := s.secrets[canonical(name)]
	if !ok {
		return nil, notFound("Secret", name)
	}
	return sec, nil
}

// lookupLagged is lookup as a reader lagging by lag sees it; mu must be held.
func (s *Server) lookupLagged(name string, lag time.Duration) (*secret, error) {
	if _, _, err := parseSecretName(name); err != nil {
		return nil, err
	}
	sec := s.view(canonical(name), lag)
	if sec == nil {
		return nil, notFound("Secret", name)
	}
	return sec, nil
}

func (s *Server) GetSecret(ctx context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sec, err := s.lookupLagged(req.GetName(), s.opts.Lag)
	if err != nil {
		return nil, err
	}
	return clone(sec.pb), nil
}

func etagMismatch(kind, name string) error {
	return status.Errorf(codes.FailedPrecondition, "The etag provided in the request does not match the current etag of %s [%s].", kind, name)
}

func (s *Server) UpdateSecret(ctx context.Context, req *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	in := req.GetSecret()
	if in == nil {
		return nil, invalid("secret is required")
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask is required and must name at least one field")
	}
	for _, p := range paths {
		switch p {
		case "labels":
			if err := validateLabels(in.GetLabels()); err != nil {
				return nil, err
			}
		case "annotations":
			if err := validateAnnotations(in.GetAnnotations()); err != nil {
				return nil, err
			}
		case "version_aliases":
			if err := validateAliases(in.GetVersionAliases()); err != nil {
				return nil, err
			}
		case "topics":
		default:
			return nil, invalid("update_mask path %q is immutable or not supported by this test server (supported: labels, annotations, version_aliases, topics)", p)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(in.GetName())
	if err != nil {
		return nil, err
	}
	if in.GetEtag() != "" && in.GetEtag() != sec.pb.GetEtag() {
		return nil, etagMismatch("Secret", sec.pb.GetName())
	}
	for _, p := range paths {
		switch p {
		case "labels":
			sec.pb.Labels = clone(in).GetLabels()
		case "annotations":
			sec.pb.Annotations = clone(in).GetAnnotations()
		case "version_aliases":
			for a, v := range in.GetVersionAliases() {
				if v > int64(len(sec.versions)) {
					return nil, invalid("version alias %q points at version %d, which does not exist", a, v)
				}
			}
			sec.pb.VersionAliases = clone(in).GetVersionAliases()
		case "topics":
			sec.pb.Topics = clone(in).GetTopics()
		}
	}
	sec.pb.Etag = s.nextEtag()
	s.record(sec.pb.GetName())
	return clone(sec.pb), nil
}

func (s *Server) DeleteSecret(ctx context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(req.GetName())
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != sec.pb.GetEtag() {
		return nil, etagMismatch("Secret", sec.pb.GetName())
	}
	delete(s.secrets, sec.pb.GetName())
	s.record(sec.pb.GetName())
	return &emptypb.Empty{}, nil
}

// pageToken is the opaque token of both list calls: where the previous page
// stopped, bound to the request that produced it.
type pageToken struct {
	Parent string `json:"p"`
	Filter string `json:"f"`
	After  uint64 `json:"a"` // items strictly older than this position follow
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s, parent, filter string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t pageToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.After == 0 {
		return 0, invalid("invalid page_token")
	}
	if t.Parent != parent || t.Filter != filter {
		return 0, invalid("page_token does not belong to this parent and filter")
	}
	return t.After, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid("page_size must not be negative")
	case n == 0 || n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

func (s *Server) ListSecrets(ctx context.Context, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	p, err := parseParent(req.GetParent())
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	terms, err := parseSecretFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	after, err := decodeToken(req.GetPageToken(), p.String(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	prefix := p.String() + "/secrets/"

	s.mu.RLock()
	defer s.mu.RUnlock()
	var all []*secret
	for _, name := range s.names() {
		if len(name) > len(prefix) && name[:len(prefix)] == prefix {
			if sec := s.view(name, s.opts.Lag); sec != nil {
				all = append(all, sec)
			}
		}
	}
	total := len(all)
	sort.Slice(all, func(i, j int) bool { return all[i].order > all[j].order })
	resp := &secretmanagerpb.ListSecretsResponse{}
	if req.GetFilter() == "" {
		resp.TotalSize = int32(total)
	}
	var lastSeq uint64
	for _, sec := range all {
		if after != 0 && sec.order >= after {
			continue
		}
		if !matchAll(terms, sec.pb) {
			continue
		}
		if len(resp.Secrets) == size {
			resp.NextPageToken = encodeToken(pageToken{Parent: p.String(), Filter: req.GetFilter(), After: lastSeq})
			break
		}
		resp.Secrets = append(resp.Secrets, clone(sec.pb))
		lastSeq = sec.order
	}
	return resp, nil
}

func matchAll[T any](terms []func(T) bool, v T) bool {
	for _, t := range terms {
		if !t(v) {
			return false
		}
	}
	return true
}
