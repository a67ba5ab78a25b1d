package client

// Tokens that rotate under a running workload: a Kubernetes projected
// service-account token (the kubelet swaps the file before it expires) or a
// CI job's renewed OIDC token. WithTokenFile reads the file again whenever
// it changed, so the next request carries the new token.

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// WithTokenFile authenticates with the token held in the file at path
// (surrounding whitespace ignored), read again before a request whenever
// the file changed (another file swapped in, or its size or modification
// time changed). New's token argument must then be empty.
func WithTokenFile(path string) Option { return func(o *options) { o.tokenFile = path } }

// tokenFile is the cached content of a token file.
type tokenFile struct {
	path string

	mu    sync.Mutex
	info  os.FileInfo
	token string
}

func newTokenFile(path string) (*tokenFile, error) {
	tf := &tokenFile{path: path}
	if _, err := tf.current(); err != nil {
		return nil, err
	}
	return tf, nil
}

// current returns the token, reading the file again if it changed. One
// stat per request: cheap next to the request itself.
func (tf *tokenFile) current() (string, error) {
	info, err := os.Stat(tf.path)
	if err != nil {
		return "", fmt.Errorf("client: token file: %w", err)
	}
	tf.mu.Lock()
	defer tf.mu.Unlock()
	if tf.info != nil && os.SameFile(tf.info, info) && tf.info.Size() == info.Size() && tf.info.ModTime().Equal(info.ModTime()) {
		return tf.token, nil
	}
	b, err := os.ReadFile(tf.path)
	if err != nil {
		return "", fmt.Errorf("client: token file: %w", err)
	}
	tok, err := checkToken(string(bytes.TrimSpace(b)))
	if err != nil {
		return "", fmt.Errorf("client: token file %s: %w", tf.path, err)
	}
	tf.info, tf.token = info, tok
	return tok, nil
}

// checkToken refuses a token that would break the header line, without
// repeating it.
func checkToken(tok string) (string, error) {
	if tok == "" {
		return "", fmt.Errorf("token is empty")
	}
	for _, r := range tok {
		if r <= ' ' || r == 0x7f {
			return "", fmt.Errorf("token contains whitespace or control characters")
		}
	}
	return tok, nil
}

// tokenNow is the token for the next request.
func (c *Client) tokenNow() (string, error) {
	if c.tokenFile != nil {
		return c.tokenFile.current()
	}
	return c.token, nil
}
