//go:build !unix

package gateway

// setNoCoreDumps: core dumps are a Unix feature; elsewhere there is no
// RLIMIT_CORE to set.
func setNoCoreDumps() error { return nil }
