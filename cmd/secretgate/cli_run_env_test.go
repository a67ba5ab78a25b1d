package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	content := "# a comment\n\nexport A=sg://p/s/k\nB = bare value # comment\nC='single ${X} \\n'\nD=\"double \\\"q\\\" \\n \\$HOME \\\\\"\nE=\nF=a#b\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	e := newChildEnv()
	e.addEnviron([]string{"A=from-env", "Z=z"})
	require.NoError(t, e.addEnvFile(path))
	require.Equal(t, []string{"A=sg://p/s/k", "Z=z", "B=bare value", `C=single ${X} \n`, "D=double \"q\" \n $HOME \\", "E=", "F=a#b"}, e.environ())
	require.Equal(t, path+":3", e.vars["A"].from)
}

func TestEnvFileErrors(t *testing.T) {
	for i, tc := range []struct{ content, want string }{
		{"NOEQUALS\n", ":1: want NAME=VALUE"},
		{"1X=v\n", ":1: want NAME=VALUE"},
		{"OK=1\nA-B=v\n", ":2: want NAME=VALUE"},
		{"K='unterminated hunter2x\n", ":1: K: unterminated single quote"},
		{"K=\"unterminated hunter2x\n", ":1: K: unterminated double quote"},
		{"K='v' hunter2x\n", ":1: K: text after the closing quote"},
	} {
		// Numbered: the temporary directory is named after the subtest.
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.env")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			err := newChildEnv().addEnvFile(path)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "hunter2x", "a value is never quoted")
			require.Equal(t, exitUsage, exitCode(err))
		})
	}
}

func TestEnvNameOfKey(t *testing.T) {
	require.Equal(t, "STRIPE_API_KEY", envNameOfKey("STRIPE_", "api-key"))
	require.Equal(t, "WEBHOOK_SECRET", envNameOfKey("", "webhook.secret"))
}

// A failure names the variables whose reference the gateway's message
// quotes, else every variable holding a reference.
func TestNamesFor(t *testing.T) {
	e := newChildEnv()
	e.set(envVar{name: "A", ref: "sg://p/s/a"})
	e.set(envVar{name: "B", ref: "sg://p/s/b"})
	e.set(envVar{name: "C", value: "plain"})
	require.Equal(t, `cannot resolve variable B=sg://p/s/b`, e.namesFor(errors.New(`not_found: key "b" (reference "sg://p/s/b")`)))
	require.Equal(t, `cannot resolve the references of A=sg://p/s/a, B=sg://p/s/b`, e.namesFor(errors.New("backend down")))
}
