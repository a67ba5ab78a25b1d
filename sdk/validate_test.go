package sdk_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

// The limits are part of the model every backend and client relies on (they
// fit AWS Secrets Manager and GCP Secret Manager): a change must be a
// deliberate, documented one, not a drive-by edit that the boundary tests
// below would follow along.
func TestLimitValues(t *testing.T) {
	require.Equal(t, 65536, sdk.MaxPayloadBytes)
	require.Equal(t, 100, sdk.MaxKeys)
	require.Equal(t, 128, sdk.MaxKeyLen)
	require.Equal(t, 64, sdk.MaxLabels)
	require.Equal(t, 63, sdk.MaxLabelKeyLen)
	require.Equal(t, 63, sdk.MaxLabelValLen)
}

// keysData returns n distinct valid keys.
func keysData(n int) map[string]string {
	data := make(map[string]string, n)
	for i := range n {
		data[fmt.Sprintf("key-%03d", i)] = "v"
	}
	return data
}

// payloadOfSize returns data whose canonical encoding (EncodeData) is
// exactly size bytes. Its values hold characters that JSON escapes or that
// take several bytes in UTF-8, so that a limit measured on anything else
// (raw value bytes, characters, HTML-escaped JSON) is off by a visible
// amount in one direction or the other.
func payloadOfSize(t *testing.T, size int) map[string]string {
	t.Helper()
	data := map[string]string{"unicode": strings.Repeat("é€😀", 50), "escapes": strings.Repeat("\"\\\n<>&", 20), "filler": ""}
	enc, err := sdk.EncodeData(data)
	require.NoError(t, err)
	require.Less(t, len(enc), size)
	data["filler"] = strings.Repeat("x", size-len(enc))
	enc, err = sdk.EncodeData(data)
	require.NoError(t, err)
	require.Len(t, enc, size)
	return data
}

// labelsOf returns n distinct valid labels.
func labelsOf(n int) map[string]string {
	labels := make(map[string]string, n)
	for i := range n {
		labels[fmt.Sprintf("l%03d", i)] = "v"
	}
	return labels
}

// requireInvalid checks err is a FieldError on field (ErrInvalid) whose
// message does not echo the value that was refused.
func requireInvalid(t *testing.T, via string, err error, field, value string) {
	t.Helper()
	require.ErrorIs(t, err, sdk.ErrInvalid, via)
	var fe *sdk.FieldError
	require.True(t, errors.As(err, &fe), "%s: want a *sdk.FieldError, got %T: %v", via, err, err)
	require.Equal(t, field, fe.Field, via)
	require.NotContains(t, err.Error(), value, "%s: the error must not quote the refused value", via)
}

// Each limit at, just below and just above its boundary, through the
// function that enforces it and through ValidateWrite, which every backend
// calls first.
func TestValidateDataLimits(t *testing.T) {
	longFiller := strings.Repeat("x", 200) // only in the payload cases' filler
	tests := []struct {
		name  string
		data  func(t *testing.T) map[string]string
		field string // "" when valid
	}{
		{"no key", func(*testing.T) map[string]string { return map[string]string{} }, "data"},
		{"one key", func(*testing.T) map[string]string { return keysData(1) }, ""},
		{"MaxKeys-1 keys", func(*testing.T) map[string]string { return keysData(sdk.MaxKeys - 1) }, ""},
		{"MaxKeys keys", func(*testing.T) map[string]string { return keysData(sdk.MaxKeys) }, ""},
		{"MaxKeys+1 keys", func(*testing.T) map[string]string { return keysData(sdk.MaxKeys + 1) }, "data"},
		{"payload MaxPayloadBytes-1", func(t *testing.T) map[string]string { return payloadOfSize(t, sdk.MaxPayloadBytes-1) }, ""},
		{"payload MaxPayloadBytes", func(t *testing.T) map[string]string { return payloadOfSize(t, sdk.MaxPayloadBytes) }, ""},
		{"payload MaxPayloadBytes+1", func(t *testing.T) map[string]string { return payloadOfSize(t, sdk.MaxPayloadBytes+1) }, "data"},
		{"key of MaxKeyLen-1", func(*testing.T) map[string]string {
			return map[string]string{strings.Repeat("k", sdk.MaxKeyLen-1): "v"}
		}, ""},
		{"key of MaxKeyLen", func(*testing.T) map[string]string { return map[string]string{strings.Repeat("k", sdk.MaxKeyLen): "v"} }, ""},
		{"key of MaxKeyLen+1", func(*testing.T) map[string]string {
			return map[string]string{strings.Repeat("k", sdk.MaxKeyLen+1): "v"}
		}, "data"},
		{"empty key", func(*testing.T) map[string]string { return map[string]string{"": "v"} }, "data"},
		{"value not UTF-8", func(*testing.T) map[string]string { return map[string]string{"k": "\xff"} }, "data.k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data(t)
			write := sdk.WriteRequest{Project: "p", Name: "n", Data: data, Mode: sdk.WriteUpsert}
			for via, err := range map[string]error{"ValidateData": sdk.ValidateData(data), "ValidateWrite": sdk.ValidateWrite(write)} {
				if tc.field == "" {
					require.NoError(t, err, via)
					continue
				}
				requireInvalid(t, via, err, tc.field, longFiller)
			}
		})
	}
}

func TestValidateLabelsLimits(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		field  string // "" when valid
	}{
		{"nil", nil, ""},
		{"empty", map[string]string{}, ""},
		{"MaxLabels-1 labels", labelsOf(sdk.MaxLabels - 1), ""},
		{"MaxLabels labels", labelsOf(sdk.MaxLabels), ""},
		{"MaxLabels+1 labels", labelsOf(sdk.MaxLabels + 1), "labels"},
		{"key of MaxLabelKeyLen-1", map[string]string{strings.Repeat("l", sdk.MaxLabelKeyLen-1): "v"}, ""},
		{"key of MaxLabelKeyLen", map[string]string{strings.Repeat("l", sdk.MaxLabelKeyLen): "v"}, ""},
		{"key of MaxLabelKeyLen+1", map[string]string{strings.Repeat("l", sdk.MaxLabelKeyLen+1): "v"}, "labels"},
		{"empty key", map[string]string{"": "v"}, "labels"},
		{"empty value", map[string]string{"env": ""}, ""},
		{"value of MaxLabelValLen-1", map[string]string{"env": strings.Repeat("v", sdk.MaxLabelValLen-1)}, ""},
		{"value of MaxLabelValLen", map[string]string{"env": strings.Repeat("v", sdk.MaxLabelValLen)}, ""},
		{"value of MaxLabelValLen+1", map[string]string{"env": strings.Repeat("v", sdk.MaxLabelValLen+1)}, "labels.env"},
		// The value limit counts characters, not bytes: 63 two-byte runes
		// pass, 64 do not.
		{"value of MaxLabelValLen two-byte runes", map[string]string{"env": strings.Repeat("é", sdk.MaxLabelValLen)}, ""},
		{"value of MaxLabelValLen+1 two-byte runes", map[string]string{"env": strings.Repeat("é", sdk.MaxLabelValLen+1)}, "labels.env"},
		{"value not UTF-8", map[string]string{"env": "\xff"}, "labels.env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write := sdk.WriteRequest{Project: "p", Name: "n", Data: map[string]string{"k": "v"}, Labels: tc.labels, Mode: sdk.WriteUpsert}
			for via, err := range map[string]error{"ValidateLabels": sdk.ValidateLabels(tc.labels), "ValidateWrite": sdk.ValidateWrite(write)} {
				if tc.field == "" {
					require.NoError(t, err, via)
					continue
				}
				requireInvalid(t, via, err, tc.field, strings.Repeat("v", sdk.MaxLabelValLen+1))
			}
		})
	}
}
