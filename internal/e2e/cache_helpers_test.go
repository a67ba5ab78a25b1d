package e2e

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/internal/mototest"
	"github.com/secretgate/secretgate/internal/testenv"
)

// startWithCache starts the real binary on opts, with the `cache:` blocks
// of caches (backend name -> block in YAML flow style, e.g.
// "{ttl: 1s, stale_if_error: 1h}") added to their backends. It returns the
// server and each subject's token.
func startWithCache(t testing.TB, opts testenv.Options, caches map[string]string) (*testenv.Server, map[string]string) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	path, tokens := testenv.WriteConfig(t, opts)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	backends, _ := cfg["backends"].([]any)
	for _, b := range backends {
		bm := b.(map[string]any)
		block, ok := caches[bm["name"].(string)]
		if !ok {
			continue
		}
		var c map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(block), &c))
		bm["cache"] = c
	}
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, out, 0o600))
	srv := testenv.StartConfig(t, path, opts.Env, opts.Args...)
	srv.AuditPath = filepath.Join(opts.Dir, "audit.log")
	return srv, tokens
}

// switchProxy forwards HTTP to a backend service until it is switched off;
// then every connection is cut as it sends a request, as if the service had
// stopped (the AWS SDK sees the same errors as for a dead moto).
type switchProxy struct {
	URL string
	off atomic.Bool
}

func startSwitchProxy(t testing.TB, upstream string) *switchProxy {
	t.Helper()
	target, err := url.Parse(upstream)
	require.NoError(t, err)
	p := &switchProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.off.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			http.Error(w, "switched off", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.URL = "http://" + l.Addr().String()
	return p
}

// warmMoto makes moto load its Secrets Manager service: its first call
// takes seconds on a busy machine (Python imports), longer than a
// gateway's backend timeout.
func warmMoto(t testing.TB, endpoint string) {
	t.Helper()
	c := secretsmanager.New(secretsmanager.Options{
		Region:       mototest.Region,
		BaseEndpoint: awsv2.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
		return err == nil
	}, 90*time.Second, 100*time.Millisecond, "moto's Secrets Manager does not answer")
}
