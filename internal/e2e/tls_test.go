package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/sdk/client"
)

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issueServer signs a server certificate for 127.0.0.1 (IP SAN only) and
// returns its certificate and PKCS#8 key as PEM.
func (ca *testCA) issueServer(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(t),
		Subject:      pkix.Name{CommonName: "secretgate e2e server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

func randomSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	require.NoError(t, err)
	return n
}

func writePrivate(t *testing.T, path string, data []byte) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// clientEnv is the environment of a CLI run against addr: the test's
// environment without SECRETGATE_* variables, plus extra.
func clientEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECRETGATE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestTLSListener(t *testing.T) {
	pki := t.TempDir()
	ca := newTestCA(t, "secretgate e2e CA")
	certPEM, keyPEM := ca.issueServer(t)
	caFile := writePrivate(t, filepath.Join(pki, "ca.pem"), ca.pem)
	certFile := writePrivate(t, filepath.Join(pki, "server.pem"), certPEM)
	keyFile := writePrivate(t, filepath.Join(pki, "server-key.pem"), keyPEM)
	otherCA := newTestCA(t, "some other CA")
	_, otherKeyPEM := otherCA.issueServer(t)
	otherKeyFile := writePrivate(t, filepath.Join(pki, "other-key.pem"), otherKeyPEM)

	srv := testenv.Start(t, testenv.Options{TLS: &testenv.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: caFile}})
	admin := srv.Token("admin")
	require.True(t, strings.HasPrefix(srv.URL, "https://127.0.0.1:"), "listening line: %s", srv.URL)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	hostPort := u.Host
	canary := randomCanary(t)
	ctx := context.Background()

	// The test harness itself talks HTTPS with the CA.
	r := srv.Do(t, "GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)

	t.Run("sdk client round trip", func(t *testing.T) {
		c, err := client.New(srv.URL, admin, client.WithCACert(ca.pem))
		require.NoError(t, err)
		_, err = c.Create(ctx, "default", "database-config", map[string]string{"user": "app", "password": canary}, nil)
		require.NoError(t, err)
		s, err := c.Get(ctx, "default", "database-config")
		require.NoError(t, err)
		require.Equal(t, map[string]string{"user": "app", "password": canary}, s.Data)
	})

	t.Run("negotiated TLS 1.2 or later with the configured certificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(ca.pem))
		conn, err := tls.Dial("tcp", hostPort, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10})
		require.NoError(t, err)
		defer conn.Close()
		st := conn.ConnectionState()
		require.GreaterOrEqual(t, st.Version, uint16(tls.VersionTLS12))
		require.NotEmpty(t, st.PeerCertificates)
		require.Equal(t, "secretgate e2e server", st.PeerCertificates[0].Subject.CommonName)

		// TLS 1.2 exactly is accepted too (MinVersion is 1.2, not 1.3).
		conn12, err := tls.Dial("tcp", hostPort, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
		require.NoError(t, err)
		require.Equal(t, uint16(tls.VersionTLS12), conn12.ConnectionState().Version)
		_ = conn12.Close()
	})

	t.Run("cli with SECRETGATE_CACERT", func(t *testing.T) {
		res := srv.CLI(t, admin, "", "secret", "get", "database-config", "--key", "password")
		require.Equal(t, 0, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
		require.Equal(t, canary, strings.TrimRight(res.Stdout, "\n"))

		// The same, spelled out: no help from testenv's CLI.
		res = testenv.Run(t, clientEnv("SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+admin, "SECRETGATE_CACERT="+caFile),
			t.TempDir(), "", "secret", "get", "database-config", "--key", "user")
		require.Equal(t, 0, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
		require.Equal(t, "app", strings.TrimRight(res.Stdout, "\n"))
	})

	t.Run("cli without SECRETGATE_CACERT is unreachable", func(t *testing.T) {
		res := testenv.Run(t, clientEnv("SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+admin),
			t.TempDir(), "", "secret", "get", "database-config", "--key", "password")
		require.Equal(t, 7, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
		require.Empty(t, res.Stdout)
		require.Contains(t, res.Stderr, "cannot reach the gateway")
		require.Contains(t, res.Stderr, "certificate")
		require.NotContains(t, res.Stderr, admin)
		require.NotContains(t, res.Stdout+res.Stderr, canary)
	})

	t.Run("cli with the wrong CA is unreachable", func(t *testing.T) {
		wrong := writePrivate(t, filepath.Join(t.TempDir(), "other-ca.pem"), otherCA.pem)
		res := testenv.Run(t, clientEnv("SECRETGATE_ADDR="+srv.URL, "SECRETGATE_TOKEN="+admin, "SECRETGATE_CACERT="+wrong),
			t.TempDir(), "", "secret", "get", "database-config", "--key", "password")
		require.Equal(t, 7, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
		require.Contains(t, res.Stderr, "certificate")
		require.NotContains(t, res.Stdout+res.Stderr, canary)
	})

	t.Run("plain http to the TLS port gets no secret", func(t *testing.T) {
		plain := &http.Client{Timeout: 10 * time.Second}
		req, err := http.NewRequest("GET", "http://"+hostPort+"/v1/projects/default/secrets/database-config", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := plain.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body)
		require.Contains(t, string(body), "HTTP request to an HTTPS server")
		require.NotContains(t, string(body), canary)
		require.NotContains(t, string(body), "password")

		// The Go client pointed at http:// fails the same way, as a 400.
		c, err := client.New("http://"+hostPort, admin)
		require.NoError(t, err)
		_, err = c.Get(ctx, "default", "database-config")
		require.Error(t, err)
		require.NotContains(t, err.Error(), canary)
	})

	t.Run("TLS 1.1 client fails the handshake", func(t *testing.T) {
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(ca.pem))
		// MinVersion is explicit: Go clients refuse < 1.2 by default, and
		// the refusal must come from the server.
		old := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
		conn, err := tls.Dial("tcp", hostPort, old)
		if err == nil {
			v := conn.ConnectionState().Version
			_ = conn.Close()
			t.Fatalf("TLS handshake at version %#x succeeded", v)
		}
		require.Contains(t, err.Error(), "protocol version")

		// Through the SDK client too: no answer, hence ErrUnreachable.
		c, err := client.New(srv.URL, admin, client.WithCACert(ca.pem), client.WithTLSConfig(old))
		require.NoError(t, err)
		_, err = c.Get(ctx, "default", "database-config")
		require.Error(t, err)
		require.True(t, errors.Is(err, client.ErrUnreachable), "%v", err)
		require.NotContains(t, err.Error(), canary)
	})

	t.Run("unknown CA fails", func(t *testing.T) {
		c, err := client.New(srv.URL, admin, client.WithCACert(otherCA.pem))
		require.NoError(t, err)
		_, err = c.Get(ctx, "default", "database-config")
		require.Error(t, err)
		require.True(t, errors.Is(err, client.ErrUnreachable), "%v", err)
		var uae x509.UnknownAuthorityError
		require.True(t, errors.As(err, &uae), "want an unknown-authority error, got %v", err)
		require.NotContains(t, err.Error(), canary)

		// No CA at all: the system roots do not know the throw-away CA.
		c, err = client.New(srv.URL, admin)
		require.NoError(t, err)
		_, err = c.Get(ctx, "default", "database-config")
		require.True(t, errors.Is(err, client.ErrUnreachable), "%v", err)
		require.Contains(t, err.Error(), "certificate")
	})

	t.Run("nothing leaks the canary", func(t *testing.T) {
		// Every request above is in the audit log, none with a value.
		require.Contains(t, srv.Audit(), `"secret":"database-config"`)
		require.NotContains(t, srv.Stdout(), canary)
		require.NotContains(t, srv.Stderr(), canary)
		require.NotContains(t, srv.Audit(), canary)
		require.NotContains(t, srv.Stderr(), admin, "the bearer token sent over plain http must not be logged")
	})

	// A TLS file that cannot be loaded is a configuration error: the server
	// must refuse to start (never announce that it listens), exit non-zero
	// and name the field. Not testenv.RunServer: its first check is fatal,
	// and this test reports every deviation at once.
	for _, tc := range []struct{ name, field, cert, key string }{
		{"missing key file", "tls.key_file", certFile, filepath.Join(pki, "no-such-key.pem")},
		{"missing cert file", "tls.cert_file", filepath.Join(pki, "no-such-cert.pem"), keyFile},
		{"cert file holding a key", "tls.cert_file", keyFile, keyFile},
		{"key of another certificate", "tls.key_file", certFile, otherKeyFile},
	} {
		t.Run(tc.name+" stops startup", func(t *testing.T) {
			dir := t.TempDir()
			cfg := "tls:\n  cert_file: " + tc.cert + "\n  key_file: " + tc.key + "\n" + baseConfig("./master.key")
			path := writePrivate(t, filepath.Join(dir, "secretgate.yaml"), []byte(cfg))
			res := testenv.Run(t, clientEnv(), dir, "", "server", "--config", path, "--listen", "127.0.0.1:0")
			assert.NotEqual(t, 0, res.Code, "stdout: %s\nstderr: %s", res.Stdout, res.Stderr)
			assert.NotContains(t, res.Stdout, "secretgate listening on", "the server announced it listens on a config it cannot serve")
			assert.Contains(t, res.Stderr, tc.field, "the error should name the field")
		})
	}
}
