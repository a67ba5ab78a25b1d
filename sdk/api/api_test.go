package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The wire shapes' optional members: what is left out, and what is kept
// because it means something (labels {} clears them).
func TestWireShapes(t *testing.T) {
	when := time.Date(2026, 12, 1, 20, 56, 21, 123456789, time.UTC)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"metadata without times", Metadata{Project: "p", Name: "n", Keys: []string{}, Version: 1, Labels: map[string]string{}},
			`{"project":"p","name":"n","keys":[],"version":1,"labels":{}}`},
		{"metadata with times", Metadata{Project: "p", Name: "n", Keys: []string{"k"}, Version: 2, Labels: map[string]string{}, CreatedAt: when, UpdatedAt: when},
			`{"project":"p","name":"n","keys":["k"],"version":2,"labels":{},"created_at":"2026-12-01T20:56:21.123456789Z","updated_at":"2026-12-01T20:56:21.123456789Z"}`},
		{"write keeps labels", WriteRequest{Data: map[string]string{"k": "v"}}, `{"data":{"k":"v"}}`},
		{"write clears labels", WriteRequest{Data: map[string]string{"k": "v"}, Labels: map[string]string{}}, `{"data":{"k":"v"},"labels":{}}`},
		{"patch of labels alone", PatchRequest{Labels: map[string]string{}}, `{"labels":{}}`},
		{"copy defaults", CopyRequest{}, `{}`},
		{"migration defaults", MigrationRequest{Source: "a", Target: "b", Projects: []string{"p"}}, `{"source":"a","target":"b","projects":["p"]}`},
		{"error", ErrorBody{Error: ErrorDetail{Code: CodeNotFound, Message: "m"}}, `{"error":{"code":"not_found","message":"m"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.v)
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got))
		})
	}
}

func TestMigrationReportDone(t *testing.T) {
	r := MigrationReport{State: MigrationRunning}
	require.False(t, r.Done())
	r.State = MigrationFailed
	require.True(t, r.Done())
}
