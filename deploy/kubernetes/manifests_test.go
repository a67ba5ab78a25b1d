package kubernetes_test

// The manifests of deploy/kubernetes are decoded strictly into the
// Kubernetes API types (an unknown or misspelt field, a duplicate key, a
// field in the wrong case all fail, as kubectl's server-side validation
// would), then checked for what the deployment promises: three replicas,
// the probes, the restricted security context, selectors that select, no
// secret in the ConfigMap, and a secretgate.yaml that the gateway's own
// parser accepts.

import (
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	yamlv3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

// gatewayContainer is the name of the container that runs the gateway.
const gatewayContainer = "gateway"

// object is one decoded YAML document.
type object struct {
	file string // relative to deploy/kubernetes
	obj  runtime.Object
}

// kustomization holds the fields of kustomization.yaml that these
// manifests use; decoding it strictly catches a misspelt one.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// set is everything under deploy/kubernetes, decoded.
type set struct {
	kust      kustomization
	objects   []object
	base      []object // the kustomization's resources
	templates []object // secrets/*.yaml
	examples  []object // examples/*.yaml
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decoder is the API machinery's YAML decoder in strict mode, knowing only
// the groups these manifests may use: an object of any other kind fails.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		require.NoError(t, add(scheme))
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}

// decodeFile decodes every document of a manifest file strictly.
func decodeFile(t *testing.T, dec runtime.Decoder, rel string) []object {
	t.Helper()
	data, err := os.ReadFile(rel)
	require.NoError(t, err)
	var out []object
	for i, doc := range docSep.Split(string(data), -1) {
		j, err := yaml.YAMLToJSON([]byte(doc))
		require.NoError(t, err, "%s, document %d", rel, i+1)
		if string(j) == "null" { // only comments
			continue
		}
		obj, _, err := dec.Decode([]byte(doc), nil, nil)
		require.NoError(t, err, "%s, document %d must decode strictly into the Kubernetes API types", rel, i+1)
		out = append(out, object{file: rel, obj: obj})
	}
	require.NotEmpty(t, out, "%s holds no object", rel)
	return out
}

func load(t *testing.T) *set {
	t.Helper()
	dec := decoder(t)
	s := &set{}
	data, err := os.ReadFile("kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(data, &s.kust), "kustomization.yaml")

	var files []string
	require.NoError(t, filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) && p != "kustomization.yaml" {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	}))
	sort.Strings(files)
	for _, f := range files {
		objs := decodeFile(t, dec, f)
		s.objects = append(s.objects, objs...)
		switch {
		case slices.Contains(s.kust.Resources, f):
			s.base = append(s.base, objs...)
		case strings.HasPrefix(f, "secrets/"):
			s.templates = append(s.templates, objs...)
		case strings.HasPrefix(f, "examples/"):
			s.examples = append(s.examples, objs...)
		default:
			t.Errorf("%s is neither a resource of kustomization.yaml nor under secrets/ or examples/", f)
		}
	}
	for _, r := range s.kust.Resources {
		require.FileExists(t, r, "kustomization.yaml lists %s", r)
	}
	return s
}

// only returns the one object of type T among objs.
func only[T runtime.Object](t *testing.T, objs []object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
		}
	}
	var zero T
	require.Len(t, found, 1, "exactly one %T", zero)
	return found[0]
}

func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func volume(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Volume {
	t.Helper()
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	t.Fatalf("no volume %q", name)
	return nil
}

// mountOf returns the mount of c under which file lies (the longest).
func mountOf(c *corev1.Container, file string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func TestKustomization(t *testing.T) {
	s := load(t)
	require.Equal(t, "kustomize.config.k8s.io/v1beta1", s.kust.APIVersion)
	require.Equal(t, "Kustomization", s.kust.Kind)
	require.Equal(t, "secretgate", s.kust.Namespace)
	for _, o := range s.base {
		// Applying the base must never replace a Secret: the real
		// key-encryption key would be overwritten by a placeholder.
		_, isSecret := o.obj.(*corev1.Secret)
		require.False(t, isSecret, "%s: a Secret must not be a resource of kustomization.yaml", o.file)
	}
	ns := only[*corev1.Namespace](t, s.base)
	require.Equal(t, s.kust.Namespace, ns.Name)
	require.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"])
	for _, o := range s.templates {
		sec, ok := o.obj.(*corev1.Secret)
		require.True(t, ok, "%s: only Secrets under secrets/", o.file)
		require.Equal(t, s.kust.Namespace, sec.Namespace, "%s: applied on its own, so it names the namespace", o.file)
	}
}

func TestDeployment(t *testing.T) {
	s := load(t)
	d := only[*appsv1.Deployment](t, s.base)
	spec := &d.Spec.Template.Spec

	require.NotNil(t, d.Spec.Replicas)
	require.EqualValues(t, 3, *d.Spec.Replicas)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	require.NoError(t, err)
	require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "the Deployment's selector selects its own pods")
	require.Equal(t, appsv1.RollingUpdateDeploymentStrategyType, d.Spec.Strategy.Type)
	require.Zero(t, d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue(), "a rollout never drops below three ready replicas")

	gw := container(t, spec, gatewayContainer)
	require.Equal(t, []string{"secretgate", "server", "--config", "/etc/secretgate/secretgate.yaml"}, gw.Command)
	require.Equal(t, "ghcr.io/secretgate/secretgate:VERSION", gw.Image, "the documented placeholder")

	t.Run("probes", func(t *testing.T) {
		port := ""
		for _, p := range gw.Ports {
			if p.ContainerPort == 8270 {
				port = p.Name
			}
		}
		require.NotEmpty(t, port, "a named port 8270")
		for _, tc := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"startup", gw.StartupProbe, "/healthz"},
			{"liveness", gw.LivenessProbe, "/healthz"},
			{"readiness", gw.ReadinessProbe, "/readyz"},
		} {
			require.NotNil(t, tc.probe, tc.name)
			g := tc.probe.HTTPGet
			require.NotNil(t, g, tc.name)
			require.Equal(t, tc.path, g.Path, tc.name)
			require.Equal(t, port, g.Port.String(), tc.name)
			// TLS is on in secretgate.yaml: a plain-HTTP probe would fail.
			require.Equal(t, corev1.URISchemeHTTPS, g.Scheme, tc.name)
		}
		// /readyz waits up to 2 s for the backends' pings.
		require.Greater(t, gw.ReadinessProbe.TimeoutSeconds, int32(2))
	})

	t.Run("shutdown", func(t *testing.T) {
		require.NotNil(t, gw.Lifecycle)
		require.NotNil(t, gw.Lifecycle.PreStop)
		require.NotNil(t, gw.Lifecycle.PreStop.Sleep)
		// The gateway drains for at most 20 s after SIGTERM
		// (cmd/secretgate: drainTimeout); the kubelet must not SIGKILL it first.
		require.NotNil(t, spec.TerminationGracePeriodSeconds)
		require.Greater(t, *spec.TerminationGracePeriodSeconds, gw.Lifecycle.PreStop.Sleep.Seconds+20)
	})

	t.Run("security context", func(t *testing.T) {
		psc := spec.SecurityContext
		require.NotNil(t, psc)
		require.NotNil(t, psc.SeccompProfile)
		require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
		all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
		require.NotEmpty(t, spec.InitContainers)
		for _, c := range all {
			t.Run(c.Name, func(t *testing.T) {
				sc := c.SecurityContext
				require.NotNil(t, sc)
				runAsNonRoot := firstBool(sc.RunAsNonRoot, psc.RunAsNonRoot)
				require.True(t, runAsNonRoot != nil && *runAsNonRoot, "runAsNonRoot")
				uid := sc.RunAsUser
				if uid == nil {
					uid = psc.RunAsUser
				}
				require.NotNil(t, uid, "a fixed UID: the image's USER is not relied on")
				require.NotZero(t, *uid)
				require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
				require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation: false")
				require.False(t, sc.Privileged != nil && *sc.Privileged, "privileged")
				require.NotNil(t, sc.Capabilities)
				require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
				require.Empty(t, sc.Capabilities.Add)
				if sc.SeccompProfile != nil {
					require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
				}
				require.NotEmpty(t, c.Resources.Requests.Cpu().String())
				require.False(t, c.Resources.Requests.Cpu().IsZero(), "cpu request")
				require.False(t, c.Resources.Requests.Memory().IsZero(), "memory request")
				require.False(t, c.Resources.Limits.Memory().IsZero(), "memory limit")
				require.False(t, c.Resources.Limits.Cpu().IsZero(), "cpu limit")
				for _, m := range c.VolumeMounts {
					v := volume(t, spec, m.Name)
					// Anything writable is an emptyDir; config and Secrets are read-only.
					if !m.ReadOnly {
						require.NotNil(t, v.EmptyDir, "%s: a writable mount must be an emptyDir", m.MountPath)
					}
					require.Empty(t, m.SubPath, "%s: a subPath mount never sees updates", m.MountPath)
				}
			})
		}
	})

	t.Run("service account", func(t *testing.T) {
		sa := only[*corev1.ServiceAccount](t, s.base)
		require.Equal(t, sa.Name, spec.ServiceAccountName)
		require.NotNil(t, sa.AutomountServiceAccountToken)
		require.False(t, *sa.AutomountServiceAccountToken)
		require.NotNil(t, spec.AutomountServiceAccountToken)
		require.False(t, *spec.AutomountServiceAccountToken)
		for _, v := range spec.Volumes {
			require.Nil(t, v.Projected, "volume %s: the gateway needs no service-account token", v.Name)
		}
	})

	t.Run("spread across nodes", func(t *testing.T) {
		var hostname bool
		for _, c := range spec.TopologySpreadConstraints {
			sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
			require.NoError(t, err)
			require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "the constraint on %s counts these pods", c.TopologyKey)
			if c.TopologyKey == "kubernetes.io/hostname" {
				hostname = true
				require.EqualValues(t, 1, c.MaxSkew)
			}
		}
		require.True(t, hostname, "a topology spread constraint over kubernetes.io/hostname")
	})

	t.Run("secret volumes", func(t *testing.T) {
		for _, v := range spec.Volumes {
			if v.Secret == nil {
				continue
			}
			sec := templateNamed(t, s, v.Secret.SecretName)
			require.NotNil(t, v.Secret.DefaultMode)
			// Root-owned files the pod's group (fsGroup) may read; YAML's
			// 0440 is octal for kubectl as for this decoder.
			require.EqualValues(t, 0o440, *v.Secret.DefaultMode, "volume %s", v.Name)
			for _, it := range v.Secret.Items {
				require.Contains(t, sec.StringData, it.Key, "volume %s", v.Name)
			}
		}
		require.NotNil(t, spec.SecurityContext.FSGroup, "the init container reads the Secrets through fsGroup")
	})
}

func TestServiceAndPDBSelectThePods(t *testing.T) {
	s := load(t)
	d := only[*appsv1.Deployment](t, s.base)
	pods := labels.Set(d.Spec.Template.Labels)
	gw := container(t, &d.Spec.Template.Spec, gatewayContainer)

	svc := only[*corev1.Service](t, s.base)
	require.NotEmpty(t, svc.Spec.Selector)
	require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(pods), "the Service selects the gateway's pods")
	require.Len(t, svc.Spec.Ports, 1)
	tp := svc.Spec.Ports[0].TargetPort
	var named bool
	for _, p := range gw.Ports {
		if p.Name == tp.String() || p.ContainerPort == tp.IntVal {
			named = true
		}
	}
	require.True(t, named, "the Service's targetPort %s is a port of the gateway", tp.String())

	pdb := only[*policyv1.PodDisruptionBudget](t, s.base)
	require.NotNil(t, pdb.Spec.MinAvailable)
	require.Equal(t, 2, pdb.Spec.MinAvailable.IntValue())
	require.Nil(t, pdb.Spec.MaxUnavailable)
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	require.False(t, sel.Empty(), "an empty selector would select every pod of the namespace")
	require.True(t, sel.Matches(pods), "the PodDisruptionBudget selects the gateway's pods")
}

// TestClientExample: the workload of examples/client.yaml can sign in as
// the subject secretgate.yaml gives it, and docs/deploy.md shows it as it is.
func TestClientExample(t *testing.T) {
	s := load(t)
	d := only[*appsv1.Deployment](t, s.examples)
	sa := only[*corev1.ServiceAccount](t, s.examples)
	spec := &d.Spec.Template.Spec
	require.Equal(t, sa.Name, spec.ServiceAccountName)
	require.Equal(t, sa.Namespace, d.Namespace)
	require.True(t, sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken)
	require.True(t, spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken)
	app := spec.Containers[0]
	env := map[string]string{}
	for _, e := range app.Env {
		env[e.Name] = e.Value
	}

	text, _ := configFile(t, s)
	var cfg struct {
		Auth struct {
			JWT []struct {
				Audiences []string `yaml:"audiences"`
				Rules     []struct {
					Subject string            `yaml:"subject"`
					Claims  map[string]string `yaml:"claims"`
				} `yaml:"rules"`
			} `yaml:"jwt"`
		} `yaml:"auth"`
	}
	require.NoError(t, yamlv3.Unmarshal([]byte(text), &cfg))
	require.Len(t, cfg.Auth.JWT, 1)
	issuer := cfg.Auth.JWT[0]
	require.Len(t, issuer.Rules, 1)
	require.Equal(t, d.Namespace, issuer.Rules[0].Claims["/kubernetes.io/namespace"])
	require.Equal(t, sa.Name, issuer.Rules[0].Claims["/kubernetes.io/serviceaccount/name"])

	var token *corev1.ServiceAccountTokenProjection
	var tokenMount string
	for _, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				token = src.ServiceAccountToken
				for _, m := range app.VolumeMounts {
					if m.Name == v.Name {
						tokenMount = m.MountPath
					}
				}
			}
		}
	}
	require.NotNil(t, token, "a projected serviceAccountToken")
	require.Contains(t, issuer.Audiences, token.Audience)
	require.Equal(t, "secretgate", token.Audience)
	require.Equal(t, path.Join(tokenMount, token.Path), env["SECRETGATE_TOKEN_FILE"])
	require.NotNil(t, token.ExpirationSeconds)
	require.GreaterOrEqual(t, *token.ExpirationSeconds, int64(600))

	svc := only[*corev1.Service](t, s.base)
	require.Equal(t, "https://"+svc.Name+"."+s.kust.Namespace+".svc:"+strconv.Itoa(int(svc.Spec.Ports[0].Port)), env["SECRETGATE_ADDR"])
	require.Equal(t, []string{"secretgate", "run", "--watch"}, app.Command[:3])

	example, err := os.ReadFile("examples/client.yaml")
	require.NoError(t, err)
	doc, err := os.ReadFile("../../docs/deploy.md")
	require.NoError(t, err)
	require.Contains(t, string(doc), "```yaml\n"+string(example)+"```", "docs/deploy.md shows examples/client.yaml as it is")
}
