package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/secretgate/secretgate/sdk/api"
)

// encoding/json is lenient in ways that silently alter a secret: it
// replaces invalid UTF-8 and lone surrogate escapes with U+FFFD, stores
// null as "", lets a later duplicate member win, and matches struct fields
// case-insensitively ("DATA" fills data). checkStrictJSON refuses all of
// these before encoding/json sees the body, so what is stored is exactly
// what was sent, or nothing is stored and the 400 names the field.

// maxJSONDepth bounds nesting; no request body of this API nests past 3.
const maxJSONDepth = 32

// readBody reads the whole request body: 413 past MaxBodyBytes, 408 when
// the client is too slow to send it within the server's read timeout.
func readBody(req *http.Request, timeout time.Duration) ([]byte, *apiError) {
	if req.Body == nil {
		return nil, invalidArg("body", "is empty; a JSON object is required")
	}
	raw, err := io.ReadAll(req.Body)
	if err == nil {
		return raw, nil
	}
	var mbe *http.MaxBytesError
	var te interface{ Timeout() bool }
	switch {
	case errors.As(err, &mbe):
		return nil, newAPIError(http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, "request body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &te) && te.Timeout():
		return nil, newAPIError(http.StatusRequestTimeout, api.CodeRequestTimeout, "the request did not arrive in full within %s; nothing was changed", timeout)
	}
	return nil, invalidArg("body", "could not be read to its end; nothing was changed")
}

// checkStrictJSON checks that raw is one JSON object whose members are
// exactly the given names (unknown members are refused), with no
// duplicate members at any level, no null anywhere, and strings that are
// valid UTF-8 without lone surrogate escapes.
func checkStrictJSON(raw []byte, fields []string) *apiError {
	c := &jsonChecker{raw: raw, dec: json.NewDecoder(bytes.NewReader(raw))}
	c.dec.UseNumber()
	t, _, err := c.token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return invalidArg("body", "must be a JSON object")
	}
	if e := c.object("", fields, 1); e != nil {
		return e
	}
	if _, err := c.dec.Token(); !errors.Is(err, io.EOF) {
		return invalidArg("body", "must hold exactly one JSON object")
	}
	return nil
}

type jsonChecker struct {
	raw []byte
	dec *json.Decoder
}

// token returns the next token and the raw bytes it was read from
// (possibly led by whitespace and a separator).
func (c *jsonChecker) token() (json.Token, []byte, error) {
	start := c.dec.InputOffset()
	t, err := c.dec.Token()
	if err != nil {
		return nil, nil, err
	}
	return t, c.raw[start:c.dec.InputOffset()], nil
}

// object checks the members of an object whose '{' was read. fields, when
// not nil, are the only member names allowed (a struct's json tags); then
// names are also compared without case, as encoding/json would match them.
func (c *jsonChecker) object(path string, fields []string, depth int) *apiError {
	folded := map[string]string{} // lower case -> as sent
	exact := map[string]bool{}
	for c.dec.More() {
		t, seg, err := c.token()
		if err != nil {
			return jsonError(err)
		}
		name, _ := t.(string)
		if reason := checkStringLiteral(seg); reason != "" {
			return invalidArg(orBody(path), "a member name %s", reason)
		}
		member := joinPath(path, name)
		if fields != nil {
			if !slices.Contains(fields, name) {
				return invalidArg("body", "unknown field %s", quoteShort(name))
			}
			if prev, ok := folded[strings.ToLower(name)]; ok && prev != name {
				return invalidArg("body", "members %s and %s differ only in case", quoteShort(prev), quoteShort(name))
			}
			folded[strings.ToLower(name)] = name
		}
		if exact[name] {
			return invalidArg(member, "appears twice in the same object")
		}
		exact[name] = true
		if e := c.value(member, depth); e != nil {
			return e
		}
	}
	if _, _, err := c.token(); err != nil { // the closing '}'
		return jsonError(err)
	}
	return nil
}

func (c *jsonChecker) value(path string, depth int) *apiError {
	if depth > maxJSONDepth {
		return invalidArg(path, "nests deeper than %d levels", maxJSONDepth)
	}
	t, seg, err := c.token()
	if err != nil {
		return jsonError(err)
	}
	switch v := t.(type) {
	case nil:
		return invalidArg(path, "must not be null (leave the member out instead)")
	case string:
		if reason := checkStringLiteral(seg); reason != "" {
			return invalidArg(path, "%s", reason)
		}
	case json.Delim:
		switch v {
		case '{':
			return c.object(path, nil, depth+1)
		case '[':
			for i := 0; c.dec.More(); i++ {
				if e := c.value(path+"["+strconv.Itoa(i)+"]", depth+1); e != nil {
					return e
				}
			}
			if _, _, err := c.token(); err != nil { // the closing ']'
				return jsonError(err)
			}
		}
	}
	return nil
}

// checkStringLiteral checks the raw JSON string literal in seg (the first
// '"' on): it must be valid UTF-8, and every \u escape of a surrogate must
// be half of a pair. The decoder has checked the syntax already.
func checkStringLiteral(seg []byte) string {
	i := bytes.IndexByte(seg, '"')
	if i < 0 {
		return ""
	}
	lit := seg[i:]
	if !utf8.Valid(lit) {
		return "is not valid UTF-8"
	}
	for i := 1; i < len(lit)-1; i++ {
		if lit[i] != '\\' {
			continue
		}
		i++
		if lit[i] != 'u' {
			continue
		}
		r := hex4(lit[i+1 : i+5])
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r >= 0xDC00 || i+6 >= len(lit)-1 || lit[i+1] != '\\' || lit[i+2] != 'u' {
			return "holds a lone UTF-16 surrogate escape (not valid Unicode)"
		}
		if lo := hex4(lit[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
			return "holds a lone UTF-16 surrogate escape (not valid Unicode)"
		}
		i += 6
	}
	return ""
}

func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// quoteShort quotes a client-chosen name for a message, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "..."
	}
	return strconv.Quote(s)
}

var jsonFieldCache sync.Map // reflect.Type -> []string

// jsonFields lists the json member names of the struct dst points to.
func jsonFields(dst any) []string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f, ok := jsonFieldCache.Load(t); ok {
		return f.([]string)
	}
	var names []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case tag == "-":
			case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
				walk(f.Type)
			case !f.IsExported():
			case tag != "":
				names = append(names, tag)
			default:
				names = append(names, f.Name)
			}
		}
	}
	walk(t)
	jsonFieldCache.Store(t, names)
	return names
}
