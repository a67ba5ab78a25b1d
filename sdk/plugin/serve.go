package plugin

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/secretgate/secretgate/sdk"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// handshake is shared by Serve and Launch. The cookie is not a secret: it
// only stops a plugin binary from being run by hand as if it were a tool.
var handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SECRETGATE_PLUGIN",
	MagicCookieValue: "c6f1d4a2-7b3e-4e0f-9a51-secretgate-backend-v1",
}

// pluginName is the one plugin every secretgate plugin binary serves.
const pluginName = "backend"

// maxMessageBytes bounds one gRPC message. A full list page (1000 secrets
// with 100 keys and 64 labels each) is far above gRPC's 4 MiB default.
const maxMessageBytes = 64 << 20

// windowBytes is the gRPC flow-control window on both sides of the hop.
const windowBytes = 4 << 20

// backendPlugin binds a Backend to go-plugin's gRPC transport, as in
// go-plugin's examples/grpc.
type backendPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// Plugin side only: the backend, and the direct channel that shares
	// its handlers with the gRPC server.
	impl   sdk.Backend
	direct *directServer
	logger hclog.Logger
}

func (p *backendPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	gs := &grpcServer{impl: p.impl}
	gs.direct = newDirectServer(gs, recoverInterceptor(p.logger), p.logger)
	p.direct = gs.direct
	backendpb.RegisterBackendServer(s, gs)
	return nil
}

func (p *backendPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	hop := &hopConn{grpc: conn}
	return &grpcClient{c: backendpb.NewBackendClient(hop), hop: hop}, nil
}

// Serve runs b as a secretgate backend plugin: it is what a plugin's main
// calls, and it blocks until the host ends the plugin. Run by hand (not by a
// secretgate host), it prints that it is a plugin and exits with status 1.
//
// Logs go to stderr through hclog at Info level, and reach the host's log.
// Serve never logs a value; neither must b.
func Serve(b sdk.Backend) {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "secretgate-plugin",
		Level:      hclog.Info,
		Output:     os.Stderr,
		JSONFormat: true, // the host parses these lines back into its own log
	})
	bp := &backendPlugin{impl: b, logger: logger}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         goplugin.PluginSet{pluginName: bp},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts,
				grpc.MaxRecvMsgSize(maxMessageBytes),
				grpc.InitialWindowSize(windowBytes),
				grpc.InitialConnWindowSize(windowBytes),
				// Calls run on long-lived workers whose stacks have already
				// grown, instead of a fresh goroutine per call that grows
				// (copies) its stack again each time: profiled at ~20% of
				// a file plugin's CPU under load.
				grpc.NumStreamWorkers(streamWorkers()),
				grpc.ChainUnaryInterceptor(recoverInterceptor(logger)))
			return goplugin.DefaultGRPCServer(opts)
		},
		Logger: logger,
	})
	// go-plugin returns once its gRPC server has stopped; the direct
	// channel's calls end with it.
	if bp.direct != nil {
		bp.direct.close()
	}
}

// streamWorkers: enough to keep every CPU busy with calls that also wait on
// I/O; when all are busy gRPC starts a goroutine for the call as usual.
func streamWorkers() uint32 { return uint32(4 * runtime.GOMAXPROCS(0)) }

// recoverInterceptor turns a panic in a backend method into an Internal
// error for that one call, instead of killing the plugin and every call in
// flight. Only the method and the panic's type are logged: a panic value
// may hold anything, values included.
func recoverInterceptor(logger hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("backend panicked", "method", info.FullMethod, "panic_type", fmt.Sprintf("%T", r))
				err = status.Errorf(codes.Internal, "plugin panicked in %s", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}
