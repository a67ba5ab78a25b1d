package gateway

// <mount>/metadata/...: listings (projects as folders, then a project's
// secrets), a secret's metadata and versions, custom_metadata as labels;
// and <mount>/{delete,undelete,destroy}/..., which the model cannot do.

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// vaultListProjects is LIST metadata/: the projects the caller has a
// binding on, as folders. Like GET /v1/projects it reads the caller's own
// bindings only, touches no secret, and is not audited.
func (s *Server) vaultListProjects(c *gin.Context) {
	subject := c.GetString(ctxKeySubject)
	keys := []string{}
	for _, rt := range s.routing.Projects() {
		if s.authzOf(c).HasAnyBinding(subject, rt.Project) {
			keys = append(keys, rt.Project+"/")
		}
	}
	vaultKeyList(c, keys)
}

// vaultKeyList answers a listing; Vault answers an empty one with 404.
func vaultKeyList(c *gin.Context, keys []string) {
	if len(keys) == 0 {
		vaultAbort(c, http.StatusNotFound)
		return
	}
	sort.Strings(keys)
	vaultOK(c, "kv", gin.H{"keys": keys})
}

// vaultListSecrets is LIST metadata/<p>/: the native listing, every page
// of it (Vault lists without paging), one audit record.
func (s *Server) vaultListSecrets(c *gin.Context) {
	r := s.req(c)
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	req := sdk.ListRequest{Project: r.route.Project, PageSize: sdk.MaxPageSize}
	cur := pageCursor{Backend: r.route.Backend}
	var keys []string
	for {
		metas, next, more, err := s.visiblePage(ctx, b, r, req, cur)
		if err != nil {
			r.backendErr(err)
			return
		}
		for _, m := range metas {
			keys = append(keys, m.Name)
		}
		if !more {
			break
		}
		cur = next
	}
	if r.auditSuccess() {
		vaultKeyList(c, keys)
	}
}

// vaultMetadata is KV v2's metadata of a secret.
type vaultMetadata struct {
	CASRequired        bool                             `json:"cas_required"`
	CreatedTime        string                           `json:"created_time"`
	CurrentVersion     int64                            `json:"current_version"`
	CustomMetadata     map[string]string                `json:"custom_metadata"`
	DeleteVersionAfter string                           `json:"delete_version_after"`
	MaxVersions        int                              `json:"max_versions"`
	OldestVersion      int64                            `json:"oldest_version"`
	UpdatedTime        string                           `json:"updated_time"`
	Versions           map[string]vaultVersionMetaShort `json:"versions"`
}

type vaultVersionMetaShort struct {
	CreatedTime  string `json:"created_time"`
	DeletionTime string `json:"deletion_time"`
	Destroyed    bool   `json:"destroyed"`
}

// vaultMetaRead is GET metadata/<p>/<s>: the native metadata and versions
// routes in one answer (both need secrets.list).
func (s *Server) vaultMetaRead(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() || !r.allowed(ActionList) {
		return
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	ctx = cacheReads(c, ctx)
	ref := sdk.Ref{Project: r.route.Project, Name: r.secret}
	m, err := b.Describe(ctx, ref)
	if err != nil {
		r.backendErr(err)
		return
	}
	vs, err := b.Versions(ctx, ref)
	if err != nil {
		r.backendErr(err)
		return
	}
	out := vaultMetadata{
		CreatedTime: vaultTime(m.CreatedAt), CurrentVersion: m.Version, CustomMetadata: customMetadata(m.Labels),
		DeleteVersionAfter: "0s", UpdatedTime: vaultTime(m.UpdatedAt), Versions: map[string]vaultVersionMetaShort{},
	}
	for _, v := range vs {
		out.Versions[strconv.FormatInt(v.Version, 10)] = vaultVersionMetaShort{CreatedTime: vaultTime(v.CreatedAt)}
	}
	if len(vs) > 0 && vs[0].Version > 1 {
		// Vault's oldest_version stays 0 until old versions are pruned.
		out.OldestVersion = vs[0].Version
	}
	r.version = m.Version
	if r.auditSuccess() {
		staleHeader(c)
		vaultOK(c, "kv", out)
	}
}

// vaultMetaWrite is POST/PUT (merge false: custom_metadata replaces the
// labels) and PATCH (merge: keys merge, null removes one) of
// metadata/<p>/<s>. Labels live on versions here, so a change of labels
// writes a new version holding the same data (as a native PATCH with only
// labels does); no change writes nothing. Vault's other settings are
// accepted at their defaults only: the backend decides them.
func (s *Server) vaultMetaWrite(c *gin.Context, merge bool) {
	r := s.req(c)
	if !r.secretName() || merge && !r.mergePatch() {
		return
	}
	body, ok := r.vaultBody("custom_metadata", "max_versions", "cas_required", "delete_version_after")
	if !ok {
		return
	}
	set, unset, e := vaultStrings("custom_metadata", body["custom_metadata"], merge)
	if e == nil {
		e = vaultMetaDefaults(body)
	}
	if e == nil && set != nil {
		e = vaultLabels(set)
	}
	if e != nil {
		r.fail(e)
		return
	}
	if !r.allowed(ActionUpdate) {
		return
	}
	if len(set) == 0 && len(unset) == 0 && (merge || set == nil) {
		s.vaultMetaNoChange(c, r)
		return
	}
	if !r.writable() {
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
	relabel := func(cur map[string]string) map[string]string {
		if !merge {
			return set
		}
		out := maps.Clone(cur)
		if out == nil {
			out = map[string]string{}
		}
		maps.Copy(out, set)
		for _, k := range unset {
			delete(out, k)
		}
		return out
	}
	m, changed, err := s.relabelLoop(ctx, r, b, relabel)
	if err != nil {
		r.backendErr(err)
		return
	}
	if changed {
		s.publish(r.route.Project, EventSecretUpdated, m)
	}
	r.version = m.Version
	if r.auditSuccess() {
		c.Status(http.StatusNoContent)
	}
}

// vaultMetaNoChange answers a metadata write that changes nothing (only
// default settings): 204 for an existing secret, audited as the update it
// was asked as; 404 otherwise. secretgate has no metadata without a
// version, so it cannot create a secret's metadata before its data.
func (s *Server) vaultMetaNoChange(c *gin.Context, r *request) {
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Describe(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret})
	if err != nil {
		r.backendErr(err)
		return
	}
	r.version = m.Version
	if r.auditSuccess() {
		c.Status(http.StatusNoContent)
	}
}

// relabelLoop writes the latest version's data again with the labels
// relabel makes of the current ones, by check-and-set, retrying (as
// patchLoop does) when another writer got there first. changed is false
// when the labels were already those: nothing is written.
func (s *Server) relabelLoop(ctx context.Context, r *request, b sdk.Backend, relabel func(map[string]string) map[string]string) (sdk.Meta, bool, error) {
	ref := sdk.Ref{Project: r.route.Project, Name: r.secret}
	changed := false
	m, err := retryCAS(ctx, r.secret, "attempts to change its custom_metadata", 0, func() (sdk.Meta, error) {
		cur, err := b.Read(ctx, ref)
		if err != nil {
			return sdk.Meta{}, err
		}
		labels := relabel(cur.Labels)
		if err := sdk.ValidateLabels(labels); err != nil {
			return sdk.Meta{}, vaultLabelError(err)
		}
		if len(labels) == len(cur.Labels) && maps.Equal(labels, cur.Labels) {
			changed = false
			return cur.Meta, nil
		}
		changed = true
		return b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: cur.Data, Labels: labels, Mode: sdk.WriteReplace, ExpectedVersion: cur.Version})
	})
	if err != nil {
		return sdk.Meta{}, false, err
	}
	return m, changed, nil
}

// vaultLabels checks custom_metadata as labels, naming custom_metadata.
func vaultLabels(labels map[string]string) *apiError {
	if err := sdk.ValidateLabels(labels); err != nil {
		return vaultLabelError(err)
	}
	return nil
}

func vaultLabelError(err error) *apiError {
	var fe *sdk.FieldError
	if !errors.As(err, &fe) {
		return mapBackendError(err, opContext{})
	}
	return invalidArg("custom_metadata"+strings.TrimPrefix(fe.Field, "labels"), "%s (custom_metadata is stored as the secret's labels)", fe.Reason)
}

// vaultMetaDefaults accepts Vault's per-secret settings only at their
// defaults, which vault/api's PutMetadata always sends: the backend, not
// the caller, decides how many versions are kept and whether a write must
// name a version.
func vaultMetaDefaults(body map[string]json.RawMessage) *apiError {
	if raw, ok := body["max_versions"]; ok {
		if n, ok := vaultInt(raw); !ok || n != 0 {
			return invalidArg("max_versions", "only 0 (the default) is accepted: how many versions are kept is the backend's setting")
		}
	}
	if raw, ok := body["cas_required"]; ok {
		var v bool
		if json.Unmarshal(raw, &v) != nil || v {
			return invalidArg("cas_required", "only false is accepted: check-and-set is per write here (options.cas)")
		}
	}
	if raw, ok := body["delete_version_after"]; ok {
		var v string
		if json.Unmarshal(raw, &v) != nil {
			if n, ok := vaultInt(raw); ok && n == 0 {
				return nil
			}
			return invalidArg("delete_version_after", "must be a duration string")
		}
		if d, err := time.ParseDuration(v); v != "" && (err != nil || d != 0) {
			return invalidArg("delete_version_after", "only 0s (never) is accepted: versions are not deleted on a timer")
		}
	}
	return nil
}

// vaultVersionsOp refuses POST {delete,undelete,destroy}/<p>/<s>: the model
// deletes a secret with every version and keeps nothing to restore.
func (s *Server) vaultVersionsOp(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	var msg string
	switch vaultOpOf(c).kind {
	case vaultVersionsDelete:
		msg = "deleting single versions is not supported: a secret keeps its versions until it is deleted whole (DELETE data/ or metadata/, `vault kv delete` or `vault kv metadata delete`)"
	case vaultVersionsUndelete:
		msg = "undelete is not supported: a deleted secret is gone with every version, nothing is kept to restore"
	default:
		msg = "destroying single versions is not supported: a secret keeps its versions until it is deleted whole (`vault kv metadata delete`)"
	}
	r.fail(newAPIError(http.StatusBadRequest, api.CodeInvalidArgument, "%s", msg))
}
