package vaulttest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartRestart(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	_, err := c.KVv2("secret").Put(t.Context(), "probe", map[string]any{"k": "v"})
	require.NoError(t, err)

	s.Restart(t)
	// Dev mode is in memory: the restarted server is empty but answers.
	_, err = c.KVv2("secret").Get(t.Context(), "probe")
	require.Error(t, err)

	out := s.CLI(t, "", "kv", "put", "-mount=secret", "probe", "k=v2")
	require.Contains(t, out, "version")
	s.Stop()
	s.Stop() // twice is fine
}

func TestStartTLS(t *testing.T) {
	s := StartTLS(t)
	require.Contains(t, s.Addr, "https://")
	_, err := s.Client(t).KVv2("secret").Put(t.Context(), "probe", map[string]any{"k": "v"})
	require.NoError(t, err)
	require.Contains(t, s.CLI(t, "", "kv", "get", "-mount=secret", "probe"), "k")
}
