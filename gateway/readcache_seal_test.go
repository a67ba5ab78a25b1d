package gateway

import (
	"encoding/binary"
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every map of strings comes back as it went in, empty keys and values,
// NULs and invalid UTF-8 included.
func TestCacheDataRoundTrip(t *testing.T) {
	for _, data := range []map[string]string{
		nil,
		{},
		{"": ""},
		{"user": "svc", "password": "s3cr3t"},
		{"k\x00": "\x00v", "bad\xff": "\xc3\x28", "big": strings.Repeat("x", 70000)},
	} {
		b := encodeCacheData(data)
		got, ok := decodeCacheData(b)
		require.True(t, ok)
		want := data
		if want == nil {
			want = map[string]string{}
		}
		require.Equal(t, want, got)
	}
}

// Anything but encodeCacheData's output is refused, never a panic or a
// partial map: a count past the bytes, a length past the end, bytes left
// over, and a key twice (its pairs would not all come back).
func TestCacheDataRefusesMalformed(t *testing.T) {
	good := encodeCacheData(map[string]string{"a": "1", "b": "2"})
	pair := func(k, v string) []byte {
		b := binary.AppendUvarint(nil, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
	twice := append(binary.AppendUvarint(nil, 2), append(pair("a", "1"), pair("a", "2")...)...)
	for name, b := range map[string][]byte{
		"empty":           nil,
		"count only":      binary.AppendUvarint(nil, 1),
		"huge count":      binary.AppendUvarint(nil, 1<<62),
		"truncated":       good[:len(good)-1],
		"trailing bytes":  append(append([]byte{}, good...), 0),
		"length past end": append(binary.AppendUvarint(nil, 1), 0x7f, 'k', 0, 0),
		"overlong varint": append(binary.AppendUvarint(nil, 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"a key twice":     twice,
		"count too small": append(binary.AppendUvarint(nil, 1), append(pair("a", "1"), pair("b", "2")...)...),
		"count too large": append(binary.AppendUvarint(nil, 3), append(pair("a", "1"), pair("b", "2")...)...),
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := decodeCacheData(b)
			require.False(t, ok)
			require.Nil(t, got)
		})
	}
}

func FuzzCacheData(f *testing.F) {
	f.Add(encodeCacheData(map[string]string{"a": "1"}))
	f.Add([]byte{2, 1, 'a', 0, 1, 'a', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		data, ok := decodeCacheData(b)
		if !ok {
			return
		}
		// What decodes re-encodes to a map that decodes the same.
		again, ok := decodeCacheData(encodeCacheData(data))
		require.True(t, ok)
		require.True(t, maps.Equal(data, again))
	})
}
