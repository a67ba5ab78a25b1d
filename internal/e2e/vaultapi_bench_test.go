package e2e

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/internal/vaulttest"
)

// benchWorkers is the number of concurrent clients of each scenario.
const benchWorkers = 32

// BenchmarkVaultAPIGet compares, in one run, GETs of one secret (two keys)
// through the gateway's native API, through its Vault KV v2 API, and from
// a real Vault dev server (KV v2 in memory, no audit device), each with
// benchWorkers clients over HTTP/1.1 keep-alive on 127.0.0.1. The gateway
// runs the real binary on the file backend, auditing every read.
//
//	go test -run '^$' -bench VaultAPIGet -benchtime 20000x ./internal/e2e/
func BenchmarkVaultAPIGet(b *testing.B) {
	g := startVaultGateway(b, testenv.FileBackend("store", b.TempDir()), nil, "")
	tok := g.token("reader")
	r := g.Do(b, "POST", "/v1/projects/default/secrets", g.token("admin"), map[string]any{"name": "bench", "data": map[string]string{"username": "svc", "password": "p4ssw0rd-bench"}})
	require.Equal(b, http.StatusCreated, r.Status, "%s", r.Body)
	v := vaulttest.Start(b)
	_, err := v.Client(b).KVv2("secret").Put(context.Background(), "bench", map[string]any{"username": "svc", "password": "p4ssw0rd-bench"})
	require.NoError(b, err)

	for _, sc := range []struct{ name, url, header, value string }{
		{"native", g.URL + "/v1/projects/default/secrets/bench", "Authorization", "Bearer " + tok},
		{"vault-api", g.URL + "/v1/secret/data/default/bench", "X-Vault-Token", tok},
		{"vault-dev", v.Addr + "/v1/secret/data/bench", "X-Vault-Token", v.RootToken},
	} {
		b.Run(sc.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			// Each scenario first warms its connections and the server's
			// paths untimed, so that the order of the scenarios does not
			// favour the later ones.
			getLoad(client, sc.url, sc.header, sc.value, benchWarmup)
			b.ResetTimer()
			start := time.Now()
			failed := getLoad(client, sc.url, sc.header, sc.value, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			require.Zero(b, failed, "failed requests")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}

// benchWarmup is the untimed requests of a scenario before its run.
const benchWarmup = 2000

// getLoad sends n GETs from benchWorkers clients and returns how many failed.
func getLoad(client *http.Client, url, header, value string, n int) int64 {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < benchWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set(header, value)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}
