package sdk

import "context"

// StagedWriter is a Backend that can take a write before its caller may let
// it land. The gateway promises that no change reaches a backend's stable
// storage before the change's audit intent record reaches its own; with a
// StagedWriter it sends the write at once and syncs the intent record
// meanwhile, instead of one after the other (docs/architecture.md, "The
// write path").
type StagedWriter interface {
	// WriteStaged is Write, except that nothing of the write may become
	// durable or visible to any reader before ready returns nil. It calls
	// ready at most once, from any goroutine, and returns after ready
	// returned. When ready returns an error, the write does not happen and
	// WriteStaged returns an error. A write refused by its own checks
	// (check-and-set, mode) may be refused without calling ready.
	WriteStaged(ctx context.Context, req WriteRequest, ready func() error) (Meta, error)
}

// WriteStaged writes req through b's WriteStaged when b has one, and
// otherwise calls ready and then, if it returned nil, b.Write.
func WriteStaged(ctx context.Context, b Backend, req WriteRequest, ready func() error) (Meta, error) {
	if s, ok := b.(StagedWriter); ok {
		return s.WriteStaged(ctx, req, ready)
	}
	if err := ready(); err != nil {
		return Meta{}, err
	}
	return b.Write(ctx, req)
}
