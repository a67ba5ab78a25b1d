package sdk

import (
	"fmt"
	"unicode/utf8"
)

// ValidateProject checks a project name.
func ValidateProject(project string) error {
	if !validProject(project) {
		return Invalid("project", "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")
	}
	return nil
}

// ValidateName checks a secret name.
func ValidateName(name string) error {
	if !validName(name) {
		return Invalid("name", "must be 1-128 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit")
	}
	return nil
}

// ValidateRef checks a Ref's project, name and version.
func ValidateRef(ref Ref) error {
	if err := ValidateProject(ref.Project); err != nil {
		return err
	}
	if err := ValidateName(ref.Name); err != nil {
		return err
	}
	if ref.Version < 0 {
		return Invalid("version", "must be a positive integer, or 0 for the latest")
	}
	return nil
}

// ValidateKey checks one key of a secret's key/value map.
func ValidateKey(key string) error {
	if !validKey(key) {
		return Invalid("data", "key %q must be 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'", truncate(key, 140))
	}
	return nil
}

// ValidateData checks a whole key/value map: 1 to 100 valid keys, UTF-8
// values, and the payload limit. Messages name keys, never values.
func ValidateData(data map[string]string) error {
	if len(data) == 0 {
		return Invalid("data", "must hold at least one key")
	}
	if len(data) > MaxKeys {
		return Invalid("data", "holds %d keys, at most %d are allowed", len(data), MaxKeys)
	}
	for _, k := range SortedKeys(data) {
		if err := ValidateKey(k); err != nil {
			return err
		}
		if !utf8.ValidString(data[k]) {
			return Invalid("data."+k, "value must be valid UTF-8")
		}
	}
	if n := encodedDataLen(data); n > MaxPayloadBytes {
		return Invalid("data", "encodes to %d bytes of JSON, at most %d are allowed", n, MaxPayloadBytes)
	}
	return nil
}

// encodedDataLen is len(EncodeData(data)), counted without writing it:
// validation makes no copy of the values (and this was most of what
// validating a write cost).
func encodedDataLen(data map[string]string) int {
	if data == nil {
		return len("null")
	}
	n := 2 // {}
	for k, v := range data {
		n += encodedStringLen(k) + 1 + encodedStringLen(v) + 1 // : and ,
	}
	if len(data) > 0 {
		n-- // no comma after the last member
	}
	return n
}

// encodedStringLen is the length of s as encoding/json writes it without
// HTML escaping (EncodeData): quoted; \\, \", \b, \f, \n, \r and \t as two
// bytes; other control bytes, each invalid UTF-8 byte (as \ufffd) and
// U+2028 and U+2029 as six.
func encodedStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			switch {
			case b == '\\' || b == '"' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1, c == '\u2028', c == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// ValidateLabels checks labels; nil and empty are valid.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return Invalid("labels", "holds %d labels, at most %d are allowed", len(labels), MaxLabels)
	}
	for _, k := range SortedKeys(labels) {
		if !validLabelKey(k) {
			return Invalid("labels", "key %q must match %s", truncate(k, 80), labelKeyPattern)
		}
		v := labels[k]
		if !utf8.ValidString(v) {
			return Invalid("labels."+k, "value must be valid UTF-8")
		}
		if utf8.RuneCountInString(v) > MaxLabelValLen {
			return Invalid("labels."+k, "value is longer than %d characters", MaxLabelValLen)
		}
	}
	return nil
}

// ValidateWrite checks a whole WriteRequest.
func ValidateWrite(req WriteRequest) error {
	if err := ValidateProject(req.Project); err != nil {
		return err
	}
	if err := ValidateName(req.Name); err != nil {
		return err
	}
	switch req.Mode {
	case WriteCreate, WriteReplace, WriteUpsert:
	default:
		return Invalid("mode", "must be create, replace or upsert")
	}
	if req.ExpectedVersion < 0 {
		return Invalid("expected_version", "must be a positive integer, or 0 for no check")
	}
	if err := ValidateData(req.Data); err != nil {
		return err
	}
	if err := validateReceipt(req.Receipt); err != nil {
		return err
	}
	return ValidateLabels(req.Labels)
}

// ValidateList checks a ListRequest. Page tokens are the backend's own.
func ValidateList(req ListRequest) error {
	if err := ValidateProject(req.Project); err != nil {
		return err
	}
	if req.Prefix != "" && !validPrefix(req.Prefix) {
		return Invalid("prefix", "must be a name prefix: characters of A-Z, a-z, 0-9, '_' and '-'")
	}
	if req.PageSize < 0 || req.PageSize > MaxPageSize {
		return Invalid("page_size", "must be between 0 and %d", MaxPageSize)
	}
	return nil
}

// PageSize resolves a requested page size to the one to use.
func PageSize(requested int) int {
	switch {
	case requested <= 0:
		return DefaultPageSize
	case requested > MaxPageSize:
		return MaxPageSize
	}
	return requested
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...", s[:n])
}
