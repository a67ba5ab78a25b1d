package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// encodedJSON renders JSON already encoded, the way gin's render.JSON
// renders a value: the same Content-Type (unless one is set), the same
// single write, so the same headers and framing.
type encodedJSON []byte

// jsonContentType is gin's, never modified.
var jsonContentType = []string{"application/json; charset=utf-8"}

func (j encodedJSON) Render(w http.ResponseWriter) error {
	j.WriteContentType(w)
	_, err := w.Write(j)
	return err
}

func (j encodedJSON) WriteContentType(w http.ResponseWriter) {
	if h := w.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
}

// listBufs recycles the buffers of encoded listings: a page of 100 names is
// about 20 KiB, allocated (and zeroed, and collected) per request otherwise.
var listBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledListBuf keeps a rare huge page (1,000 names with many labels)
// from pinning its buffer in the pool.
const maxPooledListBuf = 256 << 10

// appendSecretList appends the JSON of api.SecretList for metas, byte for
// byte what encoding/json writes for the api.Metadata of toMetadata (keys
// and labels never null, labels in key order, times in UTC and left out
// when zero, HTML-escaped strings). encoding/json spent a third of the
// gateway's CPU on a LIST of 100: reflection per field, and every time
// going through Time.MarshalJSON and then being re-scanned by
// appendCompact. ok is false when a time cannot be written (a year outside
// 0-9999, where Time.MarshalJSON fails): the caller then takes
// encoding/json's path, so the error is the same as before too.
func appendSecretList(b []byte, metas []sdk.Meta, next string) (_ []byte, ok bool) {
	b = append(b, `{"secrets":[`...)
	var labelKeys []string
	for i := range metas {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if b, ok = appendMetaFields(b, &metas[i], &labelKeys); !ok {
			return b, false
		}
		b = append(b, '}')
	}
	b = append(b, `],"next_page_token":`...)
	b = appendJSONString(b, next)
	return append(b, '}'), true
}

// appendMetaFields appends the fields of api.Metadata for m, as
// encoding/json writes toMetadata(*m), without the braces around them.
// keys is scratch space for sorting label keys, reused across calls.
func appendMetaFields(b []byte, m *sdk.Meta, keys *[]string) (_ []byte, ok bool) {
	b = append(b, `"project":`...)
	b = appendJSONString(b, m.Project)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, m.Name)
	b = append(b, `,"keys":[`...)
	for j, k := range m.Keys {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
	}
	b = append(b, `],"version":`...)
	b = strconv.AppendInt(b, m.Version, 10)
	b = append(b, `,"labels":`...)
	b = appendStringMap(b, m.Labels, keys)
	if b, ok = appendJSONTime(b, `,"created_at":`, m.CreatedAt); !ok {
		return b, false
	}
	return appendJSONTime(b, `,"updated_at":`, m.UpdatedAt)
}

// appendSecret appends the JSON of api.Secret for sec, byte for byte what
// encoding/json writes for the handler's api.Secret{toMetadata(sec.Meta),
// data} (data never null, keys in order). The values pass through
// appendJSONString only: no reflection, and no pooled encoder buffer of
// encoding/json's keeps a copy once the answer is written.
func appendSecret(b []byte, sec *sdk.Secret) (_ []byte, ok bool) {
	keys := make([]string, 0, 8) // on the stack: secrets have a few keys
	b = append(b, '{')
	if b, ok = appendMetaFields(b, &sec.Meta, &keys); !ok {
		return b, false
	}
	b = append(b, `,"data":`...)
	b = appendStringMap(b, sec.Data, &keys)
	return append(b, '}'), true
}

// appendMetadata appends the JSON of toMetadata(*m).
func appendMetadata(b []byte, m *sdk.Meta) (_ []byte, ok bool) {
	keys := make([]string, 0, 8)
	b = append(b, '{')
	if b, ok = appendMetaFields(b, m, &keys); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendStringMap appends m as a JSON object with its keys in order, as
// encoding/json writes a map[string]string ({} for nil).
func appendStringMap(b []byte, m map[string]string, keys *[]string) []byte {
	*keys = (*keys)[:0]
	for k := range m {
		*keys = append(*keys, k)
	}
	slices.Sort(*keys)
	b = append(b, '{')
	for j, k := range *keys {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

// appendJSONTime appends field and t as Time.MarshalJSON writes t.UTC(),
// or nothing for the zero time (omitzero).
func appendJSONTime(b []byte, field string, t time.Time) ([]byte, bool) {
	if t.IsZero() {
		return b, true
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, field...)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

// appendJSONString appends s quoted. A string of printable ASCII that JSON
// and HTML leave alone (names, keys, most labels) is copied as is; any
// other goes through encoding/json, so escapes, invalid UTF-8 and U+2028
// come out exactly as before.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
