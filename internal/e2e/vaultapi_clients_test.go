package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"
	"github.com/hashicorp/consul-template/manager"
	vault "github.com/hashicorp/vault/api"
	authkubernetes "github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/internal/oidctest"
	"github.com/secretgate/secretgate/internal/syncbuf"
	"github.com/secretgate/secretgate/internal/testenv"
)

// vaultClient is vault/api's client of the gateway, as an application
// builds it (no retries, so that a refusal is seen at once).
func vaultClient(t *testing.T, addr, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken(token)
	return c
}

func nativeSecret(t *testing.T, g *vaultGateway, project, name, token string) map[string]string {
	t.Helper()
	r := g.Do(t, "GET", "/v1/projects/"+project+"/secrets/"+name, token, nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var s struct {
		Data map[string]string `json:"data"`
	}
	r.JSON(t, &s)
	return s.Data
}

// vault/api's KVv2 helper, every method, against the gateway; what it
// reads equals what the native API reads, and a write through either API
// leaves the same audit records.
func TestVaultAPIGoKVv2(t *testing.T) {
	g := startVaultGateway(t, testenv.FileBackend("store", t.TempDir()), nil, "")
	ctx := context.Background()
	canary := randomCanary(t)
	kv := vaultClient(t, g.URL, g.token("admin")).KVv2("secret")

	s, err := kv.Put(ctx, "default/app", map[string]any{"user": "u", "password": canary})
	require.NoError(t, err)
	require.Equal(t, 1, s.VersionMetadata.Version)
	s, err = kv.Get(ctx, "default/app")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"user": "u", "password": canary}, s.Data)
	native := nativeSecret(t, g, "default", "app", g.token("admin"))
	require.Equal(t, map[string]string{"user": "u", "password": canary}, native, "both APIs read the same data")

	_, err = kv.Patch(ctx, "default/app", map[string]any{"extra": "x"})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "default/app", map[string]any{"user": "v"}, vault.WithCheckAndSet(1))
	require.ErrorContains(t, err, "check-and-set parameter did not match the current version")
	s, err = kv.GetVersion(ctx, "default/app", 1)
	require.NoError(t, err)
	require.Equal(t, canary, s.Data["password"])

	require.NoError(t, kv.PutMetadata(ctx, "default/app", vault.KVMetadataPutInput{CustomMetadata: map[string]any{"owner": "team-a"}}))
	require.NoError(t, kv.PatchMetadata(ctx, "default/app", vault.KVMetadataPatchInput{CustomMetadata: map[string]any{"env": "prod"}}))
	md, err := kv.GetMetadata(ctx, "default/app")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"owner": "team-a", "env": "prod"}, md.CustomMetadata)
	require.Equal(t, 4, md.CurrentVersion)
	vs, err := kv.GetVersionsAsList(ctx, "default/app")
	require.NoError(t, err)
	require.Len(t, vs, 4)

	s, err = kv.Rollback(ctx, "default/app", 1)
	require.NoError(t, err)
	require.Equal(t, 5, s.VersionMetadata.Version)
	s, err = kv.Get(ctx, "default/app")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"user": "u", "password": canary}, s.Data)

	_, err = kv.Put(ctx, "default/typed", map[string]any{"port": 5432})
	require.ErrorContains(t, err, "data.port")
	require.ErrorContains(t, kv.Undelete(ctx, "default/app", []int{1}), "not supported")
	require.ErrorContains(t, kv.Destroy(ctx, "default/app", []int{1}), "not supported")
	require.ErrorContains(t, kv.DeleteVersions(ctx, "default/app", []int{1}), "not supported")
	require.NoError(t, kv.Delete(ctx, "default/app"))
	_, err = kv.Get(ctx, "default/app")
	require.True(t, errors.Is(err, vault.ErrSecretNotFound), "%v", err)
	require.NoError(t, kv.DeleteMetadata(ctx, "default/app"), "deleting what is gone succeeds, as in Vault")

	// A write through either API is audited alike.
	before := len(g.AuditRecords(t))
	r := g.Do(t, "POST", "/v1/projects/default/secrets", g.token("editor"), map[string]any{"name": "n1", "data": map[string]string{"a": "1"}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	mid := len(g.AuditRecords(t))
	_, err = vaultClient(t, g.URL, g.token("editor")).KVv2("secret").Put(ctx, "default/n2", map[string]any{"a": "1"}, vault.WithCheckAndSet(0))
	require.NoError(t, err)
	recs := g.AuditRecords(t)
	strip := func(in []map[string]any) []map[string]any {
		for _, r := range in {
			delete(r, "time")
			delete(r, "request_id")
			delete(r, "secret")
		}
		return in
	}
	require.Equal(t, strip(recs[before:mid]), strip(recs[mid:]))
	require.Len(t, recs[mid:], 2)

	for name, text := range map[string]string{"stdout": g.Stdout(), "stderr": g.Stderr(), "audit": g.Audit()} {
		require.NotContains(t, text, canary, "the canary is in the server's %s", name)
	}
}

// The request sequence of the External Secrets Operator's Vault provider
// (providers/v1/vault in external-secrets, read for this test): log in with
// the Kubernetes auth method or the JWT one, validate the token with
// lookup-self as checkToken does, read the data with a version, read the
// metadata (metadataPolicy: Fetch), and revoke the token when the client
// closes. The provider does no mount preflight: the store names the KV
// version. PushSecret writes custom_metadata, then the data.
func TestVaultAPIExternalSecretsSequence(t *testing.T) {
	idp := oidctest.New(t)
	extra := fmt.Sprintf(`auth:
  jwt:
    - name: k8s
      issuer: %s
      discovery: true
      audiences: [vault]
      rules:
        - subject: reader
          claims: {"/kubernetes.io/namespace": default}
`, idp.URL)
	g := startVaultGateway(t, testenv.FileBackend("store", t.TempDir()), nil, extra)
	ctx := context.Background()
	canary := randomCanary(t)
	admin := vaultClient(t, g.URL, g.token("admin")).KVv2("secret")
	_, err := admin.Put(ctx, "default/db", map[string]any{"password": "old"})
	require.NoError(t, err)
	_, err = admin.Put(ctx, "default/db", map[string]any{"password": canary, "user": "app"})
	require.NoError(t, err)
	require.NoError(t, admin.PutMetadata(ctx, "default/db", vault.KVMetadataPutInput{CustomMetadata: map[string]any{"managed-by": "external-secrets"}}))

	sa := idp.Sign(idp.Claims("vault", 10*time.Minute, map[string]any{"sub": "system:serviceaccount:default:eso", "kubernetes.io": map[string]any{"namespace": "default"}}))
	for _, method := range []string{"kubernetes", "jwt"} {
		t.Run(method, func(t *testing.T) {
			c := vaultClient(t, g.URL, "")
			// setKubernetesAuthToken / requestTokenWithJwtAuth.
			var login *vault.Secret
			var err error
			if method == "kubernetes" {
				k, kerr := authkubernetes.NewKubernetesAuth("reader", authkubernetes.WithServiceAccountToken(sa), authkubernetes.WithMountPath("kubernetes"))
				require.NoError(t, kerr)
				login, err = c.Auth().Login(ctx, k)
				require.NoError(t, err)
			} else {
				login, err = c.Logical().WriteWithContext(ctx, "auth/jwt/login", map[string]any{"role": "reader", "jwt": sa})
				require.NoError(t, err)
				tok, err := login.TokenID()
				require.NoError(t, err)
				c.SetToken(tok)
			}
			require.NotEmpty(t, c.Token())
			require.Equal(t, []string{"secretgate-reader"}, login.Auth.Policies)
			require.False(t, login.Auth.Renewable)

			// checkToken.
			valid, expiry := esoCheckToken(t, c)
			require.True(t, valid)
			require.NotNil(t, expiry)
			require.WithinDuration(t, time.Now().Add(10*time.Minute), *expiry, 5*time.Second, "min(the JWT's exp, 1h)")

			// readSecret with ref.Version, as buildPath makes the path.
			sec, err := c.Logical().ReadWithDataWithContext(ctx, "secret/data/default/db", map[string][]string{"version": {"2"}})
			require.NoError(t, err)
			data, ok := sec.Data["data"].(map[string]any)
			require.True(t, ok, "%v", sec.Data)
			require.Equal(t, canary, data["password"])
			sec, err = c.Logical().ReadWithDataWithContext(ctx, "secret/data/default/db", map[string][]string{"version": {"1"}})
			require.NoError(t, err)
			require.Equal(t, "old", sec.Data["data"].(map[string]any)["password"])

			// readSecretMetadata: the system keys it keeps, and custom_metadata.
			sec, err = c.Logical().ReadWithDataWithContext(ctx, "secret/metadata/default/db", nil)
			require.NoError(t, err)
			for _, k := range []string{"created_time", "current_version", "delete_version_after"} {
				require.NotNil(t, sec.Data[k], k)
			}
			require.Equal(t, json.Number("3"), sec.Data["current_version"])
			require.Equal(t, map[string]any{"managed-by": "external-secrets"}, sec.Data["custom_metadata"])

			// A secret that does not exist reads as nil (NoSecretError).
			sec, err = c.Logical().ReadWithDataWithContext(ctx, "secret/data/default/missing", nil)
			require.NoError(t, err)
			require.Nil(t, sec)

			// revokeTokenIfValid.
			require.NoError(t, c.Auth().Token().RevokeSelfWithContext(ctx, ""))
			_, err = c.Auth().Token().LookupSelfWithContext(ctx)
			var re *vault.ResponseError
			require.ErrorAs(t, err, &re)
			require.Equal(t, http.StatusForbidden, re.StatusCode)
		})
	}

	// PushSecret onto a secret it manages: read, metadata read, the
	// custom_metadata write (unchanged: nothing written), the data write.
	c := vaultClient(t, g.URL, g.token("admin"))
	_, err = c.Logical().WriteWithContext(ctx, "secret/metadata/default/db", map[string]any{"custom_metadata": map[string]string{"managed-by": "external-secrets"}})
	require.NoError(t, err)
	_, err = c.Logical().WriteWithContext(ctx, "secret/data/default/db", map[string]any{"data": map[string]any{"password": "pushed"}})
	require.NoError(t, err)
	s, err := admin.Get(ctx, "default/db")
	require.NoError(t, err)
	require.Equal(t, 4, s.VersionMetadata.Version)
	require.Equal(t, map[string]any{"managed-by": "external-secrets"}, s.CustomMetadata)
	// PushSecret of a new secret writes its metadata first: there is no
	// metadata without data here, so that first push is refused (404).
	_, err = c.Logical().WriteWithContext(ctx, "secret/metadata/default/new", map[string]any{"custom_metadata": map[string]string{"managed-by": "external-secrets"}})
	var re *vault.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, http.StatusNotFound, re.StatusCode)

	for name, text := range map[string]string{"stdout": g.Stdout(), "stderr": g.Stderr(), "audit": g.Audit()} {
		require.NotContains(t, text, canary, "the canary is in the server's %s", name)
	}
}

// esoCheckToken is the provider's checkToken: a lookup-self whose type,
// ttl and expire_time decide whether the token is reused.
func esoCheckToken(t *testing.T, c *vault.Client) (bool, *time.Time) {
	t.Helper()
	resp, err := c.Auth().Token().LookupSelfWithContext(context.Background())
	require.NoError(t, err)
	require.NotNil(t, resp)
	typ, ok := resp.Data["type"].(string)
	require.True(t, ok, "type")
	if typ == "batch" {
		return false, nil
	}
	ttl, err := resp.Data["ttl"].(json.Number).Int64()
	require.NoError(t, err)
	expireTime, ok := resp.Data["expire_time"]
	require.True(t, ok, "no expire_time")
	if ttl < 60 && expireTime != nil {
		return false, nil
	}
	if expireTime == nil {
		return true, nil
	}
	et, err := time.Parse(time.RFC3339, expireTime.(string))
	require.NoError(t, err)
	return true, &et
}

// consul-template as a library (the engine of Vault Agent's templates,
// configured as the agent configures it: no token renewal, a static
// secret's re-read interval) renders a secret from the gateway, and renders
// it again after the secret changes.
func TestVaultAPIConsulTemplate(t *testing.T) {
	g := startVaultGateway(t, testenv.FileBackend("store", t.TempDir()), nil, "")
	canary := randomCanary(t)
	r := g.Do(t, "POST", "/v1/projects/default/secrets", g.token("admin"), map[string]any{"name": "db", "data": map[string]string{"password": canary}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)

	dir := t.TempDir()
	src, dst := filepath.Join(dir, "db.tpl"), filepath.Join(dir, "db.txt")
	require.NoError(t, os.WriteFile(src, []byte(`{{ with secret "secret/data/default/db" }}{{ .Data.data.password }}{{ end }}`), 0o600))
	// consul-template logs through the standard logger: keep it out of
	// the test's output, and look for the value in it.
	// Its goroutines may still log after the test reads this buffer.
	var ctlog syncbuf.Buffer
	log.SetOutput(&ctlog)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	conf := ctconfig.DefaultConfig()
	addr, tok, interval := g.URL, g.token("reader"), 500*time.Millisecond
	conf.Vault.Address, conf.Vault.Token = &addr, &tok
	conf.Vault.RenewToken = ctconfig.Bool(false)
	conf.Vault.DefaultLeaseDuration = &interval
	conf.Vault.SSL = &ctconfig.SSLConfig{Enabled: ctconfig.Bool(false)}
	conf.Templates = &ctconfig.TemplateConfigs{{Source: &src, Destination: &dst}}
	conf.Finalize()
	runner, err := manager.NewRunner(conf, false)
	require.NoError(t, err)
	go runner.Start()
	t.Cleanup(runner.Stop)

	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			if b, err := os.ReadFile(dst); err == nil && string(b) == want {
				return
			}
			select {
			case err := <-runner.ErrCh:
				t.Fatalf("consul-template: %v", err)
			case <-deadline:
				b, _ := os.ReadFile(dst)
				t.Fatalf("the template holds %d bytes, not the expected value", len(b))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFor(canary)
	r = g.Do(t, "PUT", "/v1/projects/default/secrets/db", g.token("admin"), map[string]any{"data": map[string]string{"password": "rotated-" + canary}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	waitFor("rotated-" + canary)
	require.NotContains(t, ctlog.String(), canary, "consul-template logged the value")
	for name, text := range map[string]string{"stdout": g.Stdout(), "stderr": g.Stderr(), "audit": g.Audit()} {
		require.NotContains(t, text, canary, "the canary is in the server's %s", name)
	}
}
