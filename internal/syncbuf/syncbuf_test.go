package syncbuf

import (
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, strings.Repeat("x", 800), b.String())

	limited := Buffer{Limit: 4}
	for range 3 {
		n, err := limited.Write([]byte("abc"))
		require.NoError(t, err)
		require.Equal(t, 3, n, "dropped writes still report success")
	}
	require.Equal(t, "abcabc", limited.String(), "kept until the limit was reached")
}
