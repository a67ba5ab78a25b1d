package vault

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/secretgate/secretgate/sdk"
)

// Auth method names, as accepted by the auth_method setting.
const (
	authToken      = "token"
	authAppRole    = "approle"
	authKubernetes = "kubernetes"
)

// defaultK8sTokenPath is where Kubernetes mounts a pod's service-account token.
const defaultK8sTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// config is the parsed form of the settings map. It holds credentials, so it
// is never logged or formatted as a whole.
type config struct {
	address     string
	mount       string
	prefix      string
	namespace   string
	maxVersions int

	authMethod string
	// token auth
	token     string
	tokenFile string
	// AppRole
	roleID       string
	secretID     string
	secretIDFile string
	appRoleMount string
	// Kubernetes
	k8sRole      string
	k8sTokenPath string
	k8sMount     string

	// TLS
	caCert        string
	clientCert    string
	clientKey     string
	tlsServerName string
	tlsSkipVerify bool
}

// knownSettings lists every setting, so that a typo is an error instead of a
// silently ignored option.
var knownSettings = map[string]bool{
	"address": true, "mount": true, "prefix": true, "namespace": true, "max_versions": true,
	"auth_method": true, "token": true, "token_file": true,
	"role_id": true, "secret_id": true, "secret_id_file": true, "approle_mount": true,
	"kubernetes_role": true, "kubernetes_token_path": true, "kubernetes_mount": true,
	"ca_cert": true, "client_cert": true, "client_key": true, "tls_server_name": true, "tls_skip_verify": true,
}

// parseConfig validates settings. getenv is os.Getenv outside of tests; only
// VAULT_TOKEN is read from the environment (as the token of last resort).
// Errors name the setting, never its value.
func parseConfig(settings map[string]string, getenv func(string) string) (*config, error) {
	var unknown []string
	for k := range settings {
		if !knownSettings[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, sdk.Invalid("settings", "unknown setting(s) %s", strings.Join(unknown, ", "))
	}
	get := func(k string) string { return strings.TrimSpace(settings[k]) }

	c := &config{
		address:       get("address"),
		mount:         strings.Trim(get("mount"), "/"),
		prefix:        strings.TrimLeft(get("prefix"), "/"),
		namespace:     strings.Trim(get("namespace"), "/"),
		authMethod:    get("auth_method"),
		token:         settings["token"],
		tokenFile:     get("token_file"),
		roleID:        get("role_id"),
		secretID:      settings["secret_id"],
		secretIDFile:  get("secret_id_file"),
		appRoleMount:  strings.Trim(get("approle_mount"), "/"),
		k8sRole:       get("kubernetes_role"),
		k8sTokenPath:  get("kubernetes_token_path"),
		k8sMount:      strings.Trim(get("kubernetes_mount"), "/"),
		caCert:        get("ca_cert"),
		clientCert:    get("client_cert"),
		clientKey:     get("client_key"),
		tlsServerName: get("tls_server_name"),
	}
	if c.address == "" {
		return nil, sdk.Invalid("settings.address", "is required (e.g. https://vault.example.com:8200)")
	}
	if !strings.HasPrefix(c.address, "http://") && !strings.HasPrefix(c.address, "https://") {
		return nil, sdk.Invalid("settings.address", "must start with http:// or https://")
	}
	if _, ok := settings["mount"]; !ok {
		c.mount = "secret"
	}
	if c.mount == "" {
		return nil, sdk.Invalid("settings.mount", "must name a KV v2 mount")
	}
	if _, ok := settings["prefix"]; !ok {
		c.prefix = "secretgate/"
	}
	// A prefix is a folder: "team-a" means "team-a/". An explicit empty
	// prefix puts projects at the top of the mount.
	if c.prefix != "" && !strings.HasSuffix(c.prefix, "/") {
		c.prefix += "/"
	}
	if strings.Contains(c.prefix, "//") {
		return nil, sdk.Invalid("settings.prefix", "must not contain an empty path segment")
	}
	if v := get("max_versions"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1_000_000 {
			return nil, sdk.Invalid("settings.max_versions", "must be an integer from 0 to 1000000")
		}
		c.maxVersions = n
	}
	if v := get("tls_skip_verify"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, sdk.Invalid("settings.tls_skip_verify", "must be true or false")
		}
		c.tlsSkipVerify = b
	}
	if (c.clientCert == "") != (c.clientKey == "") {
		return nil, sdk.Invalid("settings.client_cert", "client_cert and client_key go together")
	}
	for _, f := range []struct{ name, path string }{
		{"ca_cert", c.caCert}, {"client_cert", c.clientCert}, {"client_key", c.clientKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, sdk.Invalid("settings."+f.name, "cannot be read: %v", err)
		}
	}

	if err := c.resolveAuth(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// resolveAuth picks the auth method: auth_method when given, else AppRole
// when role_id is set, Kubernetes when kubernetes_role is set, else a token.
func (c *config) resolveAuth(getenv func(string) string) error {
	hasAppRole := c.roleID != "" || c.secretID != "" || c.secretIDFile != ""
	hasK8s := c.k8sRole != ""
	hasToken := c.token != "" || c.tokenFile != ""
	if c.authMethod == "" {
		switch {
		case hasAppRole:
			c.authMethod = authAppRole
		case hasK8s:
			c.authMethod = authKubernetes
		default:
			c.authMethod = authToken
		}
	}
	count := 0
	for _, b := range []bool{hasAppRole, hasK8s, hasToken} {
		if b {
			count++
		}
	}
	if count > 1 {
		return sdk.Invalid("settings", "settings of more than one auth method are set (token/token_file, role_id/secret_id, kubernetes_role): choose one")
	}

	switch c.authMethod {
	case authToken:
		if c.token != "" && c.tokenFile != "" {
			return sdk.Invalid("settings.token", "token and token_file are exclusive")
		}
		if c.token == "" && c.tokenFile == "" {
			c.token = strings.TrimSpace(getenv("VAULT_TOKEN"))
			if c.token == "" {
				return sdk.Invalid("settings.token", "no credentials: set token, token_file or VAULT_TOKEN, or use AppRole (role_id) or Kubernetes (kubernetes_role)")
			}
		}
	case authAppRole:
		if c.roleID == "" {
			return sdk.Invalid("settings.role_id", "is required for AppRole")
		}
		if (c.secretID == "") == (c.secretIDFile == "") {
			return sdk.Invalid("settings.secret_id", "AppRole needs exactly one of secret_id and secret_id_file")
		}
		if c.appRoleMount == "" {
			c.appRoleMount = "approle"
		}
	case authKubernetes:
		if c.k8sRole == "" {
			return sdk.Invalid("settings.kubernetes_role", "is required for Kubernetes auth")
		}
		if c.k8sTokenPath == "" {
			c.k8sTokenPath = defaultK8sTokenPath
		}
		if c.k8sMount == "" {
			c.k8sMount = "kubernetes"
		}
	default:
		return sdk.Invalid("settings.auth_method", "must be token, approle or kubernetes")
	}
	return nil
}

// canLogin reports whether the plugin can get a fresh token by itself.
func (c *config) canLogin() bool {
	return c.authMethod != authToken || c.tokenFile != ""
}

// Paths. Project names and secret names never contain "/", so
// <prefix><project>/<name> is injective.
func (c *config) dataPath(project, name string) string {
	return c.mount + "/data/" + c.prefix + project + "/" + name
}

func (c *config) metadataPath(project, name string) string {
	return c.mount + "/metadata/" + c.prefix + project + "/" + name
}

func (c *config) listPath(project string) string {
	return c.mount + "/metadata/" + c.prefix + project + "/"
}

func (c *config) mountConfigPath() string { return c.mount + "/config" }

// readSecretFile reads a credential file, trimming the trailing newline that
// editors and `kubectl create secret` leave. The error names the setting and
// the path, never the contents.
func readSecretFile(setting, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("vault: reading %s: %w", setting, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("vault: %s %s is empty", setting, path)
	}
	return s, nil
}
