package plugin

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/secretgate/secretgate/sdk"

	backendpb "github.com/secretgate/secretgate/sdk/plugin/proto"
)

// Helpers that write protobuf by hand, for what proto.Marshal never
// writes (repeated singular fields, unknown fields, bad bytes).

func tagBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func tagString(b []byte, num protowire.Number, s string) []byte {
	return tagBytes(b, num, []byte(s))
}

func tagVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func marshalPB(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}

// generatedListPage is what the generated path makes of b.
func generatedListPage(b []byte) (sdk.ListPage, error) {
	var resp backendpb.ListResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return sdk.ListPage{}, err
	}
	return fromPBListResponse(&resp), nil
}

// listReplyPage is what List makes of b now.
func listReplyPage(b []byte) (sdk.ListPage, error) {
	var r listReply
	if err := proto.Unmarshal(b, &r); err != nil {
		return sdk.ListPage{}, err
	}
	return r.result(), nil
}

// requireSameAsGenerated checks that b decodes, or fails, exactly as on the
// generated path. require.Equal tells nil from empty slices and maps, and
// compares times with their locations.
func requireSameAsGenerated(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := generatedListPage(b)
	got, gotErr := listReplyPage(b)
	if wantErr != nil {
		require.EqualError(t, gotErr, wantErr.Error())
		return
	}
	require.NoError(t, gotErr)
	require.Equal(t, want, got)
}

func listResponseCases(t testing.TB) []struct {
	name string
	b    []byte
	fast bool // decodeListPage reads it itself
} {
	t.Helper()
	created := time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)
	updated := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	full := &backendpb.Meta{
		Project: "p", Name: "n", Keys: []string{"a", "b"}, Version: 7,
		Labels: map[string]string{"env": "prod", "team": "x", "": ""}, LabelsSet: true,
		CreatedAt: timestamppb.New(created), UpdatedAt: timestamppb.New(updated),
	}
	hundred := &backendpb.ListResponse{NextPageToken: "load-099"}
	for i := range 100 {
		hundred.Secrets = append(hundred.Secrets, &backendpb.Meta{
			Project: "default", Name: fmt.Sprintf("load-%03d", i), Keys: []string{"password", "username"}, Version: int64(i + 1),
			CreatedAt: timestamppb.New(created.Add(time.Duration(i))), UpdatedAt: timestamppb.New(updated),
		})
	}
	ts := func(fields ...uint64) []byte { // seconds, then nanos when given
		var b []byte
		for i, f := range fields {
			b = tagVarint(b, protowire.Number(i+1), f)
		}
		return b
	}
	meta := func(fields ...[]byte) []byte { return tagBytes(nil, fieldListSecrets, join(fields...)) }
	entry := func(k, v string) []byte { return tagBytes(nil, fieldMetaLabels, tagString(tagString(nil, 1, k), 2, v)) }
	name := func(s string) []byte { return tagString(nil, fieldMetaName, s) }

	return []struct {
		name string
		b    []byte
		fast bool
	}{
		{"empty", nil, true},
		{"token alone", marshalPB(t, &backendpb.ListResponse{NextPageToken: "tok"}), true},
		{"every field", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{full}, NextPageToken: "t"}), true},
		{"a page of 100", marshalPB(t, hundred), true},
		{"nil labels, empty labels, no keys, no times", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{
			{Project: "p", Name: "a"},
			{Project: "p", Name: "b", LabelsSet: true},
			{Project: "p", Name: "c", Keys: []string{"k"}, CreatedAt: timestamppb.New(created)},
			{Name: "d", UpdatedAt: timestamppb.New(updated)},
			{},
			full,
		}}), true},
		{"timestamps at 1970 and before, versions past 32 bits", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{
			{Name: "a", Version: -1, CreatedAt: &timestamppb.Timestamp{}, UpdatedAt: &timestamppb.Timestamp{Seconds: -5, Nanos: -7}},
			{Name: "b", Version: 1 << 40, CreatedAt: &timestamppb.Timestamp{Seconds: 1 << 40}},
		}}), true},
		{"unicode strings", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{
			{Project: "é", Name: "名前 🔑", Keys: []string{"\u2028", "k\x00"}, Labels: map[string]string{"ü": "v\n"}},
		}, NextPageToken: "ß"}), true},
		{"repeated fields: the last one wins", meta(name("first"), name("second"),
			tagVarint(nil, fieldMetaVersion, 1), tagVarint(nil, fieldMetaVersion, 2),
			tagVarint(nil, fieldMetaLabelsSet, 1), tagVarint(nil, fieldMetaLabelsSet, 0)), true},
		{"labels_set after an empty map, and a bool over 1", meta(name("a"), tagVarint(nil, fieldMetaLabelsSet, 7)), true},
		{"a repeated Timestamp merges", meta(name("a"),
			tagBytes(nil, fieldMetaCreatedAt, ts(100)), tagBytes(nil, fieldMetaCreatedAt, tagVarint(nil, 2, 5)),
			tagBytes(nil, fieldMetaUpdatedAt, ts(100, 5)), tagBytes(nil, fieldMetaUpdatedAt, ts(200))), true},
		{"label entries: repeated key, missing key, missing value", meta(name("a"),
			entry("k", "1"), entry("k", "2"), tagBytes(nil, fieldMetaLabels, tagString(nil, 2, "novalue")),
			tagBytes(nil, fieldMetaLabels, tagString(nil, 1, "nokey")), tagBytes(nil, fieldMetaLabels, nil)), true},
		{"a label entry with its key and value twice", meta(name("a"), tagBytes(nil, fieldMetaLabels,
			join(tagString(nil, 1, "k1"), tagString(nil, 2, "v1"), tagString(nil, 1, "k2"), tagString(nil, 2, "v2")))), true},
		{"keys between other fields", meta(tagString(nil, fieldMetaKeys, "x"), name("a"), tagString(nil, fieldMetaKeys, "y")), true},
		{"names with more keys than the first", marshalPB(t, unevenKeys()), true},
		{"two pages' bytes one after the other", join(
			marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{full}, NextPageToken: "1"}),
			marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{{Name: "z", Keys: []string{"q"}}}, NextPageToken: "2"})), true},

		// Left to proto.Unmarshal.
		{"unknown field in a Meta", meta(name("a"), tagString(nil, 99, "x")), false},
		{"unknown field in the response", join(meta(name("a")), tagVarint(nil, 3, 1)), false},
		{"unknown field in a label entry", meta(entry("k", "v"), tagBytes(nil, fieldMetaLabels, tagVarint(nil, 3, 1))), false},
		{"unknown field in a Timestamp", meta(tagBytes(nil, fieldMetaCreatedAt, tagVarint(nil, 3, 1))), false},
		{"version as bytes", meta(name("a"), tagString(nil, fieldMetaVersion, "7")), false},
		// Payloads that read as varint fields when taken for a varint.
		{"version as fixed64", meta(name("a"), protowire.AppendTag(nil, fieldMetaVersion, protowire.Fixed64Type),
			[]byte{7, fieldMetaVersion << 3, 8, fieldMetaLabelsSet << 3, 1, fieldMetaVersion << 3, 0x89, 0}), false},
		{"labels_set as fixed32", meta(name("a"), protowire.AppendTag(nil, fieldMetaLabelsSet, protowire.Fixed32Type),
			[]byte{1, fieldMetaVersion << 3, 0x85, 0}), false},
		{"name as a varint", meta(tagVarint(nil, fieldMetaName, 7)), false},
		{"secrets as a varint", tagVarint(nil, fieldListSecrets, 1), false},
		{"seconds as bytes", meta(tagBytes(nil, fieldMetaCreatedAt, tagString(nil, 1, "x"))), false},
		{"invalid UTF-8 in a name", meta(name("a\xff")), false},
		{"invalid UTF-8 in a key", meta(tagString(nil, fieldMetaKeys, "\xc3")), false},
		{"invalid UTF-8 in a label value", meta(entry("k", "\xff")), false},
		{"invalid UTF-8 in a label key", meta(entry("\xff", "v")), false},
		{"invalid UTF-8 in the token", tagString(nil, fieldListToken, "\xff"), false},
		{"a lone continuation byte", meta(name("\x80")), false},
		{"truncated", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{full}})[:20], false},
		{"truncated varint", meta(name("a"), []byte{fieldMetaVersion << 3, 0x80}), false},
		{"field number 0", []byte{0x02, 0x00}, false},
	}
}

// unevenKeys is a page whose names have more keys than those before them,
// so that their keys outgrow the block sized after the first names.
func unevenKeys() *backendpb.ListResponse {
	resp := &backendpb.ListResponse{}
	for i, n := range []int{1, 3, 1, 0, 5, 2, 2, 8} {
		m := &backendpb.Meta{Name: fmt.Sprint("n", i)}
		for k := range n {
			m.Keys = append(m.Keys, fmt.Sprint(i, "-", k))
		}
		resp.Secrets = append(resp.Secrets, m)
	}
	return resp
}

func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// List decodes its reply itself: whatever the bytes, the page (or the
// error) must be what proto.Unmarshal and fromPBMeta make of them, and the
// bytes Go's protobuf writes must not need proto.Unmarshal.
func TestListReplyMatchesGenerated(t *testing.T) {
	for _, tt := range listResponseCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			requireSameAsGenerated(t, tt.b)
			_, _, ok := decodeListPage(tt.b)
			require.Equal(t, tt.fast, ok, "decoded without proto.Unmarshal")
		})
	}
}

// The protobuf runtime's Unmarshal merges: proto.UnmarshalOptions{Merge}
// into a listReply must give what it gives into a ListResponse.
func TestListReplyMerges(t *testing.T) {
	first := marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{{Name: "a", Keys: []string{"k"}}}, NextPageToken: "1"})
	tests := []struct {
		name   string
		second []byte
	}{
		{"names and a token", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{{Name: "b"}}, NextPageToken: "2"})},
		{"names without a token", marshalPB(t, &backendpb.ListResponse{Secrets: []*backendpb.Meta{{Name: "b"}}})},
		{"an empty token", tagString(nil, fieldListToken, "")},
		{"nothing", nil},
		{"names and a token, and an unknown field", join(tagString(nil, fieldListToken, "3"), tagVarint(nil, 9, 1))},
		{"an unknown field alone", tagVarint(nil, 9, 1)},
		// proto.Unmarshal keeps it as an unknown field: the token stays.
		{"the token with the varint wire type", tagVarint(nil, fieldListToken, 5)},
	}
	merge := proto.UnmarshalOptions{Merge: true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp backendpb.ListResponse
			require.NoError(t, merge.Unmarshal(first, &resp))
			require.NoError(t, merge.Unmarshal(tt.second, &resp))
			var r listReply
			require.NoError(t, merge.Unmarshal(first, &r))
			require.NoError(t, merge.Unmarshal(tt.second, &r))
			require.Equal(t, fromPBListResponse(&resp), r.result())
		})
	}
}

// The page's keys share one array and its strings one block: neither may
// let a change to one name reach another, nor a transport's reuse of its
// buffer (the direct channel clears it) reach the page.
func TestListReplyPageIsIndependent(t *testing.T) {
	b := marshalPB(t, unevenKeys())
	page, err := listReplyPage(b)
	require.NoError(t, err)
	want, err := generatedListPage(b)
	require.NoError(t, err)

	clear(b)
	require.Equal(t, want, page, "after the transport cleared its buffer")

	for i := range page.Secrets {
		keys := page.Secrets[i].Keys
		grown := append(keys, "appended")
		require.Equal(t, append(slices.Clone(want.Secrets[i].Keys), "appended"), grown)
		require.Equal(t, want, page, "after appending to the keys of name %d", i)
	}
}

// A runtime that decodes through reflection (the protoreflect build tag)
// fills the ListResponse under the reply rather than calling its Unmarshal;
// result must then read the page from it.
func TestListReplyResultThroughReflection(t *testing.T) {
	var r listReply
	m := r.ProtoReflect()
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("next_page_token"), protoreflect.ValueOfString("tok"))
	list := m.Mutable(fields.ByName("secrets")).List()
	meta := list.NewElement()
	meta.Message().Set(meta.Message().Descriptor().Fields().ByName("name"), protoreflect.ValueOfString("a"))
	list.Append(meta)
	require.Equal(t, sdk.ListPage{Secrets: []sdk.Meta{{Name: "a"}}, NextPageToken: "tok"}, r.result())
}

// The point of listReply: a page costs a few allocations, not a few per
// name. Labels cost their maps, each allocated at its size.
func TestListReplyAllocations(t *testing.T) {
	page := func(labels int) []byte {
		resp := &backendpb.ListResponse{NextPageToken: "t"}
		for i := range 100 {
			m := &backendpb.Meta{Project: "p", Name: fmt.Sprint(i), Keys: []string{"a", "b"}, Version: 1,
				CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now()}
			if i == 50 {
				m.Labels = map[string]string{}
				for l := range labels {
					m.Labels[fmt.Sprint("l", l)] = "v"
				}
			}
			resp.Secrets = append(resp.Secrets, m)
		}
		return marshalPB(t, resp)
	}
	allocs := func(b []byte) float64 {
		return testing.AllocsPerRun(20, func() {
			if _, _, ok := decodeListPage(b); !ok {
				t.Fatal("not decoded")
			}
		})
	}
	base := allocs(page(0))
	require.LessOrEqual(t, base, 3.0, "the string block, the names, the keys")
	const labels = 40
	names := make([]string, labels)
	for l := range names {
		names[l] = strconv.Itoa(l)
	}
	oneMap := testing.AllocsPerRun(20, func() {
		m := make(map[string]string, labels)
		for _, n := range names {
			m[n] = ""
		}
		mapSink = m // on the heap, as the page's maps are
	})
	require.LessOrEqual(t, allocs(page(labels)), base+oneMap)
}

var mapSink map[string]string

func FuzzListReply(f *testing.F) {
	for _, tt := range listResponseCases(f) {
		f.Add(tt.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSameAsGenerated(t, b)
	})
}

// BenchmarkListReply: a page of 100 names as the load test lists them,
// decoded as the host receives it.
func BenchmarkListReply(b *testing.B) {
	resp := &backendpb.ListResponse{NextPageToken: "load-099"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range 100 {
		resp.Secrets = append(resp.Secrets, &backendpb.Meta{
			Project: "default", Name: fmt.Sprintf("load-%03d", i), Keys: []string{"password", "username"}, Version: 1,
			CreatedAt: timestamppb.New(at), UpdatedAt: timestamppb.New(at),
		})
	}
	buf := marshalPB(b, resp)
	for _, bm := range []struct {
		name   string
		decode func([]byte) (sdk.ListPage, error)
	}{{"generated", generatedListPage}, {"listReply", listReplyPage}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.decode(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
