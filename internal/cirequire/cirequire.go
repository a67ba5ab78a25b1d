// Package cirequire holds the one rule for integration tests whose server or
// tool cannot run here: skip, saying why, on a developer's machine, and fail
// in CI (CI=true), where every test must run.
package cirequire

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips t with msg, or fails it under CI=true.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg + " (CI=true: this test must run in CI)")
	}
	t.Skip(msg)
}
