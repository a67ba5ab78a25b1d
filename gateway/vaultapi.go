package gateway

// Vault's KV v2 API (docs/vault-api.md): the routes, the parse of a path
// under the mount into an operation, and Vault's envelopes.
//
// A Vault request takes the native request path: the same authenticate and
// authorizeProject middleware, the same request helpers (r.allowed,
// r.readBackend, r.writeBackend, r.fail, r.auditSuccess), so it is decided
// and audited exactly as the native route that does the same thing. Only
// the shapes differ: vaultEnvelope turns the native error envelope that
// r.fail writes into Vault's {"errors":[...]} with Vault's status codes
// (vaultapi_errors.go).
//
//	<mount>/data/<project>/<secret>       vaultapi_data.go
//	<mount>/metadata/[<project>/[<secret>]] vaultapi_metadata.go
//	<mount>/{delete,undelete,destroy}/...  vaultapi_metadata.go (refused)
//	sys/internal/ui/mounts/<path>          vaultapi_sys.go
//	auth/token/{lookup,renew,revoke}-self  vaultapi_sys.go
//	auth/{jwt,kubernetes}/login            vaultapi_login.go

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// vaultAPI is the state of the Vault API of one Server.
type vaultAPI struct {
	mount  string
	logins *loginTokens
}

// methodList is Vault's custom LIST method; clients also send GET ?list=true.
const methodList = "LIST"

// vaultMethods are the methods served under the mount; the handler answers
// 405 for those an operation does not take.
var vaultMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, methodList}

// registerVaultAPI adds the Vault API's routes when vault_api is enabled.
func (s *Server) registerVaultAPI(e *gin.Engine) {
	if !s.cfg.VaultAPI.Enabled {
		return
	}
	s.vault = &vaultAPI{mount: s.cfg.VaultAPI.mount(), logins: newLoginTokens()}
	for _, m := range vaultMethods {
		e.Handle(m, "/v1/"+s.vault.mount+"/*path", noStore, vaultEnvelope, s.vaultParse, s.authenticate, s.vaultAuthorize, s.vaultDispatch)
	}
	authed := func(action string, h gin.HandlerFunc) []gin.HandlerFunc {
		return []gin.HandlerFunc{noStore, vaultEnvelope, withAction(action), s.vaultHeaders, s.authenticate, h}
	}
	e.GET("/v1/sys/internal/ui/mounts/*path", authed(ActionList, s.vaultPreflight)...)
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		e.Handle(m, "/v1/auth/token/lookup-self", authed(ActionList, s.vaultLookupSelf)...)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut} {
		e.Handle(m, "/v1/auth/token/renew-self", authed(ActionList, s.vaultRenewSelf)...)
		e.Handle(m, "/v1/auth/token/revoke-self", authed(actionRevoke, s.vaultRevokeSelf)...)
		for _, method := range []string{"jwt", "kubernetes"} {
			e.Handle(m, "/v1/auth/"+method+"/login", noStore, vaultEnvelope, withAction(actionLogin), s.vaultLoginToken, s.authenticate, s.vaultLogin)
		}
	}
}

// vaultKind is an operation of the mount.
type vaultKind int

const (
	vaultUnknown vaultKind = iota // answered 404 once authenticated
	vaultMethodNotAllowed
	vaultDataRead
	vaultDataWrite
	vaultDataPatch
	vaultDataDelete
	vaultListProjects
	vaultListSecrets
	vaultMetaRead
	vaultMetaWrite
	vaultMetaPatch
	vaultMetaDelete
	vaultVersionsDelete
	vaultVersionsUndelete
	vaultVersionsDestroy
)

// vaultOp is a request under the mount, parsed.
type vaultOp struct {
	kind    vaultKind
	project string
	name    string // everything after the project; validated as a name later
}

const ctxKeyVaultOp = "sg.vault_op"

// parseVaultOp maps a method and the path under the mount to an operation.
func parseVaultOp(method, path string, list bool) vaultOp {
	section, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	project, name, _ := strings.Cut(rest, "/")
	op := vaultOp{project: project, name: name}
	if method == methodList || method == http.MethodGet && list {
		if section != "metadata" {
			return vaultOp{kind: vaultMethodNotAllowed}
		}
		name = strings.TrimSuffix(name, "/")
		switch {
		case project == "" && name == "":
			return vaultOp{kind: vaultListProjects}
		case name == "":
			return vaultOp{kind: vaultListSecrets, project: project}
		}
		// Secret names hold no '/': there is nothing below a secret.
		return vaultOp{kind: vaultUnknown}
	}
	if project == "" || name == "" {
		// The mount's root and a project's holds no secret of its own.
		return vaultOp{kind: vaultUnknown}
	}
	write := method == http.MethodPost || method == http.MethodPut
	switch {
	case section == "data" && method == http.MethodGet:
		op.kind = vaultDataRead
	case section == "data" && write:
		op.kind = vaultDataWrite
	case section == "data" && method == http.MethodPatch:
		op.kind = vaultDataPatch
	case section == "data" && method == http.MethodDelete:
		op.kind = vaultDataDelete
	case section == "metadata" && method == http.MethodGet:
		op.kind = vaultMetaRead
	case section == "metadata" && write:
		op.kind = vaultMetaWrite
	case section == "metadata" && method == http.MethodPatch:
		op.kind = vaultMetaPatch
	case section == "metadata" && method == http.MethodDelete:
		op.kind = vaultMetaDelete
	case section == "delete" && write:
		op.kind = vaultVersionsDelete
	case section == "undelete" && write:
		op.kind = vaultVersionsUndelete
	case section == "destroy" && write:
		op.kind = vaultVersionsDestroy
	case section == "data" || section == "metadata" || section == "delete" || section == "undelete" || section == "destroy":
		return vaultOp{kind: vaultMethodNotAllowed}
	default:
		return vaultOp{kind: vaultUnknown}
	}
	return op
}

// action is the permission an operation is first checked and audited
// under; vaultDataWrite refines it (create, update, or both).
func (k vaultKind) action() string {
	switch k {
	case vaultDataRead:
		return ActionRead
	case vaultDataDelete, vaultMetaDelete, vaultVersionsDelete, vaultVersionsDestroy:
		return ActionDelete
	case vaultDataWrite, vaultDataPatch, vaultMetaWrite, vaultMetaPatch, vaultVersionsUndelete:
		return ActionUpdate
	}
	return ActionList
}

// vaultParse parses the path under the mount and hands the project and
// secret to authorizeProject and the handlers as the native routes' params.
func (s *Server) vaultParse(c *gin.Context) {
	op := parseVaultOp(c.Request.Method, c.Param("path"), c.Query("list") == "true")
	c.Set(ctxKeyVaultOp, op)
	c.Set(ctxKeyAction, op.kind.action())
	if op.project != "" {
		c.Params = append(c.Params, gin.Param{Key: "project", Value: op.project}, gin.Param{Key: "name", Value: op.name})
	}
	s.vaultHeaders(c)
}

// vaultHeaders takes Vault's token header as the bearer token, and refuses
// what would silently change the meaning of the request.
func (s *Server) vaultHeaders(c *gin.Context) {
	r := &request{s: s, c: c, action: c.GetString(ctxKeyAction)}
	if !s.vaultHeaderChecks(c, r) {
		return
	}
	h := c.Request.Header
	tokens := h.Values("X-Vault-Token")
	switch {
	case len(tokens) > 1:
		s.failAuth(r, invalidArg("X-Vault-Token", "the header was sent %d times; send it once", len(tokens)))
		return
	case len(tokens) == 1 && tokens[0] != "":
		bearer := "Bearer " + strings.TrimSpace(tokens[0])
		switch auth := h.Values("Authorization"); {
		case len(auth) == 0:
			h.Set("Authorization", bearer)
		case len(auth) != 1 || auth[0] != bearer:
			s.failAuth(r, invalidArg("X-Vault-Token", "differs from the Authorization header; send the token in one of them"))
			return
		}
	}
	c.Next()
}

// vaultHeaderChecks refuses the headers asking for what the gateway does
// not do, where ignoring them would change what the client gets.
func (s *Server) vaultHeaderChecks(c *gin.Context, r *request) bool {
	h := c.Request.Header
	if h.Get("X-Vault-Wrap-TTL") != "" {
		// Ignoring it would print a secret where a wrapping token was asked for.
		s.failAuth(r, invalidArg("X-Vault-Wrap-TTL", "response wrapping is not supported; send the request without it"))
		return false
	}
	if ns := strings.Trim(h.Get("X-Vault-Namespace"), "/"); ns != "" && ns != "root" {
		s.failAuth(r, invalidArg("X-Vault-Namespace", "namespaces are not supported: the gateway serves one namespace, root"))
		return false
	}
	return true
}

// vaultAuthorize runs authorizeProject for the operations on a project.
func (s *Server) vaultAuthorize(c *gin.Context) {
	if vaultOpOf(c).project == "" {
		c.Next()
		return
	}
	s.authorizeProject(c)
}

func vaultOpOf(c *gin.Context) vaultOp {
	v, _ := c.Get(ctxKeyVaultOp)
	op, _ := v.(vaultOp)
	return op
}

// vaultDispatch runs the operation's handler.
func (s *Server) vaultDispatch(c *gin.Context) {
	switch vaultOpOf(c).kind {
	case vaultDataRead:
		s.vaultDataRead(c)
	case vaultDataWrite:
		s.vaultDataWrite(c)
	case vaultDataPatch:
		s.vaultDataPatch(c)
	case vaultDataDelete:
		s.vaultDelete(c, true)
	case vaultListProjects:
		s.vaultListProjects(c)
	case vaultListSecrets:
		s.vaultListSecrets(c)
	case vaultMetaRead:
		s.vaultMetaRead(c)
	case vaultMetaWrite:
		s.vaultMetaWrite(c, false)
	case vaultMetaPatch:
		s.vaultMetaWrite(c, true)
	case vaultMetaDelete:
		s.vaultDelete(c, false)
	case vaultVersionsDelete, vaultVersionsUndelete, vaultVersionsDestroy:
		s.vaultVersionsOp(c)
	case vaultMethodNotAllowed:
		vaultAbort(c, http.StatusMethodNotAllowed, "unsupported operation")
	default:
		vaultAbort(c, http.StatusNotFound)
	}
}

// vaultResponse is Vault's envelope of every answer with a body.
type vaultResponse struct {
	RequestID     string     `json:"request_id"`
	LeaseID       string     `json:"lease_id"`
	Renewable     bool       `json:"renewable"`
	LeaseDuration int64      `json:"lease_duration"`
	Data          any        `json:"data"`
	WrapInfo      any        `json:"wrap_info"`
	Warnings      []string   `json:"warnings"`
	Auth          *vaultAuth `json:"auth"`
	MountType     string     `json:"mount_type"`
}

// vaultAuth is the auth block of a login answer.
type vaultAuth struct {
	ClientToken   string            `json:"client_token"`
	Accessor      string            `json:"accessor"`
	Policies      []string          `json:"policies"`
	TokenPolicies []string          `json:"token_policies"`
	Metadata      map[string]string `json:"metadata"`
	LeaseDuration int64             `json:"lease_duration"`
	Renewable     bool              `json:"renewable"`
	EntityID      string            `json:"entity_id"`
	TokenType     string            `json:"token_type"`
	Orphan        bool              `json:"orphan"`
	NumUses       int               `json:"num_uses"`
}

// vaultOK answers 200 with data in Vault's envelope. The request id is
// the gateway's own, as in X-Request-Id and the audit records.
func vaultOK(c *gin.Context, mountType string, data any, warnings ...string) {
	c.JSON(http.StatusOK, vaultResponse{RequestID: requestID(c), Data: data, Warnings: warnings, MountType: mountType})
}
