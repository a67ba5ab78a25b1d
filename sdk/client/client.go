// Package client is the Go client of the secretgate HTTP API.
//
// It mirrors the seed's SDK (list, get, create, update, delete) and adds what
// the API offers beyond it: versions, metadata-only reads, PATCH of single
// keys and check-and-set through If-Match:
//
//	c, err := client.New("http://127.0.0.1:8270", os.Getenv("SECRETGATE_TOKEN"))
//	s, err := c.Get(ctx, "payments", "payment-service")
//	apiKey := s.Data["api_key"]
//
// Errors answered by the gateway are *APIError values; errors.Is maps them to
// sdk.ErrNotFound, sdk.ErrAlreadyExists, sdk.ErrVersionMismatch,
// sdk.ErrInvalid, sdk.ErrUnavailable and this package's ErrUnauthenticated,
// ErrPermissionDenied, ErrPayloadTooLarge and ErrInternal.
//
// A write is sent at most once: the client never repeats one by itself, since
// a write answered 503 or by a dropped connection may still have been stored.
// Reads may be sent again on a new connection when a kept-alive one turns out
// to be closed. To retry a write safely, give it If-Match (the version it was
// meant to replace): if an earlier attempt was applied after all, the retry
// fails with sdk.ErrVersionMismatch instead of writing twice, and reading
// the secret back tells which happened.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// The API's shapes are sdk/api's, written once for the gateway and this
// client; these names keep the client's own vocabulary.
type (
	// Metadata is everything about a secret but its values.
	Metadata = api.Metadata
	// Secret is metadata plus the values of one version.
	Secret = api.Secret
	// Page is one page of a listing.
	Page = api.SecretList
	// VersionInfo describes one stored version.
	VersionInfo = api.Version
)

// ListOptions narrows and pages a listing. Zero values mean "all names",
// "the server's default page size" and "the first page".
type ListOptions struct {
	Prefix    string
	PageSize  int
	PageToken string
}

// Client talks to one gateway with one token. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	tokenFile *tokenFile // WithTokenFile: read again when it changes
	hc        *http.Client
	ua        string
}

type options struct {
	hc        *http.Client
	timeout   time.Duration
	tlsConfig *tls.Config
	caPEM     []byte
	caFile    string
	ua        string
	tokenFile string
}

// Option configures a Client.
type Option func(*options)

// WithHTTPClient uses hc as is (its timeout and transport); the TLS options
// are then ignored. Writes still reach net/http's transports at most once;
// a RoundTripper of another kind must not retry them by itself either.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithTimeout bounds every request, including reading the body (default 30s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithTLSConfig sets the TLS configuration for https addresses.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithCACert trusts the PEM certificates in pem (in place of the system
// roots) for https addresses.
func WithCACert(pem []byte) Option { return func(o *options) { o.caPEM = pem } }

// WithCAFile is WithCACert reading the PEM file at path.
func WithCAFile(path string) Option { return func(o *options) { o.caFile = path } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(o *options) { o.ua = ua } }

// DefaultTimeout bounds each request unless WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// maxResponseBytes bounds what the client reads of one response: a page of
// 1000 metadata entries with 64 labels each stays well below it.
const maxResponseBytes = 64 << 20

// New returns a client of the gateway at addr ("http://host:port" or
// "https://..."; a bare "host:port" means http) authenticating with token.
func New(addr, token string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout, ua: "secretgate-go-client"}
	for _, opt := range opts {
		opt(&o)
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("client: address: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: address: scheme %q is neither http nor https", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: address %q has no host", addr)
	}
	var tf *tokenFile
	switch {
	case o.tokenFile != "" && token != "":
		return nil, fmt.Errorf("client: a token and a token file were both given; use one")
	case o.tokenFile != "":
		if tf, err = newTokenFile(o.tokenFile); err != nil {
			return nil, err
		}
	default:
		// A token that would break the header line is refused before it
		// could ever be sent; the message does not repeat it.
		if _, err := checkToken(token); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	hc := o.hc
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		tlsConf := o.tlsConfig
		if tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		} else {
			tlsConf = tlsConf.Clone()
		}
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				return nil, fmt.Errorf("client: CA file: %w", err)
			}
			o.caPEM = append(o.caPEM, pem...)
		}
		if len(o.caPEM) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(o.caPEM) {
				return nil, fmt.Errorf("client: CA certificate: no PEM certificate found")
			}
			tlsConf.RootCAs = pool
		}
		tr.TLSClientConfig = tlsConf
		hc = &http.Client{Transport: tr, Timeout: o.timeout}
	}
	return &Client{base: u, token: token, tokenFile: tf, hc: hc, ua: o.ua}, nil
}

type requestIDKey struct{}

// WithRequestID makes requests made with ctx carry id as X-Request-Id, to
// tie them to a caller's own logs: the gateway keeps it as the audit
// records' client_request_id (their request_id, which an *Error carries, is
// the gateway's own). Otherwise each request gets a random id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func (c *Client) secretsPath(project string) (string, error) {
	if err := sdk.ValidateProject(project); err != nil {
		return "", err
	}
	return "/v1/projects/" + project + "/secrets", nil
}

func (c *Client) secretPath(project, name string) (string, error) {
	p, err := c.secretsPath(project)
	if err != nil {
		return "", err
	}
	if err := sdk.ValidateName(name); err != nil {
		return "", err
	}
	return p + "/" + name, nil
}

// do sends one request and decodes a 2xx JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, ifMatch int64, body, out any) error {
	// Projects and names were validated against the model's patterns,
	// which leave nothing to escape in a path.
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if method != http.MethodGet {
		sendAtMostOnce(req)
	}
	rid, _ := ctx.Value(requestIDKey{}).(string)
	if rid == "" {
		rid = newRequestID()
	}
	tok, err := c.tokenNow()
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", rid)
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch > 0 {
		req.Header.Set("If-Match", strconv.Quote(strconv.FormatInt(ifMatch, 10)))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, &transportError{err})
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("client: %s %s: read response: %w", method, path, &transportError{err})
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("client: %s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	if echoed := resp.Header.Get("X-Request-Id"); echoed != "" {
		rid = echoed
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, data, rid)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s %s: decode response (status %d): %w", method, path, resp.StatusCode, err)
	}
	return nil
}

// sendAtMostOnce keeps net/http from sending a write a second time by itself.
//
// A write that reached the gateway may have been applied although no answer
// came back (the gateway stored it and then the connection, or the plugin
// answering it, died), so sending it again could apply it twice; even with
// If-Match, where a duplicate is refused, the 412 would hide that the first
// attempt was applied. net/http replays a request on a new connection only
// when it can rewind the body: req.GetBody set, or no body at all. Its HTTP/1
// transport replays a POST, PUT, PATCH or DELETE only when not a byte of it
// was written, but its HTTP/2 transport (used with https) also replays after
// a stream reset with PROTOCOL_ERROR, which proves nothing about whether the
// server processed the request. So a write carries a body net/http cannot
// rewind: GetBody is cleared, and a DELETE gets an empty body, which goes out
// as no body at all over HTTP/1.1 and as an empty DATA frame over HTTP/2.
// What net/http still retries is a request that never reached a connection
// (an HTTP/2 connection found unusable before the stream was opened).
func sendAtMostOnce(req *http.Request) {
	req.GetBody = nil
	if req.Body == nil || req.Body == http.NoBody {
		req.Body = io.NopCloser(bytes.NewReader(nil))
		req.ContentLength = 0
	}
}

func decodeError(resp *http.Response, body []byte, rid string) error {
	e := &APIError{Status: resp.StatusCode, RequestID: rid}
	var env api.ErrorBody
	if json.Unmarshal(body, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message = env.Error.Code, env.Error.Message
	} else {
		// Not our envelope: the body is not trusted to be free of
		// anything, so only the status is reported.
		e.Code = codeForStatus[resp.StatusCode]
		if e.Code == "" {
			e.Code = "http_" + strconv.Itoa(resp.StatusCode)
		}
		e.Message = http.StatusText(resp.StatusCode)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}
