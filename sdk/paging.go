package sdk

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sort"
	"strings"
)

// Name-ordered paging, shared by every backend that lists by name: a page
// token holds the last name the previous page returned, and the next page
// starts just past it. Restarting from a name rather than an offset keeps
// pages consistent while secrets come and go.
//
// A token is pageTokenVersion followed by the unpadded base64url of a
// binding tag and the name. The tag is a hash of the project, the prefix and
// the name, so a token replayed with another project or prefix, or altered
// in any byte, is refused as ErrInvalid instead of quietly listing from a
// name it was never meant to start at. The tag has no key, on purpose: a
// token must survive a restart of the plugin (the supervisor replaces hung
// plugins mid-listing), and the gateway seals every token again with its own
// key before a client sees it. So a plugin token is tamper-evident, not
// secret.

// pageTokenVersion starts every token, so that the format can change and an
// older token is refused by name rather than misread.
const pageTokenVersion = "n1."

// pageTokenTagLen is the length of the binding tag. It guards against
// mistakes and replays, not against forgery, so 96 bits are plenty.
const pageTokenTagLen = 12

// maxPageTokenLen bounds a token before it is decoded: the version, and the
// base64 of the tag and the longest name. Anything longer was not issued here.
var maxPageTokenLen = len(pageTokenVersion) + base64.RawURLEncoding.EncodedLen(pageTokenTagLen+MaxNameLen)

// pageTokenTag binds a name to the project and prefix it was listed under.
// Each field is length-prefixed, so no two (project, prefix, name) triples
// hash the same input.
func pageTokenTag(project, prefix, name string) []byte {
	buf := make([]byte, 0, 64+len(project)+len(prefix)+len(name))
	buf = append(buf, "secretgate sdk page token "...)
	buf = append(buf, pageTokenVersion...)
	for _, f := range []string{project, prefix, name} {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	sum := sha256.Sum256(buf)
	return sum[:pageTokenTagLen]
}

// EncodePageToken returns the token for the page after lastName, the last
// name a page of req returned. The token is an opaque URL-safe string, valid
// only for req's project and prefix (not its page size, which each call may
// choose anew).
func EncodePageToken(req ListRequest, lastName string) string {
	raw := make([]byte, 0, pageTokenTagLen+len(lastName))
	raw = append(raw, pageTokenTag(req.Project, req.Prefix, lastName)...)
	raw = append(raw, lastName...)
	return pageTokenVersion + base64.RawURLEncoding.EncodeToString(raw)
}

// DecodePageToken returns the name req.PageToken continues after, or "" when
// req has no token (the first page). A token that EncodePageToken did not
// produce for req's project and prefix is a *FieldError on "page_token", so
// errors.Is(err, ErrInvalid) holds and the gateway answers 400.
func DecodePageToken(req ListRequest) (after string, err error) {
	tok := req.PageToken
	if tok == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(tok, pageTokenVersion)
	if !ok || len(tok) > maxPageTokenLen {
		return "", Invalid("page_token", "is not a page token this backend issued")
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) <= pageTokenTagLen {
		return "", Invalid("page_token", "is not a page token this backend issued")
	}
	tag, name := raw[:pageTokenTagLen], string(raw[pageTokenTagLen:])
	if !bytes.Equal(tag, pageTokenTag(req.Project, req.Prefix, name)) {
		return "", Invalid("page_token", "was issued for another project or prefix, or was altered")
	}
	// A well-bound token still names a name under the prefix, or a backend
	// that encoded the wrong string would list from an arbitrary position.
	if !validName(name) || !strings.HasPrefix(name, req.Prefix) {
		return "", Invalid("page_token", "is not a page token this backend issued")
	}
	return name, nil
}

// PageNames pages a slice of names sorted in byte order (sort.Strings) for
// req: it keeps the names with req.Prefix that follow req.PageToken's name,
// at most PageSize(req.PageSize) of them, and returns the token of the next
// page only when more names follow, so a listing whose length is a multiple
// of the page size ends without an empty page. The page shares sorted's
// backing array, capped so that appending to it never writes into sorted.
// A bad token is DecodePageToken's error.
func PageNames(sorted []string, req ListRequest) (page []string, next string, err error) {
	after, err := DecodePageToken(req)
	if err != nil {
		return nil, "", err
	}
	// Names with the prefix are contiguous in a sorted slice: [lo, hi).
	lo := sort.SearchStrings(sorted, req.Prefix)
	hi := lo + sort.Search(len(sorted)-lo, func(i int) bool { return !strings.HasPrefix(sorted[lo+i], req.Prefix) })
	// after has the prefix (DecodePageToken checks), so start <= hi.
	start := lo
	if after != "" {
		start = max(lo, sort.Search(len(sorted), func(i int) bool { return sorted[i] > after }))
	}
	end := min(hi, start+PageSize(req.PageSize))
	page = sorted[start:end:end]
	if end < hi {
		next = EncodePageToken(req, page[len(page)-1])
	}
	return page, next, nil
}
