package backendtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/sdk"
)

func limitTests() []subtest {
	return []subtest{
		{"PayloadLimit", testPayloadLimit},
		{"KeyCountLimit", testKeyCountLimit},
		{"ValuesRoundTrip", testValuesRoundTrip},
		{"NameLengths", testNameLengths},
	}
}

// payloadOfSize returns data whose EncodeData is exactly size bytes. The
// filler holds characters that JSON escapes or encodes in several bytes, so
// that a backend measuring something else than the canonical encoding (raw
// value bytes, escaped HTML) is off by a visible amount.
func payloadOfSize(t *testing.T, size int) map[string]string {
	t.Helper()
	data := map[string]string{"unicode": strings.Repeat("é€😀", 50), "escapes": strings.Repeat("\"\\\n<>&", 20), "filler": ""}
	enc, err := sdk.EncodeData(data)
	require.NoError(t, err)
	require.Less(t, len(enc), size, "payloadOfSize: base too large")
	data["filler"] = strings.Repeat("x", size-len(enc))
	enc, err = sdk.EncodeData(data)
	require.NoError(t, err)
	require.Len(t, enc, size, "payloadOfSize: wrong size")
	return data
}

func testPayloadLimit(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	atLimit := payloadOfSize(t, sdk.MaxPayloadBytes)
	s.create(t, ctx, p, "at-limit", atLimit, nil)
	requireData(t, atLimit, s.read(t, ctx, p, "at-limit", 0).Data, "a payload of exactly MaxPayloadBytes must round-trip")

	over := payloadOfSize(t, sdk.MaxPayloadBytes+1)
	s.cleanup(t, p, "over-limit")
	_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "over-limit", Data: over, Mode: sdk.WriteCreate})
	requireIs(t, err, sdk.ErrInvalid, "create with a payload one byte over MaxPayloadBytes")
	_, err = s.b.Describe(ctx, sdk.Ref{Project: p, Name: "over-limit"})
	requireIs(t, err, sdk.ErrNotFound, "a refused oversized create must not create the secret")

	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "at-limit", Data: over, Mode: sdk.WriteReplace})
	requireIs(t, err, sdk.ErrInvalid, "replace with a payload one byte over MaxPayloadBytes")
	require.Equal(t, int64(1), s.describe(t, ctx, p, "at-limit").Version, "a refused oversized replace must not add a version")
}

func manyKeys(n int) map[string]string {
	data := make(map[string]string, n)
	for i := 0; i < n; i++ {
		data[fmt.Sprintf("key-%03d", i)] = fmt.Sprintf("value %d", i)
	}
	return data
}

func testKeyCountLimit(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	hundred := manyKeys(sdk.MaxKeys)
	m := s.create(t, ctx, p, "many-keys", hundred, nil)
	require.Len(t, m.Keys, sdk.MaxKeys, "Write of %d keys must answer with %d keys", sdk.MaxKeys, sdk.MaxKeys)
	sec := s.read(t, ctx, p, "many-keys", 0)
	requireData(t, hundred, sec.Data, "a secret with the maximum number of keys must round-trip")
	require.Equal(t, sdk.SortedKeys(hundred), sec.Keys, "Keys of a secret with many keys must be sorted")

	s.cleanup(t, p, "too-many-keys")
	_, err := s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "too-many-keys", Data: manyKeys(sdk.MaxKeys + 1), Mode: sdk.WriteCreate})
	requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("create with %d keys", sdk.MaxKeys+1))
	_, err = s.b.Write(ctx, sdk.WriteRequest{Project: p, Name: "many-keys", Data: manyKeys(sdk.MaxKeys + 1), Mode: sdk.WriteReplace})
	requireIs(t, err, sdk.ErrInvalid, fmt.Sprintf("replace with %d keys", sdk.MaxKeys+1))
}

// trickyValues must come back byte for byte: no normalisation, no trimming,
// no escaping left in, no lost empty values.
var trickyValues = map[string]string{
	"emoji":        "🔑🚀 👩‍💻 🏳️‍🌈",
	"cjk":          "秘密の鍵 비밀번호 密钥",
	"combining":    "e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937", // NFD: must not be normalised to NFC
	"rtl":          "مفتاح سري \u200f",
	"newlines":     "line 1\nline 2\r\nline 3\n\n",
	"quotes":       `"double" 'single' ` + "`back`",
	"backslashes":  `C:\path\to\file \n is not a newline \\ \u0041 \"`,
	"control":      "\t\x01\x07\x1b[31m\x1f\x7f",
	"empty":        "",
	"spaces":       "  leading and trailing  ",
	"json":         `{"nested": ["json", 1, null]}`,
	"html":         "<script>alert('x')</script> &amp; &lt;",
	"separators":   "\u2028\u2029\u0085",
	"bom":          "\ufeffstarts with a BOM",
	"max-rune":     "\U0010FFFF\uFFFD",
	"pem":          "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7\n-----END PRIVATE KEY-----\n",
	"percent":      "100% %s %d %%",
	"a.b_c-D.9":    "key with every allowed punctuation",
	"only-newline": "\n",
}

func testValuesRoundTrip(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	s.create(t, ctx, p, "tricky", trickyValues, nil)
	requireData(t, trickyValues, s.read(t, ctx, p, "tricky", 0).Data, "tricky values, latest")
	requireData(t, trickyValues, s.read(t, ctx, p, "tricky", 1).Data, "tricky values, by version")
	require.Equal(t, sdk.SortedKeys(trickyValues), s.describe(t, ctx, p, "tricky").Keys, "Describe keys of tricky values")

	// The same values through a replace, and a value that is nothing but empty.
	s.replace(t, ctx, p, "tricky", map[string]string{"empty": ""})
	requireData(t, map[string]string{"empty": ""}, s.read(t, ctx, p, "tricky", 0).Data, "a secret whose one value is empty")
	if s.caps.Versions {
		requireData(t, trickyValues, s.read(t, ctx, p, "tricky", 1).Data, "tricky values, old version after a replace")
	}
}

// testNameLengths: the shortest and the longest names and keys work
// everywhere, list included.
func testNameLengths(t *testing.T, s *suite) {
	ctx, p := ctxFor(t), newProject(t)
	longName := "N" + strings.Repeat("a1_-", (sdk.MaxNameLen-1)/4) + strings.Repeat("z", (sdk.MaxNameLen-1)%4)
	require.Len(t, longName, sdk.MaxNameLen)
	longKey := strings.Repeat("k.", sdk.MaxKeyLen/2)
	require.Len(t, longKey, sdk.MaxKeyLen)
	data := map[string]string{longKey: "long key", "k": "short key"}
	for _, name := range []string{longName, "x", "9"} {
		s.create(t, ctx, p, name, data, nil)
		requireData(t, data, s.read(t, ctx, p, name, 0).Data, fmt.Sprintf("Read of a %d-character name", len(name)))
		m := s.replace(t, ctx, p, name, data)
		require.Equal(t, int64(2), m.Version, "replace of a %d-character name", len(name))
		require.Equal(t, name, m.Name, "Write must answer with the full %d-character name", len(name))
	}
	got := names(listAll(t, ctx, s, sdk.ListRequest{Project: p}))
	require.Equal(t, []string{"9", longName, "x"}, got, "List must show names of every length, in full")
	longProject := p + "-" + strings.Repeat("p", 63-len(p)-1)
	require.Len(t, longProject, 63)
	s.create(t, ctx, longProject, longName, data, nil)
	requireData(t, data, s.read(t, ctx, longProject, longName, 0).Data, "longest project and name together")
	require.NoError(t, s.b.Delete(ctx, sdk.Ref{Project: p, Name: longName}), "Delete of a %d-character name", len(longName))
}
