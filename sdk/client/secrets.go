package client

// The secret operations on top of Client.do: list, read, versions, write,
// patch, delete and rollback.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// List returns one page of the metadata of the secrets in project that the
// token's bindings cover.
func (c *Client) List(ctx context.Context, project string, opts ListOptions) (Page, error) {
	p, err := c.secretsPath(project)
	if err != nil {
		return Page{}, err
	}
	q := url.Values{}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.PageSize < 0 {
		return Page{}, sdk.Invalid("page_size", "must not be negative")
	}
	if opts.PageSize > 0 {
		q.Set("page_size", strconv.Itoa(opts.PageSize))
	}
	if opts.PageToken != "" {
		q.Set("page_token", opts.PageToken)
	}
	var page Page
	if err := c.do(ctx, http.MethodGet, p, q, 0, nil, &page); err != nil {
		return Page{}, err
	}
	if page.Secrets == nil {
		page.Secrets = []Metadata{}
	}
	return page, nil
}

// ListAll iterates over every page from opts.PageToken on. It stops after
// yielding the first error.
func (c *Client) ListAll(ctx context.Context, project string, opts ListOptions) iter.Seq2[Metadata, error] {
	return func(yield func(Metadata, error) bool) {
		for {
			page, err := c.List(ctx, project, opts)
			if err != nil {
				yield(Metadata{}, err)
				return
			}
			for _, m := range page.Secrets {
				if !yield(m, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			if page.NextPageToken == opts.PageToken {
				yield(Metadata{}, fmt.Errorf("client: list: server repeated page token"))
				return
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

// Collect gathers every secret's metadata of project (all pages).
func (c *Client) Collect(ctx context.Context, project string, opts ListOptions) ([]Metadata, error) {
	out := []Metadata{}
	for m, err := range c.ListAll(ctx, project, opts) {
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Get reads the latest version's metadata and values (secrets.read).
func (c *Client) Get(ctx context.Context, project, name string) (Secret, error) {
	return c.GetVersion(ctx, project, name, 0)
}

// GetVersion reads one version (0 = latest) with its values.
func (c *Client) GetVersion(ctx context.Context, project, name string, version int64) (Secret, error) {
	p, err := c.secretPath(project, name)
	if err != nil {
		return Secret{}, err
	}
	if version < 0 {
		return Secret{}, sdk.Invalid("version", "must be a positive integer, or 0 for the latest")
	}
	q := url.Values{}
	if version > 0 {
		q.Set("version", strconv.FormatInt(version, 10))
	}
	var s Secret
	if err := c.do(ctx, http.MethodGet, p, q, 0, nil, &s); err != nil {
		return Secret{}, err
	}
	return s, nil
}

// Describe reads metadata only (secrets.list suffices).
func (c *Client) Describe(ctx context.Context, project, name string) (Metadata, error) {
	p, err := c.secretPath(project, name)
	if err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if err := c.do(ctx, http.MethodGet, p+"/metadata", nil, 0, nil, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// Versions lists the stored versions of a secret, oldest first.
func (c *Client) Versions(ctx context.Context, project, name string) ([]VersionInfo, error) {
	return c.versions(ctx, project, name, nil)
}

// VersionsWithKeys is Versions with the key names of the newest
// api.MaxVersionKeys versions (older ones have none): what each rotation
// added or removed. The gateway reads those versions itself; no value is
// answered, and secrets.list is enough, as for Versions.
func (c *Client) VersionsWithKeys(ctx context.Context, project, name string) ([]VersionInfo, error) {
	return c.versions(ctx, project, name, url.Values{"keys": {"true"}})
}

func (c *Client) versions(ctx context.Context, project, name string, query url.Values) ([]VersionInfo, error) {
	p, err := c.secretPath(project, name)
	if err != nil {
		return nil, err
	}
	var out struct {
		Versions []VersionInfo `json:"versions"`
	}
	if err := c.do(ctx, http.MethodGet, p+"/versions", query, 0, nil, &out); err != nil {
		return nil, err
	}
	if out.Versions == nil {
		out.Versions = []VersionInfo{}
	}
	return out.Versions, nil
}

// Create creates a secret at version 1; sdk.ErrAlreadyExists if it exists.
// labels may be nil. The answer is metadata, never values.
func (c *Client) Create(ctx context.Context, project, name string, data, labels map[string]string) (Metadata, error) {
	p, err := c.secretsPath(project)
	if err != nil {
		return Metadata{}, err
	}
	if err := sdk.ValidateName(name); err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if err := c.do(ctx, http.MethodPost, p, nil, 0, api.WriteRequest{Name: name, Data: data, Labels: labels}, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// Update replaces all key/value pairs of an existing secret with data (a new
// version). labels nil keeps the labels; a non-nil map replaces them (the
// server decides whether an empty map clears). ifMatch > 0 is check-and-set:
// sdk.ErrVersionMismatch unless the latest version is ifMatch.
func (c *Client) Update(ctx context.Context, project, name string, data, labels map[string]string, ifMatch int64) (Metadata, error) {
	p, err := c.secretPath(project, name)
	if err != nil {
		return Metadata{}, err
	}
	body := map[string]any{"data": data}
	if labels != nil {
		body["labels"] = labels
	}
	var m Metadata
	if err := c.do(ctx, http.MethodPut, p, nil, ifMatch, body, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// Patch sets the keys of set and removes the keys of unset, leaving the
// others as they are (a new version). It needs no read permission: it is
// how someone rotates one key without knowing the others. ifMatch as Update.
func (c *Client) Patch(ctx context.Context, project, name string, set map[string]string, unset []string, ifMatch int64) (Metadata, error) {
	if len(set) == 0 && len(unset) == 0 {
		return Metadata{}, sdk.Invalid("set", "a patch must set or unset at least one key")
	}
	if set == nil {
		set = map[string]string{}
	}
	if unset == nil {
		unset = []string{}
	}
	return c.patch(ctx, project, name, api.PatchRequest{Set: set, Unset: unset}, ifMatch)
}

// PatchWithLabels is Patch that also replaces the labels when labels is not
// nil (an empty map clears them).
func (c *Client) PatchWithLabels(ctx context.Context, project, name string, set map[string]string, unset []string, labels map[string]string, ifMatch int64) (Metadata, error) {
	if labels == nil {
		return c.Patch(ctx, project, name, set, unset, ifMatch)
	}
	if err := sdk.ValidateLabels(labels); err != nil {
		return Metadata{}, err
	}
	return c.patch(ctx, project, name, api.PatchRequest{Set: set, Unset: unset, Labels: labels}, ifMatch)
}

// SetLabels replaces a secret's labels (an empty map clears them) and keeps
// its values: a new version, written like a patch with check-and-set.
func (c *Client) SetLabels(ctx context.Context, project, name string, labels map[string]string, ifMatch int64) (Metadata, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	if err := sdk.ValidateLabels(labels); err != nil {
		return Metadata{}, err
	}
	return c.patch(ctx, project, name, api.PatchRequest{Labels: labels}, ifMatch)
}

func (c *Client) patch(ctx context.Context, project, name string, body api.PatchRequest, ifMatch int64) (Metadata, error) {
	p, err := c.secretPath(project, name)
	if err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if err := c.do(ctx, http.MethodPatch, p, nil, ifMatch, body, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// Delete removes a secret with all its versions. ifMatch as Update.
func (c *Client) Delete(ctx context.Context, project, name string, ifMatch int64) error {
	p, err := c.secretPath(project, name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, ifMatch, nil, nil)
}

// IsNotFound is errors.Is(err, sdk.ErrNotFound), for brevity at call sites.
func IsNotFound(err error) bool { return errors.Is(err, sdk.ErrNotFound) }

// Rollback writes the data of version as a new version of the secret (its
// labels stay as they are) and returns the new version's metadata. It needs
// secrets.update, not secrets.read: the values never leave the gateway.
// ifMatch as Update.
func (c *Client) Rollback(ctx context.Context, project, name string, version, ifMatch int64) (Metadata, error) {
	if version < 1 {
		return Metadata{}, sdk.Invalid("version", "must be the number of a stored version (1 or more)")
	}
	p, err := c.secretPath(project, name)
	if err != nil {
		return Metadata{}, err
	}
	var m Metadata
	if err := c.do(ctx, http.MethodPost, p+"/rollback", nil, ifMatch, api.RollbackRequest{Version: version}, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}
