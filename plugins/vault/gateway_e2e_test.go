package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/internal/vaulttest"
)

// startGateway runs the real secretgate binary with project "payments" on a
// vault backend (and "bench", for the benchmark), and subjects admin (admin on *), reader and editor (on
// payments). The Vault token reaches the plugin through ${VAR} expansion,
// never through the config file.
func startGateway(t testing.TB, s *vaulttest.Server) *testenv.Server {
	t.Helper()
	return testenv.Start(t, testenv.Options{
		Backends: []testenv.Backend{{Name: "hcv", Plugin: "vault", Settings: map[string]string{
			"address": s.Addr,
			"token":   "${SG_TEST_VAULT_TOKEN}",
		}}},
		Projects: []testenv.Project{{Name: "payments", Backend: "hcv"}, {Name: "bench", Backend: "hcv"}},
		Subjects: []testenv.Subject{
			{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}},
			{Name: "reader", Grants: []testenv.Grant{{Project: "payments", Role: "reader"}}},
			{Name: "editor", Grants: []testenv.Grant{{Project: "payments", Role: "editor"}}},
		},
		Env: []string{"SG_TEST_VAULT_TOKEN=" + s.RootToken},
	})
}

type metaBody struct {
	Name    string            `json:"name"`
	Keys    []string          `json:"keys"`
	Version int64             `json:"version"`
	Labels  map[string]string `json:"labels"`
	Data    map[string]string `json:"data"`
}

func TestGatewayOnVault(t *testing.T) {
	s := vaulttest.Start(t)
	gw := startGateway(t, s)
	reader, editor := gw.Token("reader"), gw.Token("editor")
	const base = "/v1/projects/payments/secrets"

	// The editor creates; the answer is metadata, never values.
	r := gw.Do(t, "POST", base, editor, map[string]any{
		"name": "stripe-key", "data": map[string]string{"api_key": "sk_live_e2e"}, "labels": map[string]string{"env": "prod"},
	})
	require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	require.NotContains(t, string(r.Body), "sk_live_e2e")
	r = gw.Do(t, "POST", base, editor, map[string]any{"name": "stripe-key", "data": map[string]string{"api_key": "x"}})
	require.Equal(t, http.StatusConflict, r.Status)

	// It is in Vault at the documented path.
	out := s.CLI(t, "", "kv", "get", "-mount=secret", "-field=api_key", "secretgate/payments/stripe-key")
	require.Equal(t, "sk_live_e2e", strings.TrimSpace(out))

	// The reader reads values; the editor cannot, but sees metadata.
	r = gw.Do(t, "GET", base+"/stripe-key", reader, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	var m metaBody
	r.JSON(t, &m)
	require.Equal(t, "sk_live_e2e", m.Data["api_key"])
	require.Equal(t, int64(1), m.Version)
	require.Equal(t, map[string]string{"env": "prod"}, m.Labels)
	r = gw.Do(t, "GET", base+"/stripe-key", editor, nil)
	require.Equal(t, http.StatusForbidden, r.Status)
	require.NotContains(t, string(r.Body), "sk_live_e2e")
	r = gw.Do(t, "GET", base+"/stripe-key/metadata", editor, nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.NotContains(t, string(r.Body), "sk_live_e2e")

	// The reader cannot write.
	r = gw.Do(t, "PUT", base+"/stripe-key", reader, map[string]any{"data": map[string]string{"api_key": "nope"}})
	require.Equal(t, http.StatusForbidden, r.Status)

	// Replace with If-Match (KV v2 cas), a stale one is 412; patch one key.
	r = gw.Do(t, "PUT", base+"/stripe-key", editor, map[string]any{"data": map[string]string{"api_key": "sk_live_2", "account": "acct_1"}}, "If-Match", `"1"`)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	r = gw.Do(t, "PUT", base+"/stripe-key", editor, map[string]any{"data": map[string]string{"api_key": "sk_live_x"}}, "If-Match", `"1"`)
	require.Equal(t, http.StatusPreconditionFailed, r.Status, "body: %s", r.Body)
	r = gw.Do(t, "PATCH", base+"/stripe-key", editor, map[string]any{"set": map[string]string{"api_key": "sk_live_3"}})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	r = gw.Do(t, "GET", base+"/stripe-key", reader, nil)
	r.JSON(t, &m)
	require.Equal(t, map[string]string{"api_key": "sk_live_3", "account": "acct_1"}, m.Data)
	require.Equal(t, int64(3), m.Version)
	r = gw.Do(t, "GET", base+"/stripe-key?version=1", reader, nil)
	r.JSON(t, &m)
	require.Equal(t, "sk_live_e2e", m.Data["api_key"])

	// A secret put with the vault CLI is listed and readable.
	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/from-cli", "token=abc")
	r = gw.Do(t, "GET", base, editor, nil)
	require.Equal(t, http.StatusOK, r.Status)
	var list struct {
		Secrets []metaBody `json:"secrets"`
	}
	r.JSON(t, &list)
	require.Len(t, list.Secrets, 2)
	require.Equal(t, "from-cli", list.Secrets[0].Name)
	require.Equal(t, "stripe-key", list.Secrets[1].Name)

	// Delete: every version goes.
	r = gw.Do(t, "DELETE", base+"/stripe-key", editor, nil)
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
	r = gw.Do(t, "GET", base+"/stripe-key", reader, nil)
	require.Equal(t, http.StatusNotFound, r.Status)
	_, err := s.TryCLI("", "kv", "metadata", "get", "-mount=secret", "secretgate/payments/stripe-key")
	require.Error(t, err)

	// Vault down: 503 backend_unavailable, quickly; back: it recovers.
	s.Stop()
	start := time.Now()
	r = gw.Do(t, "GET", base+"/from-cli", reader, nil)
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "body: %s", r.Body)
	require.Equal(t, "backend_unavailable", r.ErrorCode())
	require.Less(t, time.Since(start), 15*time.Second)
	s.Restart(t)
	eventually(t, 30*time.Second, "gateway answers again after Vault is back", func(context.Context) error {
		r, err := gw.Try("GET", base, editor, nil)
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK {
			return fmt.Errorf("status %d: %s", r.Status, r.Body)
		}
		return nil
	})
	require.NotContains(t, gw.Stderr()+gw.Stdout()+gw.Audit(), "sk_live", "no value in any log")
	require.NotContains(t, gw.Stderr()+gw.Stdout(), s.RootToken, "no Vault token in any log")
}

// BenchmarkGatewayRead: GET of a secret through the gateway on vault, with
// BenchmarkDirectKVRead as the baseline of the same run.
func BenchmarkGatewayRead(b *testing.B) {
	s := benchServer(b)
	gw := startGateway(b, s)
	tok := gw.Token("admin")
	// 32 concurrent clients with kept-alive connections, like wrk -c32.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: benchConns}}
	b.Cleanup(hc.CloseIdleConnections)
	for _, name := range []string{"v1", "v2"} {
		b.Run("secret-at-"+name, func(b *testing.B) {
			url := gw.URL + "/v1/projects/bench/secrets/" + name
			b.SetParallelism(benchConns / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := gatewayGet(hc, url, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// gatewayGet reads one secret and checks that values came back; errors
// carry the status, never the body (it holds values).
func gatewayGet(hc *http.Client, url, token string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var m metaBody
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK || len(m.Data) == 0 {
		return fmt.Errorf("GET %s: status %d, no values", url, resp.StatusCode)
	}
	return nil
}
