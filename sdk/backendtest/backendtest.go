// Package backendtest is the conformance suite for sdk.Backend
// implementations: every behaviour the gateway relies on, the same for every
// backend. A plugin author calls Run from an ordinary Go test:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) sdk.Backend {
//			b := mybackend.New()
//			require.NoError(t, b.Configure(t.Context(), map[string]string{...}))
//			return b
//		})
//	}
//
// The factory returns a configured backend. Run calls it once and shares the
// instance between subtests, which run in parallel: each subtest works in its
// own randomly named projects ("bt-" + 8 hex digits), so they never see each
// other's secrets, and a backend that keeps state between runs (a real cloud
// account, a shared server) is fine. Run deletes the secrets it creates where
// it can, on a best-effort basis.
//
// What the suite expects beyond sdk's doc comments:
//   - List orders names by bytes (Go's string order) across pages;
//   - a page token the backend never issued, or issued for another project
//     or prefix, is ErrInvalid;
//   - Keys in every Meta, including list entries, are the sorted keys of the
//     latest version; times are UTC;
//   - checks that depend on Capabilities are skipped, with a message, when
//     the backend does not claim the capability: old-version reads
//     (Versions), the concurrent check-and-set race (CAS, which promises
//     atomicity; a stale ExpectedVersion must be refused regardless), labels
//     (Labels), and pruning (MaxVersions > 0);
//   - a deleted name is free for a new create at once, or, for a backend
//     that declares Capabilities.DeletePropagation, a create may fail with
//     ErrUnavailable for at most that long after the Delete;
//   - a backend that declares Capabilities.Receipts keeps a write's
//     receipt exactly when it stores the version, and ForgetReceipts
//     removes it (skipped, with a message, for any other backend).
package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// subtestTimeout bounds each subtest, so that a hung backend fails the
// subtest with a deadline error instead of hanging the whole test binary.
const subtestTimeout = 3 * time.Minute

// suite is the state shared by the subtests of one Run.
type suite struct {
	b    sdk.Backend
	caps sdk.Capabilities
}

type subtest struct {
	name string
	fn   func(t *testing.T, s *suite)
}

// Run runs the conformance suite against the backend newBackend returns.
func Run(t *testing.T, newBackend func(t *testing.T) sdk.Backend) {
	t.Helper()
	b := newBackend(t)
	require.NotNil(t, b, "backendtest: the factory returned a nil backend")
	caps, err := b.Capabilities(ctxFor(t))
	require.NoError(t, err, "backendtest: Capabilities failed")
	require.NotEmpty(t, caps.Backend, "Capabilities.Backend must name the backend type")
	require.GreaterOrEqual(t, caps.MaxVersions, 0, "Capabilities.MaxVersions must be 0 (unlimited) or positive")
	require.GreaterOrEqual(t, caps.DeletePropagation, time.Duration(0), "Capabilities.DeletePropagation must not be negative")
	require.Less(t, caps.DeletePropagation, subtestTimeout, "Capabilities.DeletePropagation must fit in a subtest (%v)", subtestTimeout)
	s := &suite{b: b, caps: caps}

	var tests []subtest
	tests = append(tests, crudTests()...)
	tests = append(tests, versionTests()...)
	tests = append(tests, casTests()...)
	tests = append(tests, listTests()...)
	tests = append(tests, limitTests()...)
	tests = append(tests, metadataTests()...)
	tests = append(tests, invalidTests()...)
	tests = append(tests, receiptTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}

// ctxFor returns a context bounded by subtestTimeout and cancelled when t ends.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), subtestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newProject returns a fresh project name, unique to this subtest.
func newProject(t *testing.T) string {
	t.Helper()
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "bt-" + hex.EncodeToString(b[:])
}

// cleanup deletes the named secrets when the subtest ends, ignoring errors:
// the subtests that delete on purpose check that themselves.
func (s *suite) cleanup(t *testing.T, project string, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, n := range names {
			_ = s.b.Delete(ctx, sdk.Ref{Project: project, Name: n})
		}
	})
}

// create writes a new secret and checks the answer is version 1.
func (s *suite) create(t *testing.T, ctx context.Context, project, name string, data, labels map[string]string) sdk.Meta {
	t.Helper()
	m, err := s.b.Write(ctx, sdk.WriteRequest{Project: project, Name: name, Data: data, Labels: labels, Mode: sdk.WriteCreate})
	require.NoError(t, err, "Write(create) of %q in %q", name, project)
	require.Equal(t, int64(1), m.Version, "a created secret %q must be at version 1", name)
	s.cleanup(t, project, name)
	return m
}

// replace writes a new version of an existing secret.
func (s *suite) replace(t *testing.T, ctx context.Context, project, name string, data map[string]string) sdk.Meta {
	t.Helper()
	m, err := s.b.Write(ctx, sdk.WriteRequest{Project: project, Name: name, Data: data, Mode: sdk.WriteReplace})
	require.NoError(t, err, "Write(replace) of %q in %q", name, project)
	return m
}

// read reads one version (0 = latest) and fails the test on error.
func (s *suite) read(t *testing.T, ctx context.Context, project, name string, version int64) sdk.Secret {
	t.Helper()
	sec, err := s.b.Read(ctx, sdk.Ref{Project: project, Name: name, Version: version})
	require.NoError(t, err, "Read of %q version %d in %q", name, version, project)
	return sec
}

func (s *suite) describe(t *testing.T, ctx context.Context, project, name string) sdk.Meta {
	t.Helper()
	m, err := s.b.Describe(ctx, sdk.Ref{Project: project, Name: name})
	require.NoError(t, err, "Describe of %q in %q", name, project)
	return m
}

// requireIs fails unless errors.Is(err, want), naming the operation.
func requireIs(t *testing.T, err, want error, op string) {
	t.Helper()
	require.Error(t, err, "%s: want an error wrapping %q, got success", op, want)
	require.True(t, errors.Is(err, want), "%s: want an error wrapping %q, got %v", op, want, err)
}

// oldestReadable is the oldest version a backend still serves when latest is
// the current version, from its Capabilities.
func (s *suite) oldestReadable(latest int64) int64 {
	switch {
	case !s.caps.Versions:
		return latest
	case s.caps.MaxVersions > 0 && latest > int64(s.caps.MaxVersions):
		return latest - int64(s.caps.MaxVersions) + 1
	}
	return 1
}

// requireData compares values byte for byte and names the differing key
// without printing values: they may be large, and the habit matters.
func requireData(t *testing.T, want, got map[string]string, what string) {
	t.Helper()
	require.Equal(t, sdk.SortedKeys(want), sdk.SortedKeys(got), "%s: keys differ", what)
	for k, w := range want {
		if g := got[k]; g != w {
			t.Fatalf("%s: value of key %q differs: want %d bytes %s, got %d bytes %s",
				what, k, len(w), hex.EncodeToString(head([]byte(w))), len(g), hex.EncodeToString(head([]byte(g))))
		}
	}
}

// head returns the first bytes of b, for failure messages about test data.
func head(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}

func requireUTC(t *testing.T, tm time.Time, what string) {
	t.Helper()
	require.False(t, tm.IsZero(), "%s must be set", what)
	require.Equal(t, time.UTC, tm.Location(), "%s must be in UTC, got location %v", what, tm.Location())
	// A wrong unit (seconds read as milliseconds) or a zone error shows up as
	// a time far from now.
	require.WithinDuration(t, time.Now(), tm, 2*time.Hour, "%s must be close to now", what)
}
