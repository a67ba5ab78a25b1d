package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/gateway/gatewaytest"
)

// runCLI runs the secretgate command tree in process with the given stdin
// and returns stdout, stderr and the exit code main would use.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.Execute(); err != nil {
		errb.WriteString(errorText(root, err))
		return out.String(), errb.String(), exitCode(err)
	}
	return out.String(), errb.String(), 0
}

// useGateway points the client commands at a fresh in-process gateway
// (gatewaytest) with token.
func useGateway(t *testing.T, token string) *gatewaytest.Server {
	t.Helper()
	f := gatewaytest.Start(t)
	t.Setenv(envAddr, f.URL)
	t.Setenv(envToken, token)
	t.Setenv(envProject, "")
	t.Setenv(envCACert, "")
	return f
}

func TestParsePairs(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "pw.txt", "from-file\n")
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  map[string]string
		err   string
	}{
		{"literal", []string{"a=1", "b=x=y", "c="}, "", map[string]string{"a": "1", "b": "x=y", "c": ""}, ""},
		{"file and stdin", []string{"f=@" + file, "s=-"}, "from-stdin", map[string]string{"f": "from-file\n", "s": "from-stdin"}, ""},
		{"two stdin", []string{"a=-", "b=-"}, "x", nil, `key "b": only one key may read standard input`},
		{"no equals, value not echoed", []string{"a=1", "hunter2"}, "", nil, "argument 2: want key=value"},
		{"empty key", []string{"=v"}, "", nil, "argument 1: want key=value"},
		{"duplicate", []string{"a=1", "a=2"}, "", nil, `key "a" given twice`},
		{"missing file", []string{"a=@" + dir + "/nope"}, "", nil, `key "a"`},
		{"not utf-8", []string{"a=-"}, "\xff\xfe", nil, `key "a": value is not valid UTF-8`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePairs(tc.args, strings.NewReader(tc.stdin), "data")
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.NotContains(t, err.Error(), "hunter2")
				require.Equal(t, exitUsage, exitCode(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseLabels(t *testing.T) {
	l, err := parseLabels(nil)
	require.NoError(t, err)
	require.Nil(t, l)
	l, err = parseLabels([]string{"env=prod", "team="})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"env": "prod", "team": ""}, l)
	_, err = parseLabels([]string{"env"})
	require.ErrorContains(t, err, "want key=value")
	_, err = parseLabels([]string{"a=1", "a=2"})
	require.ErrorContains(t, err, `key "a" given twice`)
}

func TestCell(t *testing.T) {
	require.Equal(t, "plain value", cell("plain value"))
	require.Equal(t, `"a\nb"`, cell("a\nb"))
	require.Equal(t, `"a\tb"`, cell("a\tb"))
}
