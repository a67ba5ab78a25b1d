package gateway

// Vault's error envelope, {"errors":[...]}, and how the native errors map
// onto it: every error of the Vault API is answered by the native path
// (r.fail, the shared middleware), so that it is audited as there, and
// rewritten here on its way out.

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk/api"
)

// vaultErrors is Vault's error envelope.
type vaultErrors struct {
	Errors []string `json:"errors"`
}

// vaultAbort answers an error in Vault's envelope (Vault sends an empty
// list with 404).
func vaultAbort(c *gin.Context, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	c.AbortWithStatusJSON(status, vaultErrors{Errors: errs})
}

// Vault's own texts, which clients match on: the vault/api lifetime
// watcher looks for "permission denied", and the check-and-set text is the
// one Vault answers.
const (
	vaultPermissionDenied = "permission denied"
	vaultCASMismatch      = "check-and-set parameter did not match the current version"
)

// vaultStatus maps a native error to Vault's status and error texts. The
// native message stays, after Vault's text where clients look for one (in
// the same string: vault/api prints a list's entries without a separator).
func vaultStatus(status int, code, message string) (int, []string) {
	switch code {
	case api.CodeUnauthenticated, api.CodePermissionDenied:
		// Vault answers 403 for a missing, unknown or expired token too.
		return http.StatusForbidden, []string{vaultPermissionDenied + ": " + message}
	case api.CodeNotFound:
		// As Vault: 404 with no error text, whether the secret, the
		// version or the project (for a caller without a binding) is
		// missing.
		return http.StatusNotFound, []string{}
	case api.CodeVersionMismatch, api.CodeAlreadyExists:
		// Vault answers a failed check-and-set with 400 (412 means
		// "retry later" to vault/api, which would re-send the write).
		return http.StatusBadRequest, []string{vaultCASMismatch + ": " + message}
	}
	return status, []string{message}
}

// vaultEnvelope turns the native error envelope (written by r.fail and the
// shared middleware) into Vault's, so that every error of the Vault API
// takes the native path and is audited by it. Success answers, and errors
// already in Vault's shape, pass through.
func vaultEnvelope(c *gin.Context) {
	w := &vaultWriter{ResponseWriter: c.Writer}
	c.Writer = w
	c.Next()
	c.Writer = w.ResponseWriter
	if w.status == 0 {
		return
	}
	status, body := w.status, w.body.Bytes()
	var native api.ErrorBody
	if json.Unmarshal(body, &native) == nil && native.Error.Code != "" {
		var errs []string
		status, errs = vaultStatus(status, native.Error.Code, native.Error.Message)
		body, _ = json.Marshal(vaultErrors{Errors: errs})
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Writer.WriteHeader(status)
	_, _ = c.Writer.Write(body)
}

// vaultWriter holds back an error answer (status >= 400) until
// vaultEnvelope has rewritten it; anything else goes straight through.
type vaultWriter struct {
	gin.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *vaultWriter) WriteHeader(code int) {
	if code >= http.StatusBadRequest && !w.ResponseWriter.Written() {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *vaultWriter) WriteHeaderNow() {
	if w.status == 0 {
		w.ResponseWriter.WriteHeaderNow()
	}
}

func (w *vaultWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		return w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *vaultWriter) WriteString(s string) (int, error) {
	if w.status != 0 {
		return w.body.WriteString(s)
	}
	return w.ResponseWriter.WriteString(s)
}

func (w *vaultWriter) Status() int {
	if w.status != 0 {
		return w.status
	}
	return w.ResponseWriter.Status()
}

func (w *vaultWriter) Written() bool { return w.status != 0 || w.ResponseWriter.Written() }
