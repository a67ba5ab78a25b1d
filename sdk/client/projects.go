package client

import (
	"context"
	"net/http"

	"github.com/secretgate/secretgate/sdk/api"
)

// Project is a project the caller has a binding on, with the actions it is
// granted on every secret of it.
type Project = api.Project

// ListProjects lists the projects the caller has a binding on.
func (c *Client) ListProjects(ctx context.Context) ([]Project, error) {
	var out api.ProjectList
	err := c.do(ctx, http.MethodGet, "/v1/projects", nil, 0, nil, &out)
	return out.Projects, err
}
