package testenv

// Talking to a running server: HTTP requests and the CLI.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// HTTPSClient is an HTTP client that trusts only the PEM certificates of
// caFile (TLS 1.2 or later).
func HTTPSClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem), "no PEM certificate in %s", caFile)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Response is an HTTP answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// ErrorCode returns error.code of an error envelope ("" if none).
func (r *Response) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

var client = &http.Client{Timeout: 30 * time.Second}

// Do sends a request; body is JSON-encoded unless it is a string or []byte.
// headers are name, value pairs.
func (s *Server) Do(t testing.TB, method, path, token string, body any, headers ...string) *Response {
	t.Helper()
	resp, err := s.Try(method, path, token, body, headers...)
	require.NoError(t, err)
	return resp
}

// Try is Do that returns errors instead of failing (for goroutines).
func (s *Server) Try(method, path, token string, body any, headers ...string) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	hc := s.HTTPClient
	if hc == nil {
		hc = client
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// CLIResult is the outcome of a CLI run.
type CLIResult struct {
	Stdout, Stderr string
	Code           int
}

// CLI runs the secretgate binary as a client of this server (with
// SECRETGATE_ADDR and SECRETGATE_TOKEN set, and SECRETGATE_CACERT when
// CAFile is), feeding stdin.
func (s *Server) CLI(t testing.TB, token, stdin string, args ...string) CLIResult {
	t.Helper()
	env := append(cleanEnv(), "SECRETGATE_ADDR="+s.URL, "SECRETGATE_TOKEN="+token)
	if s.CAFile != "" {
		env = append(env, "SECRETGATE_CACERT="+s.CAFile)
	}
	return Run(t, env, s.Dir, stdin, args...)
}

// CLIEnv runs the secretgate binary as a client of this server with
// SECRETGATE_ADDR (and SECRETGATE_CACERT) set and env added: for a test
// that authenticates otherwise than with SECRETGATE_TOKEN.
func (s *Server) CLIEnv(t testing.TB, env []string, stdin string, args ...string) CLIResult {
	t.Helper()
	full := append(cleanEnv(), "SECRETGATE_ADDR="+s.URL)
	if s.CAFile != "" {
		full = append(full, "SECRETGATE_CACERT="+s.CAFile)
	}
	return Run(t, append(full, env...), s.Dir, stdin, args...)
}

// Run runs the secretgate binary with env (complete) in dir and returns its
// output and exit code; it fails the test if it runs over two minutes.
func Run(t testing.TB, env []string, dir, stdin string, args ...string) CLIResult {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("secretgate %v did not finish", args)
	}
	return CLIResult{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
}
