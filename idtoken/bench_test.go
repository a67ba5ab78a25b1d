package idtoken

import (
	"context"
	"testing"

	"github.com/secretgate/secretgate/internal/oidctest"
)

// BenchmarkVerifyCached is a workload reusing its token: a SHA-256 and a
// map lookup.
func BenchmarkVerifyCached(b *testing.B) {
	f := newFixture(b, nil, Options{})
	tok := f.token(deployClaims())
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := f.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	if n := f.v.sigChecks.Load(); n != 1 {
		b.Fatalf("%d signature checks, want 1", n)
	}
}

// BenchmarkVerifyUncached is a full verification (keys already fetched):
// parse, signature, claims, rules.
func BenchmarkVerifyUncached(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, nil, Options{CacheSize: -1})
			tok := f.token(deployClaims(), oidctest.WithAlg(alg))
			ctx := context.Background()
			if _, err := f.v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := f.v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
