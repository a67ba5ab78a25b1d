// Package plugin is the transport between the gateway and a backend plugin
// process: hashicorp/go-plugin over gRPC with automatic mutual TLS.
//
// A plugin's main calls Serve with its sdk.Backend; the gateway (or any host)
// starts the executable with Launch and gets an sdk.Backend back, whose calls
// cross the process boundary. Protobuf lives only here (proto/, package
// backendpb, and the adapters grpc_client.go, grpc_server.go,
// convert_grpc.go, errors_grpc.go): both sides see plain Go interfaces, and the
// sdk's typed errors survive the hop as gRPC status codes and details.
//
//	func main() { plugin.Serve(newMyBackend()) }
package plugin
