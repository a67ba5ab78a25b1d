package kubernetes_test

// The gateway configuration of the ConfigMap: where its files come from,
// that it holds no secret, and that the gateway's parser accepts it.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	yamlv3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/secretgate/secretgate/gateway"
)

// configFile returns secretgate.yaml from the ConfigMap the gateway mounts,
// and the ConfigMap.
func configFile(t *testing.T, s *set) (string, *corev1.ConfigMap) {
	t.Helper()
	d := only[*appsv1.Deployment](t, s.base)
	cm := only[*corev1.ConfigMap](t, s.base)
	gw := container(t, &d.Spec.Template.Spec, gatewayContainer)
	file := gw.Command[slices.Index(gw.Command, "--config")+1]
	m := mountOf(gw, file)
	require.NotNil(t, m, "--config %s is on a volume", file)
	v := volume(t, &d.Spec.Template.Spec, m.Name)
	require.NotNil(t, v.ConfigMap, "--config %s is on the ConfigMap's volume", file)
	require.Equal(t, cm.Name, v.ConfigMap.Name)
	data, ok := cm.Data[strings.TrimPrefix(file, m.MountPath+"/")]
	require.True(t, ok, "the ConfigMap holds %s", file)
	return data, cm
}

// rawConfig is secretgate.yaml as plain YAML, independent of which fields
// gateway.Config knows yet.
func rawConfig(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yamlv3.Unmarshal([]byte(text), &m))
	return m
}

// fileSettings collects every value of a key ending in "_file", with its
// YAML path.
func fileSettings(v any, at string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && strings.HasSuffix(k, "_file") {
				out[at+"."+k] = s
				continue
			}
			fileSettings(x, at+"."+k, out)
		}
	case []any:
		for i, x := range v {
			fileSettings(x, at+"["+strconv.Itoa(i)+"]", out)
		}
	}
}

// initCopies returns the "copy SRC DST" lines of the init container's
// script: DST (a file the gateway reads) → SRC (a Secret's file).
func initCopies(t *testing.T, spec *corev1.PodSpec) (map[string]string, *corev1.Container) {
	t.Helper()
	require.Len(t, spec.InitContainers, 1)
	ic := &spec.InitContainers[0]
	script := strings.Join(append(append([]string{}, ic.Command...), ic.Args...), "\n")
	copies := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s*copy (\S+) (\S+)\s*$`).FindAllStringSubmatch(script, -1) {
		copies[m[2]] = m[1]
	}
	require.NotEmpty(t, copies, "the init container copies the Secrets' files")
	return copies, ic
}

func templateNamed(t *testing.T, s *set, name string) *corev1.Secret {
	t.Helper()
	for _, o := range s.templates {
		if sec, ok := o.obj.(*corev1.Secret); ok && sec.Name == name {
			return sec
		}
	}
	t.Fatalf("no Secret template named %q under secrets/", name)
	return nil
}

// TestConfigFilesComeFromVolumes: every file secretgate.yaml names is on a
// volume of the gateway container, and a file that holds a credential
// comes from a Secret, through the init container's copy when the backend
// checks its mode.
func TestConfigFilesComeFromVolumes(t *testing.T) {
	s := load(t)
	d := only[*appsv1.Deployment](t, s.base)
	spec := &d.Spec.Template.Spec
	gw := container(t, spec, gatewayContainer)
	text, _ := configFile(t, s)
	files := map[string]string{}
	fileSettings(rawConfig(t, text), "", files)
	require.NotEmpty(t, files)
	copies, ic := initCopies(t, spec)

	// sslrootcert in the DSN is a file too.
	pg := templateNamed(t, s, "secretgate-postgres")
	u, err := url.Parse(pg.StringData["dsn"])
	require.NoError(t, err)
	require.Equal(t, "verify-full", u.Query().Get("sslmode"), "the gateway verifies PostgreSQL's certificate and name")
	files["secretgate-postgres.dsn: sslrootcert"] = u.Query().Get("sslrootcert")

	for field, file := range files {
		m := mountOf(gw, file)
		require.NotNil(t, m, "%s: %s is on no volume of the gateway container", field, file)
		v := volume(t, spec, m.Name)
		switch {
		case v.ConfigMap != nil:
			require.NotContains(t, field, "key_file", "%s: a key never comes from the ConfigMap", field)
			require.NotContains(t, field, "dsn_file", "%s: a DSN never comes from the ConfigMap", field)
		case v.Secret != nil:
			sec := templateNamed(t, s, v.Secret.SecretName)
			require.Contains(t, sec.StringData, path.Base(file), "%s: the Secret %s has the key %s", field, sec.Name, path.Base(file))
		case v.EmptyDir != nil:
			src, ok := copies[file]
			require.True(t, ok, "%s: %s is on an emptyDir, so the init container must write it", field, file)
			im := mountOf(ic, src)
			require.NotNil(t, im, "the init container's source %s is on a volume", src)
			iv := volume(t, spec, im.Name)
			require.NotNil(t, iv.Secret, "%s comes from a Secret", src)
			sec := templateNamed(t, s, iv.Secret.SecretName)
			require.Contains(t, sec.StringData, path.Base(src), "the Secret %s has the key %s", sec.Name, path.Base(src))
			require.Equal(t, m.Name, mountName(ic, path.Dir(file)), "the init container writes %s to the volume the gateway reads", file)
			require.True(t, m.ReadOnly, "%s: the gateway reads the copies, it does not write them", m.MountPath)
		default:
			t.Fatalf("%s: %s is on volume %s, which is neither a ConfigMap, a Secret nor an emptyDir", field, file, m.Name)
		}
	}
	for _, field := range []string{".backends[0].settings.dsn_file", ".backends[0].settings.key_file", ".state.postgres.dsn_file"} {
		require.Contains(t, files, field)
	}
}

func mountName(c *corev1.Container, dir string) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			return m.Name
		}
	}
	return ""
}

var (
	urlPassword = regexp.MustCompile(`postgres(ql)?://[^@\s/]*:[^@\s/]*@`)
	hex64       = regexp.MustCompile(`\b[0-9a-fA-F]{64}\b`)
)

func TestNoSecretInConfigMap(t *testing.T) {
	s := load(t)
	text, cm := configFile(t, s)
	raw := rawConfig(t, text)

	for key, data := range cm.Data {
		require.NotRegexp(t, urlPassword, data, "%s: a password in a connection string", key)
		require.NotContains(t, data, "PRIVATE KEY", key)
		for _, line := range strings.Split(data, "\n") {
			if !strings.Contains(line, "token_sha256") {
				require.NotRegexp(t, hex64, line, "%s: 64 hex digits look like a key-encryption key", key)
			}
		}
		for _, o := range s.templates {
			sec := o.obj.(*corev1.Secret)
			for k, v := range sec.StringData {
				for _, line := range strings.Split(v, "\n") {
					if line = strings.TrimSpace(line); len(line) >= 8 {
						require.NotContains(t, data, line, "%s holds the value of %s/%s", key, sec.Name, k)
					}
				}
			}
		}
	}
	// Settings that would carry the value itself rather than a file's name.
	backends, _ := raw["backends"].([]any)
	require.NotEmpty(t, backends)
	for i, b := range backends {
		settings, _ := b.(map[string]any)["settings"].(map[string]any)
		for _, k := range []string{"dsn", "password", "token"} {
			require.NotContains(t, settings, k, "backends[%d].settings.%s belongs in a Secret", i, k)
		}
	}
	state, _ := raw["state"].(map[string]any)
	pg, _ := state["postgres"].(map[string]any)
	require.NotNil(t, pg, "state.postgres")
	require.NotContains(t, pg, "dsn", "state.postgres.dsn belongs in a Secret: use dsn_file")
}

func TestSecretTemplatesArePlaceholders(t *testing.T) {
	s := load(t)
	require.NotEmpty(t, s.templates)
	for _, o := range s.templates {
		sec := o.obj.(*corev1.Secret)
		require.Empty(t, sec.Data, "%s: placeholders in stringData, readable", o.file)
		require.NotEmpty(t, sec.StringData, o.file)
		for k, v := range sec.StringData {
			require.Contains(t, v, "REPLACE_ME", "%s: %s is marked as a placeholder", o.file, k)
		}
	}
	// A template applied by mistake must not start a gateway with a key
	// that everyone who read this repository knows.
	kek := strings.TrimSpace(templateNamed(t, s, "secretgate-kek").StringData["kek"])
	_, err := hex.DecodeString(kek)
	require.False(t, len(kek) == 64 && err == nil || len(kek) == 32, "the KEK placeholder must not be a usable key")
}

// TestAuditToPipe: the container's stdout is a pipe, and fsync on a pipe
// fails (EINVAL): under "mutations" or "always" every write would answer 503.
func TestAuditToPipe(t *testing.T) {
	s := load(t)
	text, _ := configFile(t, s)
	audit, _ := rawConfig(t, text)["audit"].(map[string]any)
	require.NotNil(t, audit)
	if p, _ := audit["path"].(string); strings.HasPrefix(p, "/dev/") {
		require.Equal(t, string(gateway.FsyncInterval), audit["fsync"], "audit.path %s is a pipe in a container", p)
	}
}

// TestConfigParses runs secretgate.yaml through the gateway's own parser,
// with the built-in plugins of the secretgate binary, on a copy of the
// pod's file system: each mount of the gateway container becomes a
// directory holding what the pod would find there (the ConfigMap's files,
// a TLS pair, the files the init container copies), so that every check
// the parser makes on a file sees a plausible one.
func TestConfigParses(t *testing.T) {
	s := load(t)
	text, cm := configFile(t, s)

	builtins := builtinPlugins(t)
	d := only[*appsv1.Deployment](t, s.base)
	spec := &d.Spec.Template.Spec
	gw := container(t, spec, gatewayContainer)
	copies, _ := initCopies(t, spec)
	certPEM, keyPEM := selfSigned(t)
	kek := make([]byte, 32)
	_, err := rand.Read(kek)
	require.NoError(t, err)
	fixtures := map[string][]byte{ // by the Secret key the file comes from
		"tls.crt": certPEM,
		"tls.key": keyPEM,
		"ca.crt":  certPEM,
		"dsn":     []byte("postgres://secretgate@127.0.0.1:1/secretgate?sslmode=disable\n"),
		"kek":     []byte(hex.EncodeToString(kek) + "\n"),
	}

	root := t.TempDir()
	mounts := append([]corev1.VolumeMount{}, gw.VolumeMounts...)
	// Longest first: /etc/secretgate-tls/ must not be taken for /etc/secretgate/.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].MountPath) > len(mounts[j].MountPath) })
	var pairs []string
	for _, m := range mounts {
		dir := filepath.Join(root, m.Name)
		require.NoError(t, os.MkdirAll(dir, 0o700))
		v := volume(t, spec, m.Name)
		switch {
		case v.ConfigMap != nil:
			for k, data := range cm.Data {
				require.NoError(t, os.WriteFile(filepath.Join(dir, k), []byte(data), 0o600))
			}
		case v.Secret != nil:
			for k := range templateNamed(t, s, v.Secret.SecretName).StringData {
				require.Contains(t, fixtures, k)
				require.NoError(t, os.WriteFile(filepath.Join(dir, k), fixtures[k], 0o600))
			}
		case v.EmptyDir != nil:
			for dst, src := range copies {
				if path.Dir(dst) == m.MountPath {
					require.Contains(t, fixtures, path.Base(src))
					require.NoError(t, os.WriteFile(filepath.Join(dir, path.Base(dst)), fixtures[path.Base(src)], 0o600))
				}
			}
		}
		pairs = append(pairs, m.MountPath+"/", filepath.ToSlash(dir)+"/")
	}
	// One pass: the temporary directories may themselves lie under a
	// mount path (/tmp).
	text = strings.NewReplacer(pairs...).Replace(text)

	noEnv := gateway.LoadOptions{
		Builtins:  builtins,
		LookupEnv: func(string) (string, bool) { return "", false },
		Environ:   func() []string { return nil },
	}
	cfg, err := gateway.ParseConfig([]byte(text), noEnv)
	require.NoError(t, err, "secretgate.yaml of the ConfigMap")
	require.True(t, cfg.TLS.Enabled())
	require.Len(t, cfg.Backends, 1)
	require.Equal(t, "postgres", cfg.Backends[0].Plugin)
}

// builtinPlugins reads the names the secretgate binary registers
// (cmd/secretgate/builtin_*.go), which this package cannot import.
func builtinPlugins(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../cmd/secretgate/builtin_*.go")
	require.NoError(t, err)
	re := regexp.MustCompile(`registerBuiltin\("([a-z0-9-]+)"`)
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllSubmatch(data, -1) {
			names = append(names, string(m[1]))
		}
	}
	require.Contains(t, names, "file", "the built-in plugins are registered as registerBuiltin(\"NAME\", ...) in cmd/secretgate/builtin_*.go")
	sort.Strings(names)
	return names
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "secretgate.secretgate.svc"},
		DNSNames:     []string{"secretgate.secretgate.svc"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	var c, k bytes.Buffer
	require.NoError(t, pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der}))
	require.NoError(t, pem.Encode(&k, &pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return c.Bytes(), k.Bytes()
}

func firstBool(vs ...*bool) *bool {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}
