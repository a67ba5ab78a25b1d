package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenNew(t *testing.T) {
	out, stderr, code := runCLI(t, "", "token", "new", "--subject", "ci")
	require.Equal(t, 0, code, stderr)
	m := regexp.MustCompile(`^token: (sg_[A-Za-z0-9_-]+)\ntoken_sha256: ([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(m[1], "sg_"))
	require.NoError(t, err)
	require.Len(t, raw, 32)
	sum := sha256.Sum256([]byte(m[1]))
	require.Equal(t, hex.EncodeToString(sum[:]), m[2])
	require.Contains(t, stderr, "- name: ci\n      token_sha256: "+m[2])
	require.NotContains(t, stderr, m[1], "the hint never repeats the token")

	out2, _, code := runCLI(t, "", "token", "new", "-o", "json")
	require.Equal(t, 0, code)
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(out2), &v))
	require.NotEqual(t, m[1], v["token"], "every token is fresh")
	sum = sha256.Sum256([]byte(v["token"]))
	require.Equal(t, hex.EncodeToString(sum[:]), v["token_sha256"])

	_, stderr, code = runCLI(t, "", "token", "new", "-o", "yaml")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "--output")
}

func TestTokenHash(t *testing.T) {
	sum := sha256.Sum256([]byte("sg_existing"))
	out, _, code := runCLI(t, "sg_existing\n", "token", "hash")
	require.Equal(t, 0, code)
	require.Equal(t, "token_sha256: "+hex.EncodeToString(sum[:])+"\n", out)
	_, stderr, code := runCLI(t, "", "token", "hash")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "standard input is empty")
}
