package gateway

import (
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// The JSON shapes of the API are sdk/api's (docs/api.md): written once, for
// the gateway and the Go client alike.

// toMetadata is a backend's metadata as the API answers it: keys and labels
// never null, times in UTC and left out when the backend keeps none.
func toMetadata(m sdk.Meta) api.Metadata {
	keys := m.Keys
	if keys == nil {
		keys = []string{}
	}
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return api.Metadata{
		Project: m.Project, Name: m.Name, Keys: keys, Version: m.Version, Labels: labels,
		CreatedAt: utc(m.CreatedAt), UpdatedAt: utc(m.UpdatedAt),
	}
}

// utc keeps the zero time zero (so that omitzero leaves it out).
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// formatTime is a time of a migration report: RFC 3339 in UTC, "" for none.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
