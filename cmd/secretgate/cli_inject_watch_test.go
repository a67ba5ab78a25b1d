//go:build unix

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInjectWatchFlagErrors(t *testing.T) {
	t.Setenv(envToken, "")
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.tpl")
	require.NoError(t, os.WriteFile(tpl, []byte("x"), 0o600))
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"exec without watch", []string{"--exec", "true"}, "--exec applies to --watch"},
		{"signal without watch", []string{"--signal", "HUP"}, "--signal applies to --watch"},
		{"pid without watch", []string{"--pid", "1"}, "--pid applies to --watch"},
		{"exec and signal", []string{"--watch", "--exec", "true", "--signal", "HUP", "--pid", "1"}, "--exec and --signal/--pid exclude each other"},
		{"exec and pid", []string{"--watch", "--exec", "true", "--pid", "1"}, "--exec and --signal/--pid exclude each other"},
		{"signal without pid", []string{"--watch", "--signal", "HUP"}, "--signal needs --pid"},
		{"pid without signal", []string{"--watch", "--pid", "1"}, "--pid needs --signal"},
		{"bad pid", []string{"--watch", "--signal", "HUP", "--pid", "0"}, "--pid 0: want a process id"},
		{"unknown signal", []string{"--watch", "--signal", "NOPE", "--pid", "1"}, `--signal "NOPE": unknown signal`},
		{"empty exec", []string{"--watch", "--exec", " "}, "--exec: want a command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			root.SetArgs(append([]string{"inject", "-i", tpl, "-o", out}, tc.args...))
			err := root.Execute()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, exitUsage, exitCode(err))
			require.NoFileExists(t, out)
		})
	}
}
