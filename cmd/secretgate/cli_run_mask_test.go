package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMasker(t *testing.T) {
	const m = maskText
	tests := []struct {
		name   string
		values []string
		writes []string
		want   string
	}{
		{"one write", []string{"hunter22"}, []string{"pw=hunter22\n"}, "pw=" + m + "\n"},
		{"split across writes", []string{"hunter22"}, []string{"pw=hun", "te", "r22 ok"}, "pw=" + m + " ok"},
		{"byte by byte", []string{"s3cr3t-value"}, strings.Split("a s3cr3t-value b s3cr3t-value", ""), "a " + m + " b " + m},
		{"prefix at the end is flushed", []string{"hunter22"}, []string{"hunt"}, "hunt"},
		{"false start", []string{"abcdef"}, []string{"abcab", "cdef!"}, "abc" + m + "!"},
		{"longest wins", []string{"abcd", "abcdefgh"}, []string{"abcd", "efgh abcd."}, m + " " + m + "."},
		{"two values", []string{"alpha-1", "beta-22"}, []string{"alpha-1beta-22"}, m + m},
		{"short values stay", []string{"abc", "on"}, []string{"abc on"}, "abc on"},
		{"multi-line value", []string{"-----BEGIN\nKEY\n-----END"}, []string{"-----BEGIN\nK", "EY\n-----END\n"}, m + "\n"},
		{"no values", nil, []string{"anything"}, "anything"},
		{"unicode", []string{"pässwörd"}, []string{"x pä", "sswörd y"}, "x " + m + " y"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			mk := newMasker(&out, tc.values)
			for _, w := range tc.writes {
				n, err := mk.Write([]byte(w))
				require.NoError(t, err)
				require.Equal(t, len(w), n)
			}
			require.NoError(t, mk.Close())
			require.Equal(t, tc.want, out.String())
		})
	}
}

// Only a suffix that could start a value is held back.
func TestMaskerHoldsBackOnlyAPossibleStart(t *testing.T) {
	var out bytes.Buffer
	mk := newMasker(&out, []string{"hunter22"})
	_, err := mk.Write([]byte("line one\nhunt"))
	require.NoError(t, err)
	require.Equal(t, "line one\n", out.String())
	_, err = mk.Write([]byte("ing\n"))
	require.NoError(t, err)
	require.Equal(t, "line one\nhunting\n", out.String())
}
