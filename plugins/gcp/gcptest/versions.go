package gcptest

// The secret version methods of the fake Secret Manager: add, resolve
// (numbers and aliases), get, access, list, and state transitions.

import (
	"context"
	"strconv"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func (s *Server) AddSecretVersion(ctx context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	payload := req.GetPayload()
	if payload == nil {
		return nil, invalid("payload is required")
	}
	if len(payload.GetData()) > maxPayloadBytes {
		return nil, invalid("payload.data must be no larger than 64KiB, got %d bytes", len(payload.GetData()))
	}
	crc := CRC32C(payload.GetData())
	if payload.DataCrc32C != nil && payload.GetDataCrc32C() != crc {
		return nil, invalid("Checksum mismatch: payload.data_crc32c does not match the CRC32C of payload.data")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(req.GetParent())
	if err != nil {
		return nil, err
	}
	n := int64(len(sec.versions)) + 1
	pb := &secretmanagerpb.SecretVersion{
		Name:                           versionName(sec.pb.GetName(), n),
		CreateTime:                     timestamppb.New(s.now()),
		State:                          secretmanagerpb.SecretVersion_ENABLED,
		Etag:                           s.nextEtag(),
		ClientSpecifiedPayloadChecksum: payload.DataCrc32C != nil,
	}
	sec.versions = append(sec.versions, &version{pb: pb, data: append([]byte(nil), payload.GetData()...), crc: crc})
	s.record(sec.pb.GetName())
	return clone(pb), nil
}

// resolve finds a version by resource name, resolving `latest` and aliases;
// mu must be held. A lagged lookup sees the state of Options.Lag ago; so
// does every lookup of `latest` or an alias when byNumber is set (access by
// number is the one strongly consistent read).
func (s *Server) resolve(name string, lagged, byNumber bool) (*secret, *version, error) {
	secName, v, err := parseVersionName(name)
	if err != nil {
		return nil, nil, err
	}
	_, numErr := strconv.ParseInt(v, 10, 64)
	if byNumber {
		lagged = numErr != nil
	}
	var sec *secret
	if lagged {
		lag := s.opts.Lag
		if numErr != nil && s.opts.LatestLag > 0 {
			lag = s.opts.LatestLag
		}
		sec, err = s.lookupLagged(secName, lag)
	} else {
		sec, err = s.lookup(secName)
	}
	if err != nil {
		return nil, nil, err
	}
	var n int64
	switch {
	case v == "latest":
		n = int64(len(sec.versions))
	default:
		if alias, ok := sec.pb.GetVersionAliases()[v]; ok {
			n = alias
		} else if n, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, nil, notFound("Secret Version", name)
		}
	}
	if n < 1 || n > int64(len(sec.versions)) {
		return nil, nil, notFound("Secret Version", name)
	}
	return sec, sec.versions[n-1], nil
}

func (s *Server) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, v, err := s.resolve(req.GetName(), true, false)
	if err != nil {
		return nil, err
	}
	return clone(v.pb), nil
}

func (s *Server) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, v, err := s.resolve(req.GetName(), false, true)
	if err != nil {
		return nil, err
	}
	if st := v.pb.GetState(); st != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", v.pb.GetName(), st)
	}
	crc := v.crc
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    v.pb.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: append([]byte(nil), v.data...), DataCrc32C: &crc},
	}, nil
}

func (s *Server) ListSecretVersions(ctx context.Context, req *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	terms, err := parseVersionFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	after, err := decodeToken(req.GetPageToken(), req.GetParent(), req.GetFilter())
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	sec, err := s.lookupLagged(req.GetParent(), s.opts.Lag)
	if err != nil {
		return nil, err
	}
	resp := &secretmanagerpb.ListSecretVersionsResponse{}
	if req.GetFilter() == "" {
		resp.TotalSize = int32(len(sec.versions))
	}
	for i := len(sec.versions) - 1; i >= 0; i-- { // newest first
		n := uint64(i + 1)
		if after != 0 && n >= after {
			continue
		}
		v := sec.versions[i]
		if !matchAll(terms, v.pb) {
			continue
		}
		if len(resp.Versions) == size {
			last := resp.Versions[len(resp.Versions)-1].GetName()
			lastN, _ := strconv.ParseUint(last[len(sec.pb.GetName())+len("/versions/"):], 10, 64)
			resp.NextPageToken = encodeToken(pageToken{Parent: req.GetParent(), Filter: req.GetFilter(), After: lastN})
			break
		}
		resp.Versions = append(resp.Versions, clone(v.pb))
	}
	return resp, nil
}

// transition applies an etag-checked state change to one version.
func (s *Server) transition(name, etag string, to secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, v, err := s.resolve(name, false, false)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != v.pb.GetEtag() {
		return nil, etagMismatch("Secret Version", v.pb.GetName())
	}
	if v.pb.GetState() == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", v.pb.GetName())
	}
	v.pb.State = to
	if to == secretmanagerpb.SecretVersion_DESTROYED {
		v.pb.DestroyTime = timestamppb.New(s.now())
		clear(v.data)
		v.data = nil
	}
	v.pb.Etag = s.nextEtag() // even a no-op transition gets a new etag
	s.record(sec.pb.GetName())
	return clone(v.pb), nil
}

func (s *Server) EnableSecretVersion(ctx context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.transition(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_ENABLED)
}

func (s *Server) DisableSecretVersion(ctx context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.transition(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DISABLED)
}

func (s *Server) DestroySecretVersion(ctx context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.transition(req.GetName(), req.GetEtag(), secretmanagerpb.SecretVersion_DESTROYED)
}
