package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/secretgate/secretgate/sdk"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// grpcServer is the plugin side of the hop: it serves a Backend over gRPC.
type grpcServer struct {
	backendpb.UnimplementedBackendServer
	impl   sdk.Backend
	direct *directServer
}

var _ backendpb.BackendServer = (*grpcServer)(nil)

func (s *grpcServer) Configure(ctx context.Context, req *backendpb.ConfigureRequest) (*backendpb.ConfigureResponse, error) {
	settings := req.GetSettings()
	if settings == nil {
		settings = map[string]string{}
	}
	if err := s.impl.Configure(ctx, settings); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.ConfigureResponse{}, nil
}

func (s *grpcServer) Capabilities(ctx context.Context, _ *backendpb.CapabilitiesRequest) (*backendpb.CapabilitiesResponse, error) {
	c, err := s.impl.Capabilities(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.CapabilitiesResponse{Capabilities: toPBCapabilities(c)}, nil
}

func (s *grpcServer) List(ctx context.Context, req *backendpb.ListRequest) (*backendpb.ListResponse, error) {
	page, err := s.impl.List(ctx, sdk.ListRequest{
		Project:   req.GetProject(),
		Prefix:    req.GetPrefix(),
		PageSize:  clampInt(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return toPBListResponse(page), nil
}

// toPBListResponse is a page as toPBMeta converts each name, with the
// page's Metas in one allocation and their Timestamps in another rather
// than three allocations per name (a Meta, two Timestamps): they live and
// die with the response anyway.
func toPBListResponse(page sdk.ListPage) *backendpb.ListResponse {
	out := &backendpb.ListResponse{
		Secrets:       make([]*backendpb.Meta, len(page.Secrets)),
		NextPageToken: page.NextPageToken,
	}
	metas := make([]backendpb.Meta, len(page.Secrets))
	times := make([]timestamppb.Timestamp, 2*len(page.Secrets))
	for i, m := range page.Secrets {
		pm := &metas[i]
		pm.Project, pm.Name, pm.Keys, pm.Version = m.Project, m.Name, m.Keys, m.Version
		pm.Labels, pm.LabelsSet = m.Labels, m.Labels != nil
		pm.CreatedAt = setPBTime(&times[2*i], m.CreatedAt)
		pm.UpdatedAt = setPBTime(&times[2*i+1], m.UpdatedAt)
		out.Secrets[i] = pm
	}
	return out
}

// setPBTime is toPBTime into ts.
func setPBTime(ts *timestamppb.Timestamp, t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	ts.Seconds, ts.Nanos = t.Unix(), int32(t.Nanosecond())
	return ts
}

func (s *grpcServer) Describe(ctx context.Context, req *backendpb.DescribeRequest) (*backendpb.DescribeResponse, error) {
	m, err := s.impl.Describe(ctx, fromPBRef(req.GetRef()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.DescribeResponse{Meta: toPBMeta(m)}, nil
}

func (s *grpcServer) Read(ctx context.Context, req *backendpb.ReadRequest) (*backendpb.ReadResponse, error) {
	sec, err := s.impl.Read(ctx, fromPBRef(req.GetRef()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.ReadResponse{Meta: toPBMeta(sec.Meta), Data: sec.Data}, nil
}

func (s *grpcServer) Write(ctx context.Context, req *backendpb.WriteRequest) (*backendpb.WriteResponse, error) {
	m, err := s.impl.Write(ctx, fromPBWrite(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.WriteResponse{Meta: toPBMeta(m)}, nil
}

func (s *grpcServer) Delete(ctx context.Context, req *backendpb.DeleteRequest) (*backendpb.DeleteResponse, error) {
	if err := s.impl.Delete(ctx, fromPBRef(req.GetRef())); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.DeleteResponse{}, nil
}

func (s *grpcServer) Versions(ctx context.Context, req *backendpb.VersionsRequest) (*backendpb.VersionsResponse, error) {
	vs, err := s.impl.Versions(ctx, fromPBRef(req.GetRef()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendpb.VersionsResponse{Versions: make([]*backendpb.VersionMeta, len(vs))}
	for i, v := range vs {
		out.Versions[i] = &backendpb.VersionMeta{Version: v.Version, CreatedAt: toPBTime(v.CreatedAt)}
	}
	return out, nil
}

func (s *grpcServer) Ping(ctx context.Context, _ *backendpb.PingRequest) (*backendpb.PingResponse, error) {
	if err := s.impl.Ping(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.PingResponse{}, nil
}

func (s *grpcServer) OpenDirect(_ context.Context, req *backendpb.OpenDirectRequest) (*backendpb.OpenDirectResponse, error) {
	addr, token, err := s.direct.open(req.GetDir())
	if errors.Is(err, errDirectUnsupported) {
		// The answer a plugin built with an older SDK gives too: the host
		// keeps every call on gRPC (direct_client.go).
		return nil, status.Error(codes.Unimplemented, "the direct channel is not supported on this platform; calls stay on gRPC")
	}
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &backendpb.OpenDirectResponse{Address: addr, Token: token}, nil
}

func (s *grpcServer) CancelDirect(_ context.Context, req *backendpb.CancelDirectRequest) (*backendpb.CancelDirectResponse, error) {
	err := context.Canceled
	if req.GetDeadlineExceeded() {
		err = context.DeadlineExceeded
	}
	s.direct.cancelCall(req.GetConn(), req.GetCall(), err)
	return &backendpb.CancelDirectResponse{}, nil
}

// Receipts and ForgetReceipts serve a backend that keeps receipts
// (sdk.ReceiptKeeper); any other answers UNIMPLEMENTED.
func (s *grpcServer) Receipts(ctx context.Context, _ *backendpb.ReceiptsRequest) (*backendpb.ReceiptsResponse, error) {
	k, ok := s.impl.(sdk.ReceiptKeeper)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this backend keeps no audit receipts")
	}
	kept, err := k.Receipts(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendpb.ReceiptsResponse{Receipts: make([]*backendpb.Receipt, len(kept))}
	for i, r := range kept {
		out.Receipts[i] = &backendpb.Receipt{Key: r.Key, Record: r.Record, Version: r.Version}
	}
	return out, nil
}

func (s *grpcServer) ForgetReceipts(ctx context.Context, req *backendpb.ForgetReceiptsRequest) (*backendpb.ForgetReceiptsResponse, error) {
	k, ok := s.impl.(sdk.ReceiptKeeper)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this backend keeps no audit receipts")
	}
	if err := k.ForgetReceipts(ctx, req.GetKeys()); err != nil {
		return nil, toStatus(err)
	}
	return &backendpb.ForgetReceiptsResponse{}, nil
}

// clampInt converts a wire int64 to int without wrapping around on 32-bit
// platforms, so that an out-of-range page size still fails validation
// instead of turning into a small valid one.
func clampInt(v int64) int {
	const maxInt = int64(^uint(0) >> 1)
	const minInt = -maxInt - 1
	switch {
	case v > maxInt:
		return int(maxInt)
	case v < minInt:
		return int(minInt)
	}
	return int(v)
}
