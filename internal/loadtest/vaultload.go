package main

// The vault scenario: the GET and PUT load of the gateway's scenarios, with
// the same vegeta attacker, clients and duration, against a Vault dev server
// (`vault server -dev`: in memory, no audit device, KV v2 at secret/) in the
// same run, so that the gateway's figures can be read as ratios to Vault's.
//
// Both sides hold the same secrets (same names, two keys each) and cycle
// through the same number of them, and a PUT sends the same body to both:
// {"data":{"username":...,"password":...}} is a gateway replace and a KV v2
// write alike.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

const (
	vaultGetName = "Vault dev GET (KV v2)"
	vaultPutName = "Vault dev PUT (KV v2, in memory)"
	// vaultMountWait bounds the wait for KV v2 at secret/ to take writes:
	// a fresh mount can refuse them briefly after the server says healthy.
	vaultMountWait = 30 * time.Second
)

// vaultLoad is a Vault dev server seeded for the scenario, with its targets.
type vaultLoad struct {
	v          *vaultServer
	gets, puts []vegeta.Target
}

// loadSecret is one secret of the load scenarios, on the gateway and on Vault.
type loadSecret struct {
	name string
	data map[string]string // what it is seeded with
	put  []byte            // the body every PUT of it sends
}

// loadSecrets returns n secrets named load-000...: two keys each, like the
// body of their PUTs.
func loadSecrets(n int) []loadSecret {
	out := make([]loadSecret, n)
	for i := range out {
		put, _ := json.Marshal(map[string]any{"data": map[string]string{"username": "svc", "password": randomHex(16)}})
		out[i] = loadSecret{
			name: fmt.Sprintf("load-%03d", i),
			data: map[string]string{"username": fmt.Sprintf("svc-%d", i), "password": randomHex(16)},
			put:  put,
		}
	}
	return out
}

// startVaultLoad starts Vault dev from bin with home as its HOME, writes
// secrets to KV v2 and checks one read before anything is timed. The caller
// stops it; on error it is already stopped.
func startVaultLoad(bin, home string, secrets []loadSecret) (_ *vaultLoad, err error) {
	v, err := startVault(bin, home)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			v.stop()
		}
	}()
	vl := &vaultLoad{v: v}
	h := http.Header{"X-Vault-Token": {v.rootToken}, "Content-Type": {"application/json"}}
	for i, s := range secrets {
		body, err := json.Marshal(map[string]any{"data": s.data})
		if err != nil {
			return nil, err
		}
		url := v.addr + "/v1/secret/data/" + s.name
		wait := time.Duration(0)
		if i == 0 {
			wait = vaultMountWait
		}
		if err := vaultWrite(url, h, body, wait); err != nil {
			return nil, fmt.Errorf("seed Vault %s: %w", s.name, err)
		}
		vl.gets = append(vl.gets, vegeta.Target{Method: http.MethodGet, URL: url, Header: h})
		vl.puts = append(vl.puts, vegeta.Target{Method: http.MethodPut, URL: url, Header: h, Body: s.put})
	}
	// A GET answering anything but the seeded secret would make the figures
	// meaningless.
	got, _, err := vaultRead(vl.gets[0].URL, v.rootToken)
	if err != nil {
		return nil, err
	}
	if got["username"] != secrets[0].data["username"] || got["password"] != secrets[0].data["password"] || len(got) != len(secrets[0].data) {
		return nil, fmt.Errorf("the Vault read of %s does not return the seeded keys (got keys %v)", secrets[0].name, keysOf(got))
	}
	return vl, nil
}

func (vl *vaultLoad) stop() { vl.v.stop() }

// vaultWrite writes a KV v2 secret, retrying for up to wait while the mount
// is not ready.
func vaultWrite(url string, h http.Header, body []byte, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header = h.Clone()
		resp, err := migrateClient.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
			// Vault's error bodies name paths and reasons, never values.
			err = fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// vaultRead returns the data and version of the latest version of a KV v2
// secret.
func vaultRead(url, token string) (map[string]string, int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := migrateClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	var out struct {
		Data struct {
			Data     map[string]string `json:"data"`
			Metadata struct {
				Version int `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return out.Data.Data, out.Data.Metadata.Version, nil
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
