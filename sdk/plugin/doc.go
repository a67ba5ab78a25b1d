// Package plugin is the transport between the gateway and a backend plugin
// process: hashicorp/go-plugin over gRPC with automatic mutual TLS, plus a
// direct channel for the Backend calls themselves.
//
// A plugin's main calls Serve with its sdk.Backend; the gateway (or any host)
// starts the executable with Launch and gets an sdk.Backend back, whose calls
// cross the process boundary. Protobuf lives only here (proto/, package
// backendpb, and the adapters grpc_client.go, list_client.go, grpc_server.go,
// convert_grpc.go, errors_grpc.go): both sides see plain Go interfaces, and the
// sdk's typed errors survive the hop as gRPC status codes and details.
//
//	func main() { plugin.Serve(newMyBackend()) }
//
// # The direct channel
//
// go-plugin's gRPC connection starts the plugin, carries its log and its
// shutdown, and sets up the direct channel (OpenDirect); the Backend calls
// then take the direct channel: a Unix socket where each call is one
// length-prefixed protobuf frame each way, on a connection of its own, read
// and written by the goroutines that make and serve the call. The messages,
// the handlers, the interceptors and the error statuses are gRPC's, so the
// adapters cannot tell the transports apart. What it saves is the hand-offs
// between goroutines that a gRPC call makes in both processes, each a
// thread wake-up on an idle machine. On the 2-CPU virtual machine of issue
// 16 (BenchmarkPluginRead, both processes measured together, same load): a
// Read over gRPC took 256 µs, 9.4 context switches and 235 µs of CPU; on
// the direct channel 88 µs, 3.7 and 76 µs. AES-GCM was under 1% of the gRPC
// profile; the scheduler (futex wake-ups, epoll) most of it. Deadlines
// travel with the call, cancellations over gRPC (CancelDirect). A plugin
// built with an SDK without the direct channel answers OpenDirect
// UNIMPLEMENTED and is called over gRPC alone, as before; so is every
// plugin on systems other than Linux. The protocol version in the handshake is unchanged: OpenDirect and
// CancelDirect are methods added to the service, which older plugins and
// older gateways simply never use.
//
// # Only the gateway can call a plugin
//
// On the gRPC connection, automatic mutual TLS ensures it: the plugin
// accepts only the client certificate whose key the gateway generated in
// memory at launch. The direct channel gives the same guarantee without
// record encryption, which a socket that never leaves the kernel does not
// need. The plugin admits a connection on it only when all of these hold:
//
//   - The socket is in a directory that the gateway created for this plugin
//     (os.MkdirTemp, removed by Kill), which the plugin checks is a real
//     directory owned by its user with mode 0700; the socket file is 0600.
//     No other user can reach it.
//   - SO_PEERCRED, filled in by the kernel at connect and not chosen by the
//     peer, names the plugin's parent process (the gateway, which started
//     it) and the plugin's uid. No other process of the same user is
//     admitted either.
//   - The connection first presents a 32-byte token from crypto/rand that
//     the plugin gave out only in its answer to OpenDirect, that is only
//     over the mutually authenticated TLS connection; it is compared in
//     constant time and never logged.
//
// So a caller must be the gateway process and hold a secret that only the
// holder of the gateway's TLS client key could have received. The gateway
// in turn checks with SO_PEERCRED that the process it reached is the plugin
// it started, as it checks the plugin's certificate on gRPC. Refused
// connections are logged by the plugin with their reason.
package plugin
