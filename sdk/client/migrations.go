package client

import (
	"context"
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
}

// Migration is a migration's progress report. Errors are keyed by secret
// name and never hold a value.
type Migration struct {
	ID         string            `json:"id"`
	State      string            `json:"state"` // running, succeeded, failed
	Source     string            `json:"source"`
	Target     string            `json:"target"`
	Projects   []string          `json:"projects"`
	Versions   string            `json:"versions"`
	OnConflict string            `json:"on_conflict"`
	DryRun     bool              `json:"dry_run"`
	Switch     bool              `json:"switch"`
	Switched   bool              `json:"switched"`
	Total      int               `json:"total"`
	Copied     int               `json:"copied"`
	Skipped    int               `json:"skipped"`
	Failed     int               `json:"failed"`
	Verified   int               `json:"verified"`
	Errors     map[string]string `json:"errors"`
	StartedAt  string            `json:"started_at"`
	FinishedAt string            `json:"finished_at,omitempty"`
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
