package vault

import (
	"net/http"
	"runtime"

	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/plugintest"
)

// The two benchmarks read the same kind of secret from the same kind of
// server, so that their ns/op compare: the plugin adds the gRPC hop to the
// plugin process and, for a secret past version 1, a metadata read (for
// CreatedAt). Both run GOMAXPROCS-parallel readers (-cpu to change).

// benchConns is the number of concurrent readers (and kept-alive
// connections) of every benchmark here.
const benchConns = 32

func benchServer(b *testing.B) *vaulttest.Server {
	b.Helper()
	s := vaulttest.Start(b)
	c := s.Client(b)
	for _, name := range []string{"v1", "v2"} {
		for range map[string]int{"v1": 1, "v2": 2}[name] {
			if _, err := c.KVv2("secret").Put(b.Context(), "secretgate/bench/"+name, map[string]any{"username": "app", "password": "pw"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// BenchmarkDirectKVRead: Vault's own api client reading KV v2 (the
// baseline: one HTTP GET per read).
func BenchmarkDirectKVRead(b *testing.B) {
	s := benchServer(b)
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.HttpClient.Transport.(*http.Transport).MaxIdleConnsPerHost = benchConns
	c, err := api.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c.SetToken(s.RootToken)
	kv := c.KVv2("secret")
	b.ResetTimer()
	b.SetParallelism(benchConns / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := kv.Get(b.Context(), "secretgate/bench/v2"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPluginRead: sdk.Backend.Read through a real plugin process.
func BenchmarkPluginRead(b *testing.B) {
	s := benchServer(b)
	be := plugintest.Start(b, rootSettings(s))
	for _, name := range []string{"v1", "v2"} {
		b.Run("secret-at-"+name, func(b *testing.B) {
			ref := sdk.Ref{Project: "bench", Name: name}
			b.SetParallelism(benchConns / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := be.Read(b.Context(), ref); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
