package client

import (
	"context"
	"errors"
	"net/http"
	"regexp"

	"github.com/secretgate/secretgate/sdk"
)

// MigrationRequest starts a copy of whole projects from one backend to
// another, inside the gateway: values never reach the caller.
type MigrationRequest struct {
	Source     string   `json:"source"`
	Target     string   `json:"target"`
	Projects   []string `json:"projects"`
	Versions   string   `json:"versions,omitempty"`    // "latest" (default) or "all"
	OnConflict string   `json:"on_conflict,omitempty"` // "fail" (default), "skip" or "overwrite"
	DryRun     bool     `json:"dry_run,omitempty"`
	Switch     bool     `json:"switch,omitempty"`
	// DeleteSource deletes each secret from the source once the switch is
	// done and its target copy matches; it needs Switch.
	DeleteSource bool `json:"delete_source,omitempty"`
	// Workers bounds the secrets copied at once (default 8, at most 64).
	Workers int `json:"workers,omitempty"`
}

// Migration is a migration's progress report. Errors are keyed by secret
// name and never hold a value.
type Migration struct {
	ID           string            `json:"id"`
	State        string            `json:"state"` // running, succeeded, failed
	Source       string            `json:"source"`
	Target       string            `json:"target"`
	Projects     []string          `json:"projects"`
	Versions     string            `json:"versions"`
	OnConflict   string            `json:"on_conflict"`
	DryRun       bool              `json:"dry_run"`
	Switch       bool              `json:"switch"`
	DeleteSource bool              `json:"delete_source"`
	Workers      int               `json:"workers"`
	Switched     bool              `json:"switched"`
	Total        int               `json:"total"`
	Copied       int               `json:"copied"`
	Skipped      int               `json:"skipped"`
	Failed       int               `json:"failed"`
	Verified     int               `json:"verified"`
	Deleted      int               `json:"deleted"` // source secrets removed by DeleteSource
	Kept         int               `json:"kept"`    // left in the source: the target differs
	Resumed      int               `json:"resumed"` // gateway restarts survived
	Errors       map[string]string `json:"errors"`
	StartedBy    string            `json:"started_by"`
	RequestID    string            `json:"request_id"`
	StartedAt    string            `json:"started_at"`
	FinishedAt   string            `json:"finished_at,omitempty"`
}

// Done reports whether the migration has ended.
func (m Migration) Done() bool { return m.State != "" && m.State != "running" }

var migrationIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// StartMigration asks the gateway to migrate; it answers at once with the id.
func (c *Client) StartMigration(ctx context.Context, req MigrationRequest) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
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
	var out struct {
		Migrations []Migration `json:"migrations"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/migrations", nil, 0, nil, &out)
	return out.Migrations, err
}

// CopyOptions say where CopySecret puts the copy.
type CopyOptions struct {
	ToProject string `json:"to_project,omitempty"` // default: the source project
	As        string `json:"as,omitempty"`         // default: the source name
	Version   int64  `json:"version,omitempty"`    // source version; 0 = latest
	Overwrite bool   `json:"overwrite,omitempty"`  // replace an existing target (new version)
}

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
