package plugin

import (
	"context"
	"unicode/utf8"

	"google.golang.org/grpc"

	"github.com/secretgate/secretgate/sdk"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// grpcClient is the host side of the hop: a Backend whose every call is an
// RPC to a plugin process.
type grpcClient struct {
	c   backendpb.BackendClient
	hop *hopConn // under c: picks the direct channel or gRPC for each call
	// exited reports whether the plugin process is gone; nil when unknown.
	exited func() bool
}

var (
	_ sdk.Backend       = (*grpcClient)(nil)
	_ sdk.ReceiptKeeper = (*grpcClient)(nil)
)

func (c *grpcClient) err(ctx context.Context, err error) error {
	return fromStatus(ctx, err, c.exited)
}

func (c *grpcClient) Configure(ctx context.Context, settings map[string]string) error {
	if err := wireMap("settings", settings); err != nil {
		return err
	}
	_, err := c.c.Configure(ctx, &backendpb.ConfigureRequest{Settings: settings})
	return c.err(ctx, err)
}

func (c *grpcClient) Capabilities(ctx context.Context) (sdk.Capabilities, error) {
	resp, err := c.c.Capabilities(ctx, &backendpb.CapabilitiesRequest{})
	if err != nil {
		return sdk.Capabilities{}, c.err(ctx, err)
	}
	return fromPBCapabilities(resp.GetCapabilities()), nil
}

func (c *grpcClient) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := wireList(req); err != nil {
		return sdk.ListPage{}, err
	}
	in := &backendpb.ListRequest{
		Project:   req.Project,
		Prefix:    req.Prefix,
		PageSize:  int64(req.PageSize),
		PageToken: req.PageToken,
	}
	// The call c.c.List makes, with a reply that decodes straight into the
	// page (list_client.go).
	var out listReply
	if err := c.hop.Invoke(ctx, backendpb.Backend_List_FullMethodName, in, &out, grpc.StaticMethod()); err != nil {
		return sdk.ListPage{}, c.err(ctx, err)
	}
	return out.result(), nil
}

func (c *grpcClient) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := wireRef(ref); err != nil {
		return sdk.Meta{}, err
	}
	resp, err := c.c.Describe(ctx, &backendpb.DescribeRequest{Ref: toPBRef(ref)})
	if err != nil {
		return sdk.Meta{}, c.err(ctx, err)
	}
	return fromPBMeta(resp.GetMeta()), nil
}

func (c *grpcClient) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if err := wireRef(ref); err != nil {
		return sdk.Secret{}, err
	}
	resp, err := c.c.Read(ctx, &backendpb.ReadRequest{Ref: toPBRef(ref)})
	if err != nil {
		return sdk.Secret{}, c.err(ctx, err)
	}
	return sdk.Secret{Meta: fromPBMeta(resp.GetMeta()), Data: resp.GetData()}, nil
}

func (c *grpcClient) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := wireWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	resp, err := c.c.Write(ctx, toPBWrite(req))
	if err != nil {
		return sdk.Meta{}, c.err(ctx, err)
	}
	return fromPBMeta(resp.GetMeta()), nil
}

func (c *grpcClient) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := wireRef(ref); err != nil {
		return err
	}
	_, err := c.c.Delete(ctx, &backendpb.DeleteRequest{Ref: toPBRef(ref)})
	return c.err(ctx, err)
}

func (c *grpcClient) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := wireRef(ref); err != nil {
		return nil, err
	}
	resp, err := c.c.Versions(ctx, &backendpb.VersionsRequest{Ref: toPBRef(ref)})
	if err != nil {
		return nil, c.err(ctx, err)
	}
	out := make([]sdk.VersionMeta, len(resp.GetVersions()))
	for i, v := range resp.GetVersions() {
		out[i] = sdk.VersionMeta{Version: v.GetVersion(), CreatedAt: fromPBTime(v.GetCreatedAt())}
	}
	return out, nil
}

func (c *grpcClient) Ping(ctx context.Context) error {
	_, err := c.c.Ping(ctx, &backendpb.PingRequest{})
	return c.err(ctx, err)
}

// Receipts and ForgetReceipts fail against a plugin that keeps no receipts
// (it answers UNIMPLEMENTED); the host calls them only on plugins whose
// capabilities say receipts.
func (c *grpcClient) Receipts(ctx context.Context) ([]sdk.KeptReceipt, error) {
	resp, err := c.c.Receipts(ctx, &backendpb.ReceiptsRequest{})
	if err != nil {
		return nil, c.err(ctx, err)
	}
	out := make([]sdk.KeptReceipt, len(resp.GetReceipts()))
	for i, r := range resp.GetReceipts() {
		out[i] = sdk.KeptReceipt{Key: r.GetKey(), Record: r.GetRecord(), Version: r.GetVersion()}
	}
	return out, nil
}

func (c *grpcClient) ForgetReceipts(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if !utf8.ValidString(k) {
			return sdk.Invalid("keys", "must be valid UTF-8")
		}
	}
	_, err := c.c.ForgetReceipts(ctx, &backendpb.ForgetReceiptsRequest{Keys: keys})
	return c.err(ctx, err)
}
