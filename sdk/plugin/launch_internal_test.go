package plugin

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNonJSONLines(t *testing.T) {
	var out bytes.Buffer
	w := &nonJSONLines{w: &out}
	// go-plugin writes a line and its newline in separate calls.
	for _, chunk := range []string{
		`{"@level":"info","@message":"json goes to the logger"}`, "\n",
		"panic: plain text goes through", "\n",
		"  {indented json too}\n", "partial ", "line\n", "unterminated",
	} {
		n, err := w.Write([]byte(chunk))
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	require.Equal(t, "panic: plain text goes through\npartial line\n", out.String())
}

func TestClampInt(t *testing.T) {
	require.Equal(t, 7, clampInt(7))
	require.Equal(t, -1, clampInt(-1))
	require.Positive(t, clampInt(1<<62), "a huge page size must stay huge, not wrap")
}
