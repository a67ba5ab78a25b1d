package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// Resolve returns the value of every reference sg://PROJECT/SECRET/KEY
// (optionally ?version=N), keyed by the reference as given, through POST
// /v1/resolve: each needs secrets.read on its secret and is audited as a
// read. All or nothing: the first reference that is malformed, not found or
// not allowed fails the call, and the error names it (never a value).
//
// Malformed references fail before anything is sent (sdk.ErrInvalid).
// Repeated references are asked once. More than api.MaxResolveRefs distinct
// references take one request per 100.
func (c *Client) Resolve(ctx context.Context, refs []string) (map[string]string, error) {
	if len(refs) == 0 {
		return nil, sdk.Invalid("refs", "holds no reference")
	}
	seen := make(map[string]bool, len(refs))
	unique := make([]string, 0, len(refs))
	for _, r := range refs {
		if _, err := sdk.ParseReference(r); err != nil {
			return nil, err
		}
		if !seen[r] {
			seen[r] = true
			unique = append(unique, r)
		}
	}
	values := make(map[string]string, len(unique))
	for start := 0; start < len(unique); start += api.MaxResolveRefs {
		batch := unique[start:min(start+api.MaxResolveRefs, len(unique))]
		var out api.ResolveResponse
		if err := c.do(ctx, http.MethodPost, "/v1/resolve", nil, 0, api.ResolveRequest{Refs: batch}, &out); err != nil {
			return nil, err
		}
		for _, r := range batch {
			v, ok := out.Values[r]
			if !ok {
				// A gateway that answers 200 must answer every reference.
				return nil, fmt.Errorf("client: resolve: the answer lacks reference %q", r)
			}
			values[r] = v
		}
	}
	return values, nil
}
