package vault

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/internal/testenv"
	"github.com/secretgate/secretgate/internal/vaulttest"
	"github.com/secretgate/secretgate/sdk/client"
)

// Writes made directly in Vault, behind the gateway's back, reach watchers
// through the gateway's poller; writes through the gateway are announced
// once. The real binary, the real plugin, a real Vault.
func TestWatchSeesWritesMadeInVault(t *testing.T) {
	s := vaulttest.Start(t)
	gw := testenv.Start(t, testenv.Options{
		Backends: []testenv.Backend{{Name: "hcv", Plugin: "vault", WatchPollInterval: "200ms", Settings: map[string]string{
			"address": s.Addr,
			"token":   "${SG_TEST_VAULT_TOKEN}",
		}}},
		Projects: []testenv.Project{{Name: "payments", Backend: "hcv"}},
		Subjects: []testenv.Subject{{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}}},
		Env:      []string{"SG_TEST_VAULT_TOKEN=" + s.RootToken},
	})
	const canary = "CANARY-vault-direct-7f3e"
	c, err := client.New(gw.URL, gw.Token("admin"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := c.Watch(ctx, "payments", client.WatchOptions{})
	require.NoError(t, err)
	next := func() client.Event {
		t.Helper()
		select {
		case ev, ok := <-w.Events():
			require.True(t, ok, "the watch ended: %v", w.Err())
			return ev
		case <-time.After(15 * time.Second):
			t.Fatal("no event within 15s")
		}
		return client.Event{}
	}
	// The poller's first listing is a baseline; give it a round.
	time.Sleep(500 * time.Millisecond)

	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/db", "password="+canary)
	ev := next()
	require.Equal(t, client.Event{Kind: client.EventCreated, Project: "payments", Name: "db", Version: 1, Index: ev.Index}, ev)
	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/db", "password="+canary+"-2")
	ev = next()
	require.Equal(t, client.EventUpdated, ev.Kind)
	require.EqualValues(t, 2, ev.Version)

	// Through the gateway: announced at once, and only once.
	r := gw.Do(t, "PUT", "/v1/projects/payments/secrets/db", gw.Token("admin"), map[string]any{"data": map[string]string{"password": canary + "-3"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	ev = next()
	require.Equal(t, client.EventUpdated, ev.Kind)
	require.EqualValues(t, 3, ev.Version)
	time.Sleep(600 * time.Millisecond) // rounds that could repeat it

	s.CLI(t, "", "kv", "metadata", "delete", "-mount=secret", "secretgate/payments/db")
	ev = next()
	require.Equal(t, client.EventDeleted, ev.Kind, "%+v (a repeated update would come first)", ev)
	require.Equal(t, "db", ev.Name)

	// The poller's work shows in /metrics; the values never in the logs.
	r = gw.Do(t, "GET", "/metrics", "", nil)
	require.Contains(t, string(r.Body), `secretgate_watch_polls_total{backend="hcv",outcome="ok"}`)
	require.Contains(t, string(r.Body), `secretgate_backend_calls_total{backend="hcv",method="list"}`)
	cancel()
	gw.Stop(t)
	for what, text := range map[string]string{"audit log": gw.Audit(), "stdout": gw.Stdout(), "stderr": gw.Stderr()} {
		require.False(t, strings.Contains(text, canary), "the %s holds the value", what)
	}
}

// `secretgate run --watch` restarts its child with the new value after a
// write made directly in Vault: the gateway's poller turns it into an
// event, the CLI re-resolves and restarts.
func TestRunWatchRestartsOnAWriteMadeInVault(t *testing.T) {
	s := vaulttest.Start(t)
	gw := testenv.Start(t, testenv.Options{
		Backends: []testenv.Backend{{Name: "hcv", Plugin: "vault", WatchPollInterval: "200ms", Settings: map[string]string{
			"address": s.Addr,
			"token":   "${SG_TEST_VAULT_TOKEN}",
		}}},
		Projects: []testenv.Project{{Name: "payments", Backend: "hcv"}},
		Subjects: []testenv.Subject{{Name: "admin", Grants: []testenv.Grant{{Project: "*", Role: "admin"}}}},
		Env:      []string{"SG_TEST_VAULT_TOKEN=" + s.RootToken},
	})
	r := gw.Do(t, "POST", "/v1/projects/payments/secrets", gw.Token("admin"), map[string]any{"name": "db", "data": map[string]string{"password": "first-value"}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)

	cmd := exec.Command(testenv.Binary(t), "run", "--watch", "--no-mask", "--kill-timeout", "2s", "--", "sh", "-c", `echo "DB=$DB"; exec sleep 600`)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SECRETGATE_ADDR=" + gw.URL, "SECRETGATE_TOKEN=" + gw.Token("admin"), "DB=sg://payments/db/password"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for range lines {
		}
		_ = cmd.Wait()
	})
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			require.True(t, ok, "run ended; stderr: %s", stderr.String())
			return l
		case <-time.After(20 * time.Second):
			t.Fatalf("no output within 20s; stderr: %s", stderr.String())
		}
		return ""
	}
	require.Equal(t, "DB=first-value", next())
	time.Sleep(600 * time.Millisecond) // the poller's baseline round

	s.CLI(t, "", "kv", "put", "-mount=secret", "secretgate/payments/db", "password=second-value")
	require.Equal(t, "DB=second-value", next(), "restarted with the value written in Vault")
	require.NotContains(t, stderr.String(), "second-value")
}
