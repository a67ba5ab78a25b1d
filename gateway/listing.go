package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// visiblePage fills one page with names the subject may see, walking as
// many backend pages as it takes, so that a page is never empty while a
// token says more follows, and a token is given only when at least one
// more visible name exists. Hidden names cost backend calls (time) but
// leave no other trace in the answer.
func (s *Server) visiblePage(ctx context.Context, b sdk.Backend, r *request, req sdk.ListRequest, cur pageCursor) ([]sdk.Meta, pageCursor, bool, error) {
	size := sdk.PageSize(req.PageSize)
	az := r.authz()
	seesAll := az.SeesAll(r.subject, r.route.Project)
	if cur.Backend != r.route.Backend {
		// Issued before a migration switch: resume by name from the start.
		cur = pageCursor{Backend: r.route.Backend, After: cur.After}
	}
	out := make([]sdk.Meta, 0, size)
	tok := cur.Token
	for {
		page, err := b.List(ctx, sdk.ListRequest{Project: req.Project, Prefix: req.Prefix, PageSize: size, PageToken: tok})
		if err != nil {
			return nil, cur, false, err
		}
		for _, m := range page.Secrets {
			// SeesAll promises CanSee for every name of the project, and az
			// is this request's snapshot, so the answer cannot change here.
			if m.Name <= cur.After || !seesAll && !az.CanSee(r.subject, r.route.Project, m.Name) {
				continue
			}
			if len(out) == size {
				// A visible name beyond this page: resume at this backend
				// page, after the last name we answer.
				return out, pageCursor{Backend: cur.Backend, Token: tok, After: out[size-1].Name}, true, nil
			}
			out = append(out, m)
		}
		if page.NextPageToken == "" {
			return out, cur, false, nil
		}
		if page.NextPageToken == tok {
			return nil, cur, false, fmt.Errorf("backend %q repeated its page token: %w", r.route.Backend, errBackendPaging)
		}
		if seesAll && len(out) == size {
			// Every name is visible, so the backend's "more follows" is
			// ours too: no need to fetch the next page to find out.
			return out, pageCursor{Backend: cur.Backend, Token: page.NextPageToken, After: out[size-1].Name}, true, nil
		}
		tok = page.NextPageToken
	}
}

var errBackendPaging = errors.New("backend paging does not advance")

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
	for i, m := range metas {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"project":`...)
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
		b = append(b, `,"labels":{`...)
		labelKeys = labelKeys[:0]
		for k := range m.Labels {
			labelKeys = append(labelKeys, k)
		}
		slices.Sort(labelKeys)
		for j, k := range labelKeys {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, m.Labels[k])
		}
		b = append(b, '}')
		if b, ok = appendJSONTime(b, `,"created_at":`, m.CreatedAt); !ok {
			return b, false
		}
		if b, ok = appendJSONTime(b, `,"updated_at":`, m.UpdatedAt); !ok {
			return b, false
		}
		b = append(b, '}')
	}
	b = append(b, `],"next_page_token":`...)
	b = appendJSONString(b, next)
	return append(b, '}'), true
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
