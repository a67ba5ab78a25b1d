package sdk

import (
	"bytes"
	"encoding/json"
	"sort"
	"time"
)

// Limits of the uniform model. They fit AWS Secrets Manager, GCP Secret
// Manager and Vault without escaping.
const (
	MaxPayloadBytes = 65536 // JSON encoding of the key/value map (EncodeData)
	MaxKeys         = 100
	MaxKeyLen       = 128
	MaxNameLen      = 128
	MaxLabels       = 64
	MaxLabelKeyLen  = 63
	MaxLabelValLen  = 63
	MaxPageSize     = 1000
	DefaultPageSize = 100
)

// Ref points at one secret, or one version of it. Version 0 means latest.
type Ref struct {
	Project string
	Name    string
	Version int64
}

// Meta is everything about a secret but its values.
type Meta struct {
	Project   string
	Name      string
	Keys      []string // sorted
	Version   int64    // latest version
	Labels    map[string]string
	CreatedAt time.Time // creation of the secret (version 1)
	UpdatedAt time.Time // creation of the latest version
}

// Secret is a Meta plus the values of one version. When read by version,
// Meta.Version is the version read and Keys are that version's keys.
type Secret struct {
	Meta
	Data map[string]string
}

// VersionMeta describes one stored version.
type VersionMeta struct {
	Version   int64
	CreatedAt time.Time
}

// WriteMode says what a Write may do about an existing secret.
type WriteMode int

const (
	// WriteCreate fails with ErrAlreadyExists when the secret exists.
	WriteCreate WriteMode = iota + 1
	// WriteReplace fails with ErrNotFound when the secret does not exist.
	WriteReplace
	// WriteUpsert creates or replaces.
	WriteUpsert
)

func (m WriteMode) String() string {
	switch m {
	case WriteCreate:
		return "create"
	case WriteReplace:
		return "replace"
	case WriteUpsert:
		return "upsert"
	}
	return "unknown"
}

// WriteRequest writes a new version holding exactly Data.
type WriteRequest struct {
	Project string
	Name    string
	Data    map[string]string
	// Labels replace the secret's labels when non-nil (an empty map clears
	// them). Nil keeps the current labels; on creation nil means none.
	Labels map[string]string
	Mode   WriteMode
	// ExpectedVersion, when > 0, is check-and-set: the write succeeds only if
	// the latest version is exactly this one, else ErrVersionMismatch (or
	// ErrNotFound when the secret does not exist).
	ExpectedVersion int64
	// Receipt, when non-nil, is committed atomically with the version
	// (receipt.go). The gateway sends one only to a backend whose
	// Capabilities.Receipts is true.
	Receipt *AuditReceipt
}

// ListRequest asks for one page of metadata in a project.
type ListRequest struct {
	Project   string
	Prefix    string // name prefix filter; empty = all
	PageSize  int    // 0 = DefaultPageSize; capped at MaxPageSize
	PageToken string // opaque, from a previous ListPage; empty = first page
}

// ListPage is one page of a listing, sorted by name.
type ListPage struct {
	Secrets       []Meta
	NextPageToken string // empty when there are no more pages
}

// Capabilities tells the host what a backend supports.
type Capabilities struct {
	Backend     string // a short type name: "file", "vault", "aws", ...
	Versions    bool   // older versions are readable by number
	MaxVersions int    // how many versions are kept; 0 = unlimited
	CAS         bool   // ExpectedVersion is enforced atomically
	Labels      bool
	// DeletePropagation is how long after a successful Delete the service
	// may still refuse to create a secret of the same name, because it frees
	// names asynchronously (AWS Secrets Manager). Meanwhile a create may fail
	// with ErrUnavailable; retrying later helps. 0 means the name is free as
	// soon as Delete returns.
	DeletePropagation time.Duration
	// Receipts: the backend stores WriteRequest.Receipt in the commit of
	// the write and implements ReceiptKeeper (receipt.go).
	Receipts bool
}

// SortedKeys returns the keys of data in ascending order.
func SortedKeys(data map[string]string) []string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EncodeData is the canonical JSON encoding of a key/value map: keys sorted,
// no HTML escaping, no trailing newline. MaxPayloadBytes applies to it, and
// backends that store JSON (AWS SecretString, GCP payloads) store exactly it.
func EncodeData(data map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// DecodeData parses what EncodeData produced (or any JSON object of strings).
func DecodeData(b []byte) (map[string]string, error) {
	var data map[string]string
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, err
	}
	if data == nil {
		data = map[string]string{}
	}
	return data, nil
}

// CloneData copies a key/value map, so that callers never share one.
func CloneData(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
