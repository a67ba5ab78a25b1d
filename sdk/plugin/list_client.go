package plugin

import (
	"errors"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"

	"github.com/secretgate/secretgate/sdk"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// listReply is the host's reply message for List: the ListResponse on the
// wire decoded straight into an sdk.ListPage.
//
// Why: on a LIST of 100 names, proto.Unmarshal of the ListResponse and its
// conversion by fromPBMeta were a fifth of the gateway's CPU (perf, issue
// 16): eight allocations per name (a Meta, two Timestamps, its strings, a
// growing keys slice), all garbage as soon as the page is converted. Here a
// page takes a fixed handful: the []sdk.Meta, one []string for every key of
// the page, one string holding the message's bytes, of which every string
// of the page is a substring, and a map per name that has labels. (So a
// caller that keeps one name of a page keeps the page's bytes, a few KiB:
// the gateway keeps none past the request.)
//
// It is a proto.Message whose fast-path Unmarshal (protoiface.Methods, the
// hook through which the protobuf runtime calls a message's own decoder)
// does that, so both transports under the generated client, the direct
// channel and gRPC's codec, reach it through proto.Unmarshal as before.
// Whatever the decoder does not read exactly as proto.Unmarshal would (an
// unknown field, a wire type other than the schema's, invalid UTF-8,
// malformed bytes) goes to proto.Unmarshal into a backendpb.ListResponse
// and fromPBListResponse, so the page, or the error, is the generated
// path's in every case. Only List's reply is decoded here: it is the one
// that carries many messages.
type listReply struct {
	page sdk.ListPage
	// pb lends its descriptor to ProtoReflect. It stays empty unless the
	// protobuf runtime decodes through reflection instead of Unmarshal
	// (built with the protoreflect tag, which ignores fast paths): result
	// then converts it.
	pb backendpb.ListResponse
}

// result is the page received.
func (r *listReply) result() sdk.ListPage {
	if len(r.pb.GetSecrets()) > 0 || r.pb.GetNextPageToken() != "" {
		return fromPBListResponse(&r.pb)
	}
	return r.page
}

func (r *listReply) ProtoReflect() protoreflect.Message {
	return listReplyMessage{Message: r.pb.ProtoReflect(), r: r}
}

// Reset is what proto.Unmarshal calls before decoding.
func (r *listReply) Reset() {
	r.page = sdk.ListPage{}
	r.pb.Reset()
}

// listReplyMessage is a ListResponse's reflection with listReply's decoder.
// Nothing reads or sets its fields through reflection: the reply is only
// ever unmarshaled into.
type listReplyMessage struct {
	protoreflect.Message
	r *listReply
}

func (m listReplyMessage) Interface() protoreflect.ProtoMessage { return m.r }

func (m listReplyMessage) ProtoMethods() *protoiface.Methods { return &listReplyMethods }

var listReplyMethods = protoiface.Methods{
	Flags:     protoiface.SupportUnmarshalDiscardUnknown,
	Unmarshal: unmarshalListReply,
}

var errNotListReply = errors.New("plugin: listReply's decoder called for another message")

// unmarshalListReply merges in.Buf into the reply's page, as the protobuf
// runtime requires of a message's Unmarshal: names are appended, the token
// replaced when the bytes carry one.
func unmarshalListReply(in protoiface.UnmarshalInput) (protoiface.UnmarshalOutput, error) {
	out := protoiface.UnmarshalOutput{Flags: protoiface.UnmarshalInitialized}
	m, ok := in.Message.(listReplyMessage)
	if !ok {
		return out, errNotListReply
	}
	page, tokenSet, ok := decodeListPage(in.Buf)
	if !ok {
		opts := proto.UnmarshalOptions{
			DiscardUnknown: in.Flags&protoiface.UnmarshalDiscardUnknown != 0,
			RecursionLimit: in.Depth,
		}
		var pb backendpb.ListResponse
		if err := opts.Unmarshal(in.Buf, &pb); err != nil {
			return out, err
		}
		page, tokenSet = fromPBListResponse(&pb), countField(in.Buf, fieldListToken) > 0
	}
	dst := &m.r.page
	if dst.Secrets == nil {
		dst.Secrets = page.Secrets
	} else {
		dst.Secrets = append(dst.Secrets, page.Secrets...)
	}
	if tokenSet {
		dst.NextPageToken = page.NextPageToken
	}
	return out, nil
}

// fromPBListResponse is a ListResponse as the generated path converts it.
func fromPBListResponse(resp *backendpb.ListResponse) sdk.ListPage {
	page := sdk.ListPage{NextPageToken: resp.GetNextPageToken()}
	if n := len(resp.GetSecrets()); n > 0 {
		page.Secrets = make([]sdk.Meta, n)
		for i, m := range resp.GetSecrets() {
			page.Secrets[i] = fromPBMeta(m)
		}
	}
	return page
}

// ListResponse and Meta field numbers (backend.proto).
const (
	fieldListSecrets = 1
	fieldListToken   = 2

	fieldMetaProject   = 1
	fieldMetaName      = 2
	fieldMetaKeys      = 3
	fieldMetaVersion   = 4
	fieldMetaLabels    = 5
	fieldMetaLabelsSet = 6
	fieldMetaCreatedAt = 7
	fieldMetaUpdatedAt = 8
)

// pageDecoder decodes a ListResponse in one pass, after a glance at its
// top level to count the names.
type pageDecoder struct {
	buf []byte
	// s is buf as a string: the strings of the page are its substrings,
	// which cost no allocation each and stay valid when the transport
	// reuses or clears buf.
	s     string
	metas []sdk.Meta
	// keys is the block that the next name's keys go to; a name's keys
	// are always in one block, in a row.
	keys     []string
	token    string
	tokenSet bool
}

// decodeListPage decodes b, a ListResponse, as proto.Unmarshal and
// fromPBListResponse would; ok is false when b holds anything it leaves to
// them. tokenSet says whether b carries the token field.
func decodeListPage(b []byte) (page sdk.ListPage, tokenSet, ok bool) {
	n, ok := countNames(b)
	if !ok {
		return sdk.ListPage{}, false, false
	}
	d := pageDecoder{buf: b, s: string(b)}
	if n > 0 {
		d.metas = make([]sdk.Meta, n)
	}
	if !d.message(b) {
		return sdk.ListPage{}, false, false
	}
	return sdk.ListPage{Secrets: d.metas, NextPageToken: d.token}, d.tokenSet, true
}

// countNames counts the Metas of a ListResponse; ok is false when its top
// level holds anything but its two fields as bytes.
func countNames(b []byte) (n int, ok bool) {
	for len(b) > 0 {
		num, typ, tl := consumeTag(b)
		if tl < 0 || typ != protowire.BytesType || num != fieldListSecrets && num != fieldListToken {
			return 0, false
		}
		_, vl := consumeBytes(b[tl:])
		if vl < 0 {
			return 0, false
		}
		if num == fieldListSecrets {
			n++
		}
		b = b[tl+vl:]
	}
	return n, true
}

// str is v, a string field inside buf, as a substring of s; ok is false
// when v is not valid UTF-8, which proto.Unmarshal refuses. Every slice the
// decoder reads is buf[i:j] for some i, j, so its capacity tells where it
// starts.
func (d *pageDecoder) str(v []byte) (string, bool) {
	if !validUTF8(v) {
		return "", false
	}
	off := cap(d.buf) - cap(v)
	return d.s[off : off+len(v)], true
}

func (d *pageDecoder) message(b []byte) bool {
	i := 0
	for len(b) > 0 {
		// countNames checked the tags and the lengths.
		num, _, n := consumeTag(b)
		v, vn := consumeBytes(b[n:])
		b = b[n+vn:]
		if num == fieldListToken {
			s, ok := d.str(v)
			if !ok {
				return false
			}
			d.token, d.tokenSet = s, true
			continue
		}
		if !d.meta(v, i) {
			return false
		}
		i++
	}
	return true
}

// meta decodes the i-th Meta. Repeated singular fields are taken as
// proto.Unmarshal takes them: the last one wins, and Timestamps merge
// field by field.
func (d *pageDecoder) meta(b []byte, i int) bool {
	m := &d.metas[i]
	whole := b
	firstKey := len(d.keys)
	labelsSet := false
	var created, updated pbTime
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		rest := b[n:]
		switch {
		case num == fieldMetaVersion && typ == protowire.VarintType,
			num == fieldMetaLabelsSet && typ == protowire.VarintType:
			x, xn := consumeVarint(rest)
			if xn < 0 {
				return false
			}
			b = rest[xn:]
			if num == fieldMetaLabelsSet {
				labelsSet = protowire.DecodeBool(x)
			} else {
				m.Version = int64(x)
			}
			continue
		case typ != protowire.BytesType:
			return false
		}
		v, vn := consumeBytes(rest)
		if vn < 0 {
			return false
		}
		b = rest[vn:]
		switch num {
		case fieldMetaProject, fieldMetaName, fieldMetaKeys:
			s, ok := d.str(v)
			if !ok {
				return false
			}
			switch {
			case num == fieldMetaProject:
				m.Project = s
			case num == fieldMetaName:
				m.Name = s
			default:
				firstKey = d.addKey(s, firstKey, whole, i)
			}
		case fieldMetaLabels:
			k, val, ok := d.labelEntry(v)
			if !ok {
				return false
			}
			if m.Labels == nil {
				// This entry and those after it in this Meta.
				m.Labels = make(map[string]string, 1+countField(b, fieldMetaLabels))
			}
			m.Labels[k] = val
		case fieldMetaCreatedAt:
			if !created.merge(v) {
				return false
			}
		case fieldMetaUpdatedAt:
			if !updated.merge(v) {
				return false
			}
		default:
			return false
		}
	}
	if len(d.keys) > firstKey {
		// Capped, so that appending to one name's keys never writes over
		// the next name's.
		m.Keys = d.keys[firstKey:len(d.keys):len(d.keys)]
	}
	if m.Labels == nil && labelsSet {
		m.Labels = map[string]string{} // as fromPBLabels: set but empty
	}
	m.CreatedAt, m.UpdatedAt = created.time(), updated.time()
	return true
}

// addKey appends key s of the i-th Meta, b, whose keys so far start at
// d.keys[first], and returns where they start now. When the block is full,
// a new one takes this name's keys and, as a guess, as many for every name
// after it (a page's names tend to have alike keys; a wrong guess costs
// one more block). Names before keep the old block.
func (d *pageDecoder) addKey(s string, first int, b []byte, i int) int {
	if len(d.keys) == cap(d.keys) {
		k := countField(b, fieldMetaKeys)
		cur := d.keys[first:]
		block := make([]string, len(cur), max(k, len(cur)+1)+k*(len(d.metas)-i-1))
		copy(block, cur)
		d.keys, first = block, 0
	}
	d.keys = append(d.keys, s)
	return first
}

// labelEntry decodes a map entry: key 1, value 2, each "" when absent.
func (d *pageDecoder) labelEntry(b []byte) (k, v string, ok bool) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 || typ != protowire.BytesType || num != 1 && num != 2 {
			return "", "", false
		}
		sb, sn := consumeBytes(b[n:])
		if sn < 0 {
			return "", "", false
		}
		b = b[n+sn:]
		s, ok := d.str(sb)
		if !ok {
			return "", "", false
		}
		if num == 1 {
			k = s
		} else {
			v = s
		}
	}
	return k, v, true
}

// countField counts the occurrences of field num with the bytes wire type
// (that of every field it counts: the token, keys, labels) in b, a part of
// a message, up to the first malformed field. proto.Unmarshal keeps a field
// of another wire type as an unknown field, not as field num.
func countField(b []byte, num protowire.Number) int {
	c := 0
	for len(b) > 0 {
		n, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return c
		}
		if n == num && typ == protowire.BytesType {
			c++
		}
		vl := protowire.ConsumeFieldValue(n, typ, b[tl:])
		if vl < 0 {
			return c
		}
		b = b[tl+vl:]
	}
	return c
}

// pbTime is a google.protobuf.Timestamp as decoded so far.
type pbTime struct {
	seconds int64
	nanos   int32
	set     bool
}

func (t *pbTime) merge(b []byte) bool {
	t.set = true
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 || typ != protowire.VarintType || num != 1 && num != 2 {
			return false
		}
		x, xn := consumeVarint(b[n:])
		if xn < 0 {
			return false
		}
		b = b[n+xn:]
		if num == 1 {
			t.seconds = int64(x)
		} else {
			t.nanos = int32(x)
		}
	}
	return true
}

// time is fromPBTime of the Timestamp: the zero time when it is absent,
// Timestamp.AsTime otherwise.
func (t pbTime) time() time.Time {
	if !t.set {
		return time.Time{}
	}
	return time.Unix(t.seconds, int64(t.nanos)).UTC()
}

// The protowire functions, with the common case first: a field number under
// 16, and a length or a varint under 128, each one byte. They were most of
// the decoder's time in its profile.

func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 {
		// Field number 0 is invalid, and no field of the decoder's.
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// consumeBytes slices as protowire.ConsumeBytes does (b[i:j], not a copy,
// which pageDecoder.str relies on).
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		n := int(b[0])
		if n >= len(b) {
			return nil, -1
		}
		return b[1 : 1+n], 1 + n
	}
	return protowire.ConsumeBytes(b)
}

// validUTF8 is utf8.Valid, quicker on the short ASCII strings of a page.
func validUTF8(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}
