package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
)

// watchGateway serves the events of project payments: the events in body,
// then an open stream. It records each request's URL and Last-Event-ID.
func watchGateway(t *testing.T, body string) (urls chan string) {
	t.Helper()
	urls = make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		urls <- r.URL.String() + " Last-Event-ID=" + r.Header.Get("Last-Event-ID")
		if r.URL.Path != "/v1/projects/payments/events" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"project not found"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, body)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	t.Setenv(envAddr, srv.URL)
	t.Setenv(envToken, "sg_test_token")
	t.Setenv(envProject, "")
	t.Setenv(envCACert, "")
	return urls
}

const watchEvents = "id: 1\nevent: secret.created\ndata: {\"project\":\"payments\",\"name\":\"db\",\"version\":1,\"index\":1}\n\n" +
	": keep-alive\n\n" +
	"id: 2\nevent: secret.updated\ndata: {\"project\":\"payments\",\"name\":\"db\",\"version\":3,\"index\":2}\n\n" +
	"id: 3\nevent: secret.deleted\ndata: {\"project\":\"payments\",\"name\":\"db\",\"index\":3}\n\n" +
	"id: 9\nevent: resync\ndata: {\"project\":\"payments\",\"index\":9}\n\n"

// watchUntilInterrupted runs the CLI until it has printed lines lines,
// then sends the process SIGINT, as Ctrl-C would.
func watchUntilInterrupted(t *testing.T, lines int, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	root.SetArgs(args)
	var out, errb syncbuf.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	done := make(chan error, 1)
	go func() { done <- root.Execute() }()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < lines {
		select {
		case err := <-done:
			t.Fatalf("watch ended early: %v; output %q", err, out.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "only %q after 5s", out.String())
		time.Sleep(10 * time.Millisecond)
	}
	// The command has received events, so its signal handler is in place
	// and SIGINT cancels the watch instead of killing the test.
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGINT))
	select {
	case err := <-done:
		if err != nil {
			return out.String(), exitCode(err)
		}
		return out.String(), 0
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not end on SIGINT")
		return "", -1
	}
}

func TestSecretWatch(t *testing.T) {
	urls := watchGateway(t, watchEvents)
	out, code := watchUntilInterrupted(t, 4, "secret", "watch", "-p", "payments", "d*")
	require.Equal(t, 0, code, "SIGINT ends the watch successfully")
	ts := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	require.Regexp(t, "^"+ts+` secret.created payments/db version 1
`+ts+` secret.updated payments/db version 3
`+ts+` secret.deleted payments/db
`+ts+` resync payments index 9 \(events were missed: re-read the secrets\)
$`, out)
	require.Equal(t, "/v1/projects/payments/events?secrets=d%2A Last-Event-ID=", <-urls)
}

func TestSecretWatchJSON(t *testing.T) {
	watchGateway(t, watchEvents)
	out, code := watchUntilInterrupted(t, 4, "secret", "watch", "-p", "payments", "-o", "json")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 4)
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		_, err := time.Parse(time.RFC3339, m["time"].(string))
		require.NoError(t, err)
		delete(m, "time")
		got = append(got, m)
	}
	require.Equal(t, []map[string]any{
		{"event": "secret.created", "project": "payments", "name": "db", "version": 1.0, "index": 1.0},
		{"event": "secret.updated", "project": "payments", "name": "db", "version": 3.0, "index": 2.0},
		{"event": "secret.deleted", "project": "payments", "name": "db", "index": 3.0},
		{"event": "resync", "project": "payments", "index": 9.0},
	}, got)
}

func TestSecretWatchErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown project", []string{"secret", "watch", "-p", "nope"}, exitNotFound, "not_found"},
		{"too many args", []string{"secret", "watch", "a", "b"}, exitUsage, "accepts at most 1 arg"},
		{"negative id", []string{"secret", "watch", "-p", "payments", "--last-event-id", "-1"}, exitUsage, "must not be negative"},
		{"bad output", []string{"secret", "watch", "-p", "payments", "-o", "yaml"}, exitUsage, "neither table nor json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			watchGateway(t, "")
			out, stderr, code := runCLI(t, "", tc.args...)
			require.Equal(t, tc.code, code, stderr)
			require.Contains(t, stderr, tc.msg)
			require.Empty(t, out)
		})
	}
}

func TestSecretWatchResumes(t *testing.T) {
	urls := watchGateway(t, watchEvents)
	_, code := watchUntilInterrupted(t, 1, "secret", "watch", "-p", "payments", "--last-event-id", "41")
	require.Equal(t, 0, code)
	require.Equal(t, "/v1/projects/payments/events Last-Event-ID=41", <-urls)
}
