package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/testenv"
)

// ifMatchRace sends writers concurrent PUTs of path, each with If-Match
// "1" and its own value (canary + index), and requires exactly one 200 and
// 412 for every other writer: check-and-set holds through the gateway.
func ifMatchRace(t *testing.T, srv *testenv.Server, path, token, canary string, writers int) {
	t.Helper()
	statuses := make([]int, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := srv.Try("PUT", path, token,
				map[string]any{"data": map[string]string{"api_key": fmt.Sprintf("%s-%d", canary, i)}}, "If-Match", `"1"`)
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
				return
			}
			statuses[i] = r.Status
		}()
	}
	wg.Wait()
	wins := 0
	for i, st := range statuses {
		switch st {
		case http.StatusOK:
			wins++
		case http.StatusPreconditionFailed:
		default:
			t.Errorf("writer %d: status %d", i, st)
		}
	}
	require.Equal(t, 1, wins, "statuses %v", statuses)
}
