package gateway

import (
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// The JSON shapes of the secret routes (docs/api.md).

// metaJSON is the metadata of a secret (docs/api.md).
type metaJSON struct {
	Project string            `json:"project"`
	Name    string            `json:"name"`
	Keys    []string          `json:"keys"`
	Version int64             `json:"version"`
	Labels  map[string]string `json:"labels"`
	// Times are RFC 3339 in UTC, left out when the backend keeps none
	// (so that clients decoding into a time type never meet "").
	CreatedAt string `json:"created_at,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

type secretJSON struct {
	metaJSON
	Data map[string]string `json:"data"`
}

type listJSON struct {
	Secrets       []metaJSON `json:"secrets"`
	NextPageToken string     `json:"next_page_token"`
}

type versionJSON struct {
	Version   int64  `json:"version"`
	CreatedAt string `json:"created_at,omitempty"`
}

type versionsJSON struct {
	Versions []versionJSON `json:"versions"`
}

// writeBody is the body of POST (name required) and PUT (name optional).
type writeBody struct {
	Name   string            `json:"name"`
	Data   map[string]string `json:"data"`
	Labels map[string]string `json:"labels"`
}

type patchBody struct {
	Set   map[string]string `json:"set"`
	Unset []string          `json:"unset"`
	// Labels, when present, replaces the secret's labels ({} clears
	// them); absent keeps them.
	Labels map[string]string `json:"labels"`
}

func toMetaJSON(m sdk.Meta) metaJSON {
	keys := m.Keys
	if keys == nil {
		keys = []string{}
	}
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return metaJSON{
		Project: m.Project, Name: m.Name, Keys: keys, Version: m.Version, Labels: labels,
		CreatedAt: formatTime(m.CreatedAt), UpdatedAt: formatTime(m.UpdatedAt),
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
