package sdk

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// encodedDataLen decides the payload limit instead of EncodeData: it must
// count what EncodeData writes, byte for byte, whatever the strings hold
// (escapes, control bytes, invalid UTF-8, U+2028, HTML characters, which
// EncodeData leaves as they are).
func TestEncodedDataLenMatchesEncodeData(t *testing.T) {
	tests := map[string]map[string]string{
		"nil":           nil,
		"empty":         {},
		"one":           {"k": "v"},
		"several":       {"username": "svc", "password": "0123456789", "a.b-c_d": ""},
		"escapes":       {"k": "quote\" backslash\\ \b\f\n\r\t"},
		"control bytes": {"k": "\x00\x01\x1f\x7f"},
		"html":          {"k": "<script>&amp;</script>"},
		"unicode":       {"k": "héllo, 世界, 🔑"},
		"separators":    {"k": "a\u2028b\u2029c"},
		"invalid UTF-8": {"k": "\xff\xfe\xc3", "\xff": "x"},
		"long":          {"k": string(make([]byte, 70000))},
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			enc, err := EncodeData(data)
			require.NoError(t, err)
			require.Equal(t, len(enc), encodedDataLen(data))
		})
	}
}

func FuzzEncodedDataLen(f *testing.F) {
	f.Add("k", "v", "k2", "v2")
	f.Add("a", "\u2028\xff\"\\\n\x00<", "", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		data := map[string]string{k1: v1, k2: v2}
		enc, err := EncodeData(data)
		require.NoError(t, err)
		require.Equal(t, len(enc), encodedDataLen(data), "%q", data)
	})
}
