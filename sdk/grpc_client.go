package sdk

import (
	"context"

	backendpb "github.com/secretgate/secretgate/sdk/proto"
)

// grpcClient is the host side of the hop: a Backend whose every call is an
// RPC to a plugin process.
type grpcClient struct {
	c backendpb.BackendClient
	// exited reports whether the plugin process is gone; nil when unknown.
	exited func() bool
}

var _ Backend = (*grpcClient)(nil)

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

func (c *grpcClient) Capabilities(ctx context.Context) (Capabilities, error) {
	resp, err := c.c.Capabilities(ctx, &backendpb.CapabilitiesRequest{})
	if err != nil {
		return Capabilities{}, c.err(ctx, err)
	}
	return fromPBCapabilities(resp.GetCapabilities()), nil
}

func (c *grpcClient) List(ctx context.Context, req ListRequest) (ListPage, error) {
	if err := wireList(req); err != nil {
		return ListPage{}, err
	}
	resp, err := c.c.List(ctx, &backendpb.ListRequest{
		Project:   req.Project,
		Prefix:    req.Prefix,
		PageSize:  int64(req.PageSize),
		PageToken: req.PageToken,
	})
	if err != nil {
		return ListPage{}, c.err(ctx, err)
	}
	page := ListPage{NextPageToken: resp.GetNextPageToken()}
	if n := len(resp.GetSecrets()); n > 0 {
		page.Secrets = make([]Meta, n)
		for i, m := range resp.GetSecrets() {
			page.Secrets[i] = fromPBMeta(m)
		}
	}
	return page, nil
}

func (c *grpcClient) Describe(ctx context.Context, ref Ref) (Meta, error) {
	if err := wireRef(ref); err != nil {
		return Meta{}, err
	}
	resp, err := c.c.Describe(ctx, &backendpb.DescribeRequest{Ref: toPBRef(ref)})
	if err != nil {
		return Meta{}, c.err(ctx, err)
	}
	return fromPBMeta(resp.GetMeta()), nil
}

func (c *grpcClient) Read(ctx context.Context, ref Ref) (Secret, error) {
	if err := wireRef(ref); err != nil {
		return Secret{}, err
	}
	resp, err := c.c.Read(ctx, &backendpb.ReadRequest{Ref: toPBRef(ref)})
	if err != nil {
		return Secret{}, c.err(ctx, err)
	}
	return Secret{Meta: fromPBMeta(resp.GetMeta()), Data: resp.GetData()}, nil
}

func (c *grpcClient) Write(ctx context.Context, req WriteRequest) (Meta, error) {
	if err := wireWrite(req); err != nil {
		return Meta{}, err
	}
	resp, err := c.c.Write(ctx, toPBWrite(req))
	if err != nil {
		return Meta{}, c.err(ctx, err)
	}
	return fromPBMeta(resp.GetMeta()), nil
}

func (c *grpcClient) Delete(ctx context.Context, ref Ref) error {
	if err := wireRef(ref); err != nil {
		return err
	}
	_, err := c.c.Delete(ctx, &backendpb.DeleteRequest{Ref: toPBRef(ref)})
	return c.err(ctx, err)
}

func (c *grpcClient) Versions(ctx context.Context, ref Ref) ([]VersionMeta, error) {
	if err := wireRef(ref); err != nil {
		return nil, err
	}
	resp, err := c.c.Versions(ctx, &backendpb.VersionsRequest{Ref: toPBRef(ref)})
	if err != nil {
		return nil, c.err(ctx, err)
	}
	out := make([]VersionMeta, len(resp.GetVersions()))
	for i, v := range resp.GetVersions() {
		out[i] = VersionMeta{Version: v.GetVersion(), CreatedAt: fromPBTime(v.GetCreatedAt())}
	}
	return out, nil
}

func (c *grpcClient) Ping(ctx context.Context) error {
	_, err := c.c.Ping(ctx, &backendpb.PingRequest{})
	return c.err(ctx, err)
}
