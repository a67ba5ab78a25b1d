// Package api holds the HTTP API's wire types and error codes, written once:
// the gateway answers with them and the Go client decodes them. Standard
// library only, no behaviour. The contract they encode is docs/api.md (routes,
// shapes, status codes) and docs/migrations.md (the migration report).
package api

import "time"

// Error codes of the error envelope; docs/api.md lists when each is answered.
const (
	CodeInvalidArgument    = "invalid_argument"    // 400
	CodeUnauthenticated    = "unauthenticated"     // 401
	CodePermissionDenied   = "permission_denied"   // 403
	CodeNotFound           = "not_found"           // 404
	CodeRequestTimeout     = "request_timeout"     // 408: the request did not arrive in full in time
	CodeAlreadyExists      = "already_exists"      // 409
	CodeVersionMismatch    = "version_mismatch"    // 412
	CodePayloadTooLarge    = "payload_too_large"   // 413
	CodeBackendThrottled   = "backend_throttled"   // 429: a quota or rate limit of the backend's service
	CodeInternal           = "internal"            // 500
	CodeBackendUnavailable = "backend_unavailable" // 503
	// CodeMigrationInProgress (409): a write to a project that a migration
	// is copying, or a second migration of it.
	CodeMigrationInProgress = "migration_in_progress"
)

// ErrorBody is the envelope of every answer that is not a success.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code and a message built from names and rules, never
// from a request body, so it can never echo a value.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Metadata is everything about a secret but its values. Times are UTC and
// left out when the backend keeps none.
type Metadata struct {
	Project   string            `json:"project"`
	Name      string            `json:"name"`
	Keys      []string          `json:"keys"` // sorted; [] rather than null
	Version   int64             `json:"version"`
	Labels    map[string]string `json:"labels"` // {} rather than null
	CreatedAt time.Time         `json:"created_at,omitzero"`
	UpdatedAt time.Time         `json:"updated_at,omitzero"`
}

// Secret is metadata plus the values of one version (GET of a secret).
type Secret struct {
	Metadata
	Data map[string]string `json:"data"`
}

// SecretList is one page of a listing. NextPageToken is opaque and empty on
// the last page.
type SecretList struct {
	Secrets       []Metadata `json:"secrets"`
	NextPageToken string     `json:"next_page_token"`
}

// Version describes one stored version.
type Version struct {
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Keys are the version's key names, sorted, with ?keys=true (for the
	// newest MaxVersionKeys versions only; absent for older ones).
	Keys []string `json:"keys,omitempty"`
}

// MaxVersionKeys bounds how many versions ?keys=true describes: each costs
// the gateway one read of that version.
const MaxVersionKeys = 20

// VersionList is the answer of GET .../versions, oldest first.
type VersionList struct {
	Versions []Version `json:"versions"`
}

// WriteRequest is the body of POST (Name required) and PUT (Name optional,
// and then equal to the path's). Labels: absent keeps them (PUT), {} clears.
type WriteRequest struct {
	Name   string            `json:"name,omitempty"`
	Data   map[string]string `json:"data"`
	Labels map[string]string `json:"labels,omitzero"`
}

// PatchRequest is the body of PATCH: keys to set, keys to remove, and
// labels to replace when present ({} clears them).
type PatchRequest struct {
	Set    map[string]string `json:"set,omitzero"`
	Unset  []string          `json:"unset,omitzero"`
	Labels map[string]string `json:"labels,omitzero"`
}

// RollbackRequest is the body of POST .../{name}/rollback: the version
// whose data becomes a new version.
type RollbackRequest struct {
	Version int64 `json:"version"`
}

// CopyRequest is the body of POST .../{name}/copy.
type CopyRequest struct {
	// ToProject defaults to the source project (then As must differ).
	ToProject string `json:"to_project,omitempty"`
	// As names the copy; it defaults to the source name.
	As string `json:"as,omitempty"`
	// Version picks a source version; 0 is the latest.
	Version int64 `json:"version,omitempty"`
	// Overwrite replaces an existing target secret (a new version of it)
	// instead of answering 409 already_exists.
	Overwrite bool `json:"overwrite,omitempty"`
}

// Project is one entry of GET /v1/projects: a project the caller has a
// binding on, with the actions granted on every secret of it.
type Project struct {
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// ProjectList is the answer of GET /v1/projects.
type ProjectList struct {
	Subject string `json:"subject"`
	// Issuer is the auth.jwt issuer when the caller signed in with a
	// workload identity token.
	Issuer string `json:"issuer,omitempty"`
	// ExpiresAt is when the caller's token stops working: a workload
	// identity token's exp, or a static token's expires_at. Absent: never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Projects  []Project  `json:"projects"`
}

// Migration states. A migration cut short by a shutdown or a crash stays
// "running" in the gateway's journal and is resumed when it starts again.
const (
	MigrationRunning   = "running"
	MigrationSucceeded = "succeeded"
	MigrationFailed    = "failed"
)

// MigrationRequest is the body of POST /v1/migrations: a copy of whole
// projects from one backend to another, inside the gateway.
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

// MigrationStarted is the answer of POST /v1/migrations.
type MigrationStarted struct {
	ID string `json:"id"`
}

// MigrationReport is a migration's request (with defaults applied) and its
// progress. It holds names and counts only, never a value; Errors are keyed
// by secret.
type MigrationReport struct {
	ID           string   `json:"id"`
	State        string   `json:"state"` // running, succeeded, failed
	Source       string   `json:"source"`
	Target       string   `json:"target"`
	Projects     []string `json:"projects"`
	Versions     string   `json:"versions"`
	OnConflict   string   `json:"on_conflict"`
	DryRun       bool     `json:"dry_run"`
	Switch       bool     `json:"switch"`
	DeleteSource bool     `json:"delete_source"`
	Workers      int      `json:"workers"`
	Switched     bool     `json:"switched"`
	Total        int      `json:"total"`
	Copied       int      `json:"copied"`
	Skipped      int      `json:"skipped"`
	Failed       int      `json:"failed"`
	Verified     int      `json:"verified"`
	// Deleted counts source secrets removed by delete_source; Kept counts
	// those left in the source because the target holds different content.
	Deleted int `json:"deleted"`
	Kept    int `json:"kept"`
	// Resumed counts the restarts of the gateway this migration survived.
	Resumed    int               `json:"resumed"`
	Errors     map[string]string `json:"errors"`
	StartedBy  string            `json:"started_by"`
	RequestID  string            `json:"request_id"`
	StartedAt  string            `json:"started_at"`
	FinishedAt string            `json:"finished_at,omitempty"`
}

// Done reports whether the migration has ended.
func (r MigrationReport) Done() bool { return r.State != "" && r.State != MigrationRunning }

// MigrationList is the answer of GET /v1/migrations.
type MigrationList struct {
	Migrations []MigrationReport `json:"migrations"`
}

// MaxResolveRefs bounds the references of one POST /v1/resolve.
const MaxResolveRefs = 100

// ResolveRequest is the body of POST /v1/resolve: 1 to MaxResolveRefs
// references sg://PROJECT/SECRET/KEY[?version=N].
type ResolveRequest struct {
	Refs []string `json:"refs"`
}

// ResolveResponse maps each reference, spelled as it was asked, to its value.
type ResolveResponse struct {
	Values map[string]string `json:"values"`
}

// Kinds of the events of GET /v1/projects/{project}/events, sent as the
// Server-Sent Events' `event:` field.
const (
	EventCreated = "secret.created"
	EventUpdated = "secret.updated"
	EventDeleted = "secret.deleted"
	// EventResync: the gateway no longer holds the events after the
	// client's Last-Event-ID (too old, or the gateway restarted), so the
	// client must read again what it cares about. Only Project and Index
	// are set.
	EventResync = "resync"
)

// Event is one change of a secret, as the `data:` of an event of
// GET /v1/projects/{project}/events. It never holds a value. Kind comes from
// the `event:` field, not from the JSON; Index is the per-project monotonic
// index, also sent as the event's `id:`.
type Event struct {
	Kind    string `json:"-"`
	Project string `json:"project"`
	Name    string `json:"name,omitempty"`
	Version int64  `json:"version,omitempty"`
	Index   int64  `json:"index"`
}
