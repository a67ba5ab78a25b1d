package sdk

import "context"

// Backend is a secret store. Every method is context-first; every error is,
// or wraps, one of the typed errors of this package where one applies.
//
// Implementations must be safe for concurrent use. A Backend never logs a
// value and never puts one in an error.
type Backend interface {
	// Configure is called once, before any other call, with the backend's
	// settings from the gateway's configuration.
	Configure(ctx context.Context, settings map[string]string) error
	Capabilities(ctx context.Context) (Capabilities, error)
	// List returns metadata, sorted by name, one page at a time.
	List(ctx context.Context, req ListRequest) (ListPage, error)
	// Describe returns the latest metadata; ref.Version is ignored.
	Describe(ctx context.Context, ref Ref) (Meta, error)
	// Read returns the values of ref.Version, or of the latest when 0.
	Read(ctx context.Context, ref Ref) (Secret, error)
	// Write stores a new version and returns the new metadata.
	Write(ctx context.Context, req WriteRequest) (Meta, error)
	// Delete removes the secret with every version; the name can be created
	// again at once. When ref.Version > 0 the delete is check-and-set: it
	// happens only if the latest version is ref.Version, else
	// ErrVersionMismatch. Backends without an atomic conditional delete
	// check just before deleting, and say so in their package doc.
	Delete(ctx context.Context, ref Ref) error
	// Versions lists the versions still stored, oldest first.
	Versions(ctx context.Context, ref Ref) ([]VersionMeta, error)
	// Ping checks that the backend can serve.
	Ping(ctx context.Context) error
}
