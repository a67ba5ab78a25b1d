package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/cirequire"
)

// Each gateway scenario is a share of bare gin and, when its Vault
// counterpart ran, a multiple of Vault's req/s; a postgres row, when its file
// backend row ran, a multiple of that; nothing else gets a ratio to Vault or
// to the file backend.
func TestReportRatios(t *testing.T) {
	bare := result{name: "bare gin (fixed JSON)", rps: 20000, success: 1}
	vGet := result{name: vaultGetName, rps: 4000, success: 1}
	vPut := result{name: vaultPutName, rps: 2000, success: 1}
	get := result{name: getName, rps: 8000, success: 1, vs: vaultGetName}
	list := result{name: listName, rps: 3000, success: 1}
	put := result{name: putName, rps: 1000, success: 1, vs: vaultPutName}
	pgGet := result{name: pgGetName, rps: 6000, success: 1, vsFile: getName}
	pgList := result{name: pgListName, rps: 3600, success: 1, vsFile: listName}
	pgPut := result{name: pgPutName, rps: 500, success: 1, vsFile: putName}
	tests := []struct {
		name    string
		results []result
		want    map[string][3]string // row -> vs bare, vs Vault, vs file backend
	}{
		{
			name:    "everything",
			results: []result{vGet, get, pgGet, bare, list, pgList, put, pgPut, vPut},
			want: map[string][3]string{
				vaultGetName: {"20.0%", "-", "-"},
				getName:      {"40.0%", "2.00x", "-"},
				pgGetName:    {"30.0%", "-", "0.75x"},
				listName:     {"15.0%", "-", "-"},
				pgListName:   {"18.0%", "-", "1.20x"},
				putName:      {"5.0%", "0.50x", "-"},
				pgPutName:    {"2.5%", "-", "0.50x"},
				vaultPutName: {"10.0%", "-", "-"},
			},
		},
		{
			name:    "no Vault",
			results: []result{get, bare, put},
			want:    map[string][3]string{getName: {"40.0%", "-", "-"}, putName: {"5.0%", "-", "-"}},
		},
		{
			name:    "no bare gin",
			results: []result{vGet, get},
			want:    map[string][3]string{getName: {"-", "2.00x", "-"}},
		},
		{
			name:    "postgres without its file rows",
			results: []result{pgGet, bare, pgPut},
			want:    map[string][3]string{pgGetName: {"30.0%", "-", "-"}, pgPutName: {"2.5%", "-", "-"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			report(&out, tt.results, 32, time.Second, 100)
			rows := map[string][]string{}
			for _, line := range strings.Split(out.String(), "\n") {
				for _, r := range tt.results {
					if strings.HasPrefix(strings.TrimSpace(line), r.name) {
						f := strings.Fields(line)
						rows[r.name] = f[len(f)-3:]
					}
				}
			}
			for name, want := range tt.want {
				require.Equal(t, want[:], rows[name], "row %q in\n%s", name, out.String())
			}
		})
	}
}

// The Vault side of the load: the seeded secrets read back, the GET and PUT
// targets answer 2xx under concurrent load, a PUT writes a new version with
// the PUT body's data, and stop leaves no Vault behind.
func TestVaultLoad(t *testing.T) {
	bin, why := findVault("")
	if why != "" {
		cirequire.Unavailable(t, why)
	}
	secrets := loadSecrets(3)
	vl, err := startVaultLoad(bin, filepath.Join(t.TempDir(), "vault"), secrets)
	require.NoError(t, err)
	t.Cleanup(vl.stop)
	require.Len(t, vl.gets, 3)
	require.Len(t, vl.puts, 3)

	for i, s := range secrets {
		got, version, err := vaultRead(vl.gets[i].URL, vl.v.rootToken)
		require.NoError(t, err)
		require.Equal(t, s.data, got, s.name)
		require.Equal(t, 1, version, s.name)
	}
	for _, sc := range []scenario{{vaultGetName, vl.gets}, {vaultPutName, vl.puts}} {
		r := attack(sc, 500*time.Millisecond, 4)
		require.Positive(t, r.requests, sc.name)
		require.Equal(t, 1.0, r.success, "%s: codes %v, first error %q", sc.name, r.statusCodes, r.firstErrorMsg)
	}
	for i, s := range secrets {
		var put struct {
			Data map[string]string `json:"data"`
		}
		require.NoError(t, json.Unmarshal(s.put, &put))
		got, version, err := vaultRead(vl.gets[i].URL, vl.v.rootToken)
		require.NoError(t, err)
		require.Equal(t, put.Data, got, s.name)
		require.Greater(t, version, 1, s.name)
	}

	pid := vl.v.cmd.Process.Pid
	vl.stop()
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "Vault still running after stop")
}
