package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk/api"
)

// What a workload that needs 20 values pays: one POST /v1/resolve of 20
// references against 20 GETs, over loopback HTTP with keep-alive, on the
// in-memory backend (so the figures are the gateway's own cost, not a
// backend's latency, which would favour resolve further).
func BenchmarkResolve20VsGet20(b *testing.B) {
	mem := newMemBackend()
	srv, err := New(context.Background(), &Config{Projects: []ProjectConfig{{Name: "payments", Backend: "mem"}}}, Options{
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorizer: fakeAuthz{tokens: map[string]string{"t": "admin"}, grants: map[string]fakeGrant{"admin/payments": {actions: []string{ActionRead, ActionCreate}}}},
		Auditor:    &memAuditor{},
		Backends:   &memBackends{m: map[string]*memBackend{"mem": mem}},
	})
	require.NoError(b, err)
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	hc := ts.Client()
	call := func(method, path string, body []byte) {
		req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		require.NoError(b, err)
		req.Header.Set("Authorization", "Bearer t")
		resp, err := hc.Do(req)
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Less(b, resp.StatusCode, 300, "%s %s", method, path)
	}
	var refs []string
	for i := range 20 {
		body, _ := json.Marshal(api.WriteRequest{Name: fmt.Sprintf("s%d", i), Data: map[string]string{"k": "value-of-twenty-bytes"}})
		call(http.MethodPost, "/v1/projects/payments/secrets", body)
		refs = append(refs, fmt.Sprintf("sg://payments/s%d/k", i))
	}
	resolveBody, _ := json.Marshal(api.ResolveRequest{Refs: refs})
	b.Run("resolve-20-refs", func(b *testing.B) {
		for b.Loop() {
			call(http.MethodPost, "/v1/resolve", resolveBody)
		}
	})
	b.Run("20-gets", func(b *testing.B) {
		for b.Loop() {
			for i := range 20 {
				call(http.MethodGet, fmt.Sprintf("/v1/projects/payments/secrets/s%d", i), nil)
			}
		}
	})
}
