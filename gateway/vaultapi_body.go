package gateway

// Request bodies of the Vault API. KV v2 takes any JSON value where
// secretgate stores strings: a value that is not a string is refused with a
// 400 naming its key, never stringified. As with the native API
// (strictjson.go), what encoding/json would silently alter is refused too:
// invalid UTF-8, lone surrogate escapes, a member sent twice. Messages name
// members and keys, never a value.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/secretgate/secretgate/sdk"
)

// vaultBody reads the body as one JSON object whose members are among
// allowed, each kept raw; an empty body is an empty object, as Vault takes it.
func (r *request) vaultBody(allowed ...string) (map[string]json.RawMessage, bool) {
	raw, e := readBody(r.c.Request, r.s.readTimeout)
	if e == nil {
		var members map[string]json.RawMessage
		if members, e = vaultMembers(raw, "body", allowed); e == nil {
			return members, true
		}
	}
	if e.Status == http.StatusRequestTimeout {
		r.c.Header("Connection", "close")
	}
	r.fail(e)
	return nil, false
}

// vaultMembers reads raw, the value of field ("body" for the whole body),
// as one JSON object whose members are among allowed.
func vaultMembers(raw []byte, field string, allowed []string) (map[string]json.RawMessage, *apiError) {
	members := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return members, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil {
		return nil, jsonError(err)
	} else if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, invalidArg(field, "must be a JSON object")
	}
	for dec.More() {
		start := dec.InputOffset()
		t, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		name, _ := t.(string)
		if reason := checkStringLiteral(raw[start:dec.InputOffset()]); reason != "" {
			return nil, invalidArg(field, "a member name %s", reason)
		}
		if !slices.Contains(allowed, name) {
			return nil, invalidArg(field, "unknown field %s", quoteShort(name))
		}
		if _, dup := members[name]; dup {
			return nil, invalidArg(memberName(field, name), "appears twice in the same object")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonError(err)
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidArg("body", "must hold exactly one JSON object")
	}
	return members, nil
}

// vaultStrings reads field (an object) as string values. With merge, a
// null value is a key to remove (JSON merge patch, RFC 7396) and is
// returned in unset; without, it is refused like any non-string. A nil
// raw (absent member) gives nil maps.
func vaultStrings(field string, raw json.RawMessage, merge bool) (set map[string]string, unset []string, e *apiError) {
	if raw == nil || merge && string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil {
		return nil, nil, jsonError(err)
	} else if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, nil, invalidArg(field, "must be an object of key/value strings")
	}
	set = map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		start := dec.InputOffset()
		t, err := dec.Token()
		if err != nil {
			return nil, nil, jsonError(err)
		}
		key, _ := t.(string)
		if reason := checkStringLiteral(raw[start:dec.InputOffset()]); reason != "" {
			return nil, nil, invalidArg(field, "a key %s", reason)
		}
		member := memberName(field, key)
		if seen[key] {
			return nil, nil, invalidArg(member, "appears twice in the same object")
		}
		seen[key] = true
		start = dec.InputOffset()
		t, err = dec.Token()
		if err != nil {
			return nil, nil, jsonError(err)
		}
		switch v := t.(type) {
		case string:
			if reason := checkStringLiteral(raw[start:dec.InputOffset()]); reason != "" {
				return nil, nil, invalidArg(member, "%s", reason)
			}
			set[key] = v
		case nil:
			if !merge {
				return nil, nil, notAString(member, "null")
			}
			unset = append(unset, key)
		case json.Number:
			return nil, nil, notAString(member, "a number")
		case bool:
			return nil, nil, notAString(member, "a boolean")
		default: // an object or an array
			return nil, nil, notAString(member, "an object or an array")
		}
	}
	return set, unset, nil
}

// memberName names field.key in a message: the key as is when it is a
// valid key name, quoted otherwise (it is the client's, never a value).
func memberName(field, key string) string {
	if field == "body" {
		field = ""
	}
	if sdk.ValidateKey(key) != nil {
		key = quoteShort(key)
	}
	return joinPath(field, key)
}

func notAString(member, kind string) *apiError {
	return invalidArg(member, "is %s; secretgate stores string values only (send it as a JSON string), nothing was stored", kind)
}

// vaultKeys checks the keys of a data object, naming the first bad one.
func vaultKeys(set map[string]string, unset []string) *apiError {
	for _, k := range append(sortedKeys(set), unset...) {
		if err := sdk.ValidateKey(k); err != nil {
			return invalidArg("data", "%s", fieldReason(err, "a key is not valid"))
		}
	}
	return nil
}

// vaultCAS reads options.cas: absent (ok false), 0 (create only) or the
// version a write must replace. Vault's clients send a number; a string
// of digits is taken too, as Vault does.
func vaultCAS(raw json.RawMessage) (int64, bool, *apiError) {
	if raw == nil || string(bytes.TrimSpace(raw)) == "null" {
		return 0, false, nil
	}
	opts, e := vaultMembers(raw, "options", []string{"cas"})
	if e != nil {
		return 0, false, e
	}
	cas, ok := opts["cas"]
	if !ok {
		return 0, false, nil
	}
	n, ok := vaultInt(cas)
	if !ok || n < 0 {
		return 0, false, invalidArg("options.cas", "must be a non-negative integer: 0 to write only if the secret does not exist, N to write only over version N")
	}
	return n, true, nil
}

// vaultInt reads a JSON integer, or a string of one.
func vaultInt(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
