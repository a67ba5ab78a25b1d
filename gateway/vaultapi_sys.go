package gateway

// The Vault routes outside the mount that clients call around their KV
// requests: the mount preflight of the vault CLI and consul-template, and
// the token self-service of ESO and vault/api. Like GET /v1/projects they
// read the caller's own identity, touch no secret and are not audited
// (refusals of the token are, as everywhere); revoke-self is.

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk/api"
)

// vaultMountInfo describes the mount as sys/internal/ui/mounts does: a KV
// engine of version 2, which is what the CLI and consul-template check.
type vaultMountInfo struct {
	Accessor              string            `json:"accessor"`
	Config                map[string]any    `json:"config"`
	Description           string            `json:"description"`
	ExternalEntropyAccess bool              `json:"external_entropy_access"`
	Local                 bool              `json:"local"`
	Options               map[string]string `json:"options"`
	Path                  string            `json:"path"`
	PluginVersion         string            `json:"plugin_version"`
	RunningPluginVersion  string            `json:"running_plugin_version"`
	RunningSha256         string            `json:"running_sha256"`
	SealWrap              bool              `json:"seal_wrap"`
	Type                  string            `json:"type"`
	UUID                  string            `json:"uuid"`
}

func (v *vaultAPI) mountInfo() vaultMountInfo {
	return vaultMountInfo{
		Accessor:             "kv_secretgate",
		Config:               map[string]any{"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
		Description:          "secretgate: <project>/<secret>",
		Options:              map[string]string{"version": "2"},
		Path:                 v.mount + "/",
		RunningPluginVersion: "secretgate",
		Type:                 "kv",
	}
}

// vaultPreflight is GET sys/internal/ui/mounts/<path>: the mount that
// serves path. Without a path, the list of mounts (one).
func (s *Server) vaultPreflight(c *gin.Context) {
	path := strings.Trim(c.Param("path"), "/")
	if path == "" {
		vaultOK(c, "", gin.H{"auth": gin.H{}, "secret": gin.H{s.vault.mount + "/": s.vault.mountInfo()}})
		return
	}
	if path != s.vault.mount && !strings.HasPrefix(path, s.vault.mount+"/") {
		first, _, _ := strings.Cut(path, "/")
		vaultAbort(c, http.StatusBadRequest, "no mount at "+quoteShort(first+"/")+": this gateway serves its KV v2 API at "+quoteShort(s.vault.mount+"/"))
		return
	}
	vaultOK(c, "", s.vault.mountInfo())
}

// vaultPolicies is what a token's policies list: the caller's roles,
// prefixed (a role is not a Vault policy; the name says whose it is).
func vaultPolicies(cfg *Config, subject string) []string {
	set := map[string]bool{}
	for _, b := range cfg.Bindings {
		if b.Subject == subject {
			set["secretgate-"+b.Role] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// vaultLookupSelf is GET auth/token/lookup-self: what ESO checks before
// it uses a token (type, ttl, expire_time). A token without an expiry (a
// static token whose subject has no expires_at) has ttl 0 and expire_time
// null, as Vault's root token; the token itself is not echoed.
func (s *Server) vaultLookupSelf(c *gin.Context) {
	cl := callerOf(c)
	var ttl int64
	var expire any
	if !cl.expires.IsZero() {
		ttl = max(0, int64(time.Until(cl.expires)/time.Second))
		expire = vaultTime(cl.expires)
	}
	meta := map[string]string{"subject": cl.subject}
	if cl.issuer != "" {
		meta["issuer"] = cl.issuer
	}
	vaultOK(c, "token", gin.H{
		"accessor": "", "creation_ttl": ttl, "display_name": "secretgate-" + cl.subject, "entity_id": "",
		"expire_time": expire, "explicit_max_ttl": 0, "meta": meta, "num_uses": 0, "orphan": true,
		"path": "auth/token/lookup-self", "policies": vaultPolicies(s.liveOf(c).cfg, cl.subject),
		"renewable": false, "ttl": ttl, "type": "service",
	})
}

// vaultRenewSelf is POST auth/token/renew-self. No token of the gateway can
// be renewed: a static token lives as its configuration says, a JWT and a
// login token until their expiry. Vault answers a non-renewable token the
// same way (400), which its clients handle by logging in again.
func (s *Server) vaultRenewSelf(c *gin.Context) {
	vaultAbort(c, http.StatusBadRequest, "lease is not renewable: secretgate tokens are not renewable; a login token lasts until its expire_time, then log in again")
}

// vaultRevokeSelf is POST auth/token/revoke-self: the end of a login token.
// Static tokens end when their hash leaves the configuration, JWTs at
// their exp; both are refused here.
func (s *Server) vaultRevokeSelf(c *gin.Context) {
	r := s.req(c)
	_, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, loginTokenPrefix) || !s.vault.logins.revoke(token) {
		r.fail(newAPIError(http.StatusBadRequest, api.CodeInvalidArgument,
			"only login tokens (auth/jwt/login, auth/kubernetes/login) can be revoked: a static token ends when its hash leaves the configuration, a JWT at its exp"))
		return
	}
	if r.auditSuccess() {
		c.Status(http.StatusNoContent)
	}
}
