package vault

import (
	"encoding/base64"
	"regexp"
	"strings"
	"unicode"
)

// Labels live in the secret's custom_metadata, one entry per label, keys as
// they are. Vault refuses custom_metadata values that are empty or hold
// unprintable characters, which secretgate labels allow; such values, and
// values that happen to start with the marker, are stored as the marker
// followed by their base64 (standard, padded). The encoding is injective and
// leaves ordinary values readable in `vault kv metadata get`.
const labelB64Marker = "b64:"

// labelKeyRe is sdk's label key syntax: entries of custom_metadata whose key
// does not match it (set by hand in Vault) are not labels and are ignored.
var labelKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

func encodeLabelValue(v string) string {
	if v == "" || strings.HasPrefix(v, labelB64Marker) || !printable(v) {
		return labelB64Marker + base64.StdEncoding.EncodeToString([]byte(v))
	}
	return v
}

// decodeLabelValue undoes encodeLabelValue. A value that starts with the
// marker but is not valid base64 was written by hand and is kept as is.
func decodeLabelValue(s string) string {
	if rest, ok := strings.CutPrefix(s, labelB64Marker); ok {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	return s
}

// printable mirrors Vault's check on custom_metadata (go-secure-stdlib's
// strutil.Printable).
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func encodeLabels(labels map[string]string) map[string]any {
	out := make(map[string]any, len(labels))
	for k, v := range labels {
		out[k] = encodeLabelValue(v)
	}
	return out
}

// decodeLabels reads custom_metadata as Vault's JSON gives it.
func decodeLabels(raw any) map[string]string {
	out := map[string]string{}
	m, _ := raw.(map[string]any)
	for k, v := range m {
		s, ok := v.(string)
		if !ok || !labelKeyRe.MatchString(k) {
			continue
		}
		out[k] = decodeLabelValue(s)
	}
	return out
}
