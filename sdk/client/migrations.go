package client

import (
	"context"
	"errors"
	"net/http"
	"regexp"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

type (
	// MigrationRequest starts a copy of whole projects from one backend to
	// another, inside the gateway: values never reach the caller.
	MigrationRequest = api.MigrationRequest
	// Migration is a migration's progress report. Errors are keyed by
	// secret name and never hold a value; Done reports whether it ended.
	Migration = api.MigrationReport
)

var migrationIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// StartMigration asks the gateway to migrate; it answers at once with the id.
func (c *Client) StartMigration(ctx context.Context, req MigrationRequest) (string, error) {
	var out api.MigrationStarted
	if err := c.do(ctx, http.MethodPost, "/v1/migrations", nil, 0, req, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// GetMigration reads a migration's progress.
func (c *Client) GetMigration(ctx context.Context, id string) (Migration, error) {
	if !migrationIDRe.MatchString(id) {
		return Migration{}, sdk.Invalid("id", "is not a migration id")
	}
	var m Migration
	err := c.do(ctx, http.MethodGet, "/v1/migrations/"+id, nil, 0, nil, &m)
	return m, err
}

// ListMigrations lists the migrations the caller may see.
func (c *Client) ListMigrations(ctx context.Context) ([]Migration, error) {
	var out api.MigrationList
	err := c.do(ctx, http.MethodGet, "/v1/migrations", nil, 0, nil, &out)
	return out.Migrations, err
}

// CopyOptions say where CopySecret puts the copy: ToProject defaults to
// the source project, As to the source name, Version 0 is the latest, and
// Overwrite replaces an existing target (a new version of it).
type CopyOptions = api.CopyRequest

// CopySecret copies one secret (data and labels of one version) inside the
// gateway, across backends if need be; the answer is the copy's metadata,
// never a value. It needs secrets.read on the source secret or
// project.migrate on its project, and secrets.create (plus secrets.update
// with Overwrite) on the target or project.migrate there.
func (c *Client) CopySecret(ctx context.Context, project, name string, opts CopyOptions) (Metadata, error) {
	p, err := c.secretPath(project, name)
	if err != nil {
		return Metadata{}, err
	}
	if opts.ToProject != "" {
		if err := sdk.ValidateProject(opts.ToProject); err != nil {
			return Metadata{}, sdk.Invalid("to_project", "%s", reasonOf(err))
		}
	}
	if opts.As != "" {
		if err := sdk.ValidateName(opts.As); err != nil {
			return Metadata{}, sdk.Invalid("as", "%s", reasonOf(err))
		}
	}
	var m Metadata
	err = c.do(ctx, http.MethodPost, p+"/copy", nil, 0, opts, &m)
	return m, err
}

func reasonOf(err error) string {
	var fe *sdk.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}
