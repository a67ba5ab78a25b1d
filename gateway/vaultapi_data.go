package gateway

// <mount>/data/<project>/<secret>: read, write, merge patch, delete. Each
// takes the steps of the native handler doing the same (handlers.go,
// patch.go), with the same permission, audit records and events.

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// vaultVersionMeta is the metadata of one version, as KV v2 answers it
// (in a read under "metadata", alone after a write).
type vaultVersionMeta struct {
	CreatedTime    string            `json:"created_time"`
	CustomMetadata map[string]string `json:"custom_metadata"`
	DeletionTime   string            `json:"deletion_time"`
	Destroyed      bool              `json:"destroyed"`
	Version        int64             `json:"version"`
}

// vaultTime renders a time as Vault does; a time the backend does not keep
// is the zero time, which clients parse, where "" would fail them.
func vaultTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// customMetadata is the labels as custom_metadata: null when there are none.
func customMetadata(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	return labels
}

func versionMeta(created time.Time, labels map[string]string, version int64) vaultVersionMeta {
	return vaultVersionMeta{CreatedTime: vaultTime(created), CustomMetadata: customMetadata(labels), Version: version}
}

// vaultDataRead is GET data/<p>/<s>[?version=N]: the native GET.
func (s *Server) vaultDataRead(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	if v := c.Query("version"); v != "" {
		// Vault takes 0 as the latest version.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			r.fail(invalidArg("version", "must be a non-negative integer (0 or absent: the latest)"))
			return
		}
		r.version = n
	}
	if !r.allowed(ActionRead) {
		return
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	ctx = cacheReads(c, ctx)
	sec, err := b.Read(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret, Version: r.version})
	if err != nil {
		r.backendErr(err)
		return
	}
	created := sec.UpdatedAt
	if r.version > 0 {
		// A read by version carries the latest version's times: ask for
		// this one's. It is metadata only, and without it the answer
		// keeps the zero time rather than failing a read that succeeded.
		created = time.Time{}
		if vs, err := b.Versions(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret}); err == nil {
			for _, v := range vs {
				if v.Version == sec.Version {
					created = v.CreatedAt
				}
			}
		}
	}
	r.version = sec.Version
	if !r.auditSuccess() {
		return
	}
	staleHeader(c)
	data := sec.Data
	if data == nil {
		data = map[string]string{}
	}
	vaultOK(c, "kv", gin.H{"data": data, "metadata": versionMeta(created, sec.Labels, sec.Version)})
}

// vaultDataWrite is POST/PUT data/<p>/<s> {"data":{...},"options":{"cas":N}}.
// With cas 0 it is the native create; with cas N a replace with If-Match N.
// Without cas Vault creates or replaces: that needs secrets.create and
// secrets.update and is audited as secrets.update, as a native copy with
// overwrite (every built-in role grants both or neither).
func (s *Server) vaultDataWrite(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	body, ok := r.vaultBody("data", "options")
	if !ok {
		return
	}
	if body["data"] == nil {
		r.fail(invalidArg("data", "is required: an object of key/value strings"))
		return
	}
	data, _, e := vaultStrings("data", body["data"], false)
	if e == nil {
		e = vaultKeys(data, nil)
	}
	if e != nil {
		r.fail(e)
		return
	}
	if err := sdk.ValidateData(data); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return
	}
	cas, hasCAS, e := vaultCAS(body["options"])
	if e != nil {
		r.fail(e)
		return
	}
	req := sdk.WriteRequest{Project: r.route.Project, Name: r.secret, Data: data}
	switch {
	case hasCAS && cas == 0:
		r.action, req.Mode = ActionCreate, sdk.WriteCreate
		ok = r.allowed(ActionCreate)
	case hasCAS:
		r.action, req.Mode, req.ExpectedVersion = ActionUpdate, sdk.WriteReplace, cas
		ok = r.allowed(ActionUpdate)
	default:
		r.action, req.Mode = ActionUpdate, sdk.WriteUpsert
		ok = r.allowed(ActionCreate) && r.allowed(ActionUpdate)
	}
	if !ok || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Write(ctx, req)
	if err != nil {
		if hasCAS && cas > 0 && errors.Is(err, sdk.ErrNotFound) {
			// Vault: a check-and-set against a secret that does not exist
			// failed its check.
			err = sdk.VersionMismatch(r.route.Project, r.secret, cas, 0)
		}
		r.backendErr(err)
		return
	}
	kind := EventSecretUpdated
	if m.Version == 1 {
		kind = EventSecretCreated
	}
	s.publish(r.route.Project, kind, m)
	r.vaultWritten(m)
}

// vaultWritten audits and answers a write as KV v2 does: the new version's
// metadata, never a value.
func (r *request) vaultWritten(m sdk.Meta) {
	r.version = m.Version
	if r.auditSuccess() {
		vaultOK(r.c, "kv", versionMeta(m.UpdatedAt, m.Labels, m.Version))
	}
}

// vaultDataPatch is PATCH data/<p>/<s> with a JSON merge patch of the data:
// the native PATCH (a string sets a key, null removes it), with options.cas
// as its If-Match.
func (s *Server) vaultDataPatch(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() || !r.mergePatch() {
		return
	}
	body, ok := r.vaultBody("data", "options")
	if !ok {
		return
	}
	set, unset, e := vaultStrings("data", body["data"], true)
	if e == nil && len(set) == 0 && len(unset) == 0 {
		e = invalidArg("data", "the patch holds no key: set a key to a string, or to null to remove it")
	}
	if e == nil {
		e = vaultKeys(set, unset)
	}
	var expected int64
	if e == nil {
		expected, _, e = vaultCAS(body["options"])
	}
	if e != nil {
		r.fail(e)
		return
	}
	if !r.allowed(ActionUpdate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	unlock, err := s.lockSecret(ctx, r.route.Project, r.secret)
	if err != nil {
		r.backendErr(err)
		return
	}
	defer unlock()
	m, err := s.patchLoop(ctx, r, b, api.PatchRequest{Set: set, Unset: unset}, expected)
	if err != nil {
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretUpdated, m)
	r.vaultWritten(m)
}

// mergePatch requires the content type of a JSON merge patch, as Vault
// does (415 otherwise).
func (r *request) mergePatch() bool {
	mt, _, err := mime.ParseMediaType(r.c.GetHeader("Content-Type"))
	if err == nil && mt == "application/merge-patch+json" {
		return true
	}
	r.fail(newAPIError(http.StatusUnsupportedMediaType, api.CodeInvalidArgument, "invalid Content-Type: PATCH takes a JSON merge patch, application/merge-patch+json"))
	return false
}

// vaultDelete is DELETE data/<p>/<s> (withWarning) and DELETE
// metadata/<p>/<s>: the native DELETE, which removes the secret with every
// version, the only delete the model has. Vault's soft delete of the latest
// version cannot be undone here, which the data route's answer says. As in
// Vault, deleting what does not exist succeeds (204); the audit record
// says not_found.
func (s *Server) vaultDelete(c *gin.Context, withWarning bool) {
	r := s.req(c)
	if !r.secretName() || !r.allowed(ActionDelete) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	err := b.Delete(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret})
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		if r.auditOutcome(api.CodeNotFound) {
			c.Status(http.StatusNoContent)
		}
		return
	case err != nil:
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretDeleted, sdk.Meta{Name: r.secret})
	if !r.auditSuccess() {
		return
	}
	if !withWarning {
		c.Status(http.StatusNoContent)
		return
	}
	vaultOK(c, "kv", nil, "secretgate deleted the secret with every version: `vault kv undelete` cannot restore it (the model has no soft delete)")
}

// auditOutcome writes the outcome record of a request that is answered as
// a success although the operation found nothing to do (code says why); on
// false the answer is the 503 of a failed audit write.
func (r *request) auditOutcome(code string) bool {
	if err := r.s.audit.Write(r.record(PhaseOutcome, code)); err != nil {
		r.s.log.Error("audit write failed", "request_id", requestID(r.c), "error", err)
		abortWith(r.c, auditUnavailable(err))
		return false
	}
	return true
}
