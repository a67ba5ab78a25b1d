package gateway

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// The secret routes but PATCH (patch.go): validate, check the action,
// call the backend, audit, answer.

func (s *Server) list(c *gin.Context) {
	r := s.req(c)
	q := c.Request.URL.Query()
	req := sdk.ListRequest{Project: r.route.Project, Prefix: q.Get("prefix")}
	if ps := q.Get("page_size"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > sdk.MaxPageSize {
			r.fail(invalidArg("page_size", "must be an integer from 1 to %d", sdk.MaxPageSize))
			return
		}
		req.PageSize = n
	}
	if err := sdk.ValidateList(req); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return
	}
	cur := pageCursor{Backend: r.route.Backend}
	if tok := q.Get("page_token"); tok != "" {
		var err error
		if cur, err = s.pages.open(tok, r.subject, r.route.Project, req.Prefix); err != nil {
			r.fail(mapBackendError(err, opContext{}))
			return
		}
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	metas, next, more, err := s.visiblePage(ctx, b, r, req, cur)
	if err != nil {
		r.backendErr(err)
		return
	}
	var token string
	if more {
		if token, err = s.pages.seal(next, r.subject, r.route.Project, req.Prefix); err != nil {
			r.backendErr(err)
			return
		}
	}
	if !r.auditSuccess() {
		return
	}
	bp := listBufs.Get().(*[]byte)
	buf, ok := appendSecretList((*bp)[:0], metas, token)
	if !ok {
		// A time encoding/json refuses: answer (or fail) exactly as it does.
		out := api.SecretList{Secrets: make([]api.Metadata, 0, len(metas)), NextPageToken: token}
		for _, m := range metas {
			out.Secrets = append(out.Secrets, toMetadata(m))
		}
		c.JSON(http.StatusOK, out)
	} else {
		c.Render(http.StatusOK, encodedJSON(buf))
	}
	if cap(buf) <= maxPooledListBuf {
		*bp = buf
		listBufs.Put(bp)
	}
}

func (s *Server) get(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	if v := c.Query("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			r.fail(invalidArg("version", "must be a positive integer"))
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
	r.version = sec.Version
	if !r.auditSuccess() {
		return
	}
	setETag(c, sec.Version)
	staleHeader(c)
	buf, ok := appendSecret(make([]byte, 0, 512), &sec)
	if !ok {
		// A time encoding/json refuses: answer (or fail) exactly as it does.
		data := sec.Data
		if data == nil {
			data = map[string]string{}
		}
		c.JSON(http.StatusOK, api.Secret{Metadata: toMetadata(sec.Meta), Data: data})
		return
	}
	c.Render(http.StatusOK, encodedJSON(buf))
	clear(buf) // the response writer holds its own copy
}

func (s *Server) metadata(c *gin.Context) {
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
	m, err := b.Describe(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret})
	if err != nil {
		r.backendErr(err)
		return
	}
	r.version = m.Version
	if !r.auditSuccess() {
		return
	}
	setETag(c, m.Version)
	staleHeader(c)
	renderMetadata(c, http.StatusOK, &m)
}

// renderMetadata answers status with the JSON of toMetadata(*m), written
// directly (wirejson.go).
func renderMetadata(c *gin.Context, status int, m *sdk.Meta) {
	if buf, ok := appendMetadata(nil, m); ok {
		c.Render(status, encodedJSON(buf))
	} else {
		c.JSON(status, toMetadata(*m)) // fails as encoding/json does
	}
}

func (s *Server) versions(c *gin.Context) {
	r := s.req(c)
	withKeys, ok := r.boolQuery("keys")
	if !ok || !r.secretName() || !r.allowed(ActionList) {
		return
	}
	b, ctx, cancel, ok := r.readBackend()
	if !ok {
		return
	}
	defer cancel()
	vs, err := b.Versions(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret})
	if err != nil {
		r.backendErr(err)
		return
	}
	out := api.VersionList{Versions: make([]api.Version, 0, len(vs))}
	for _, v := range vs {
		out.Versions = append(out.Versions, api.Version{Version: v.Version, CreatedAt: utc(v.CreatedAt)})
	}
	if withKeys && !s.versionKeys(ctx, r, b, out.Versions) {
		return
	}
	if r.auditSuccess() {
		c.JSON(http.StatusOK, out)
	}
}

// validateWrite checks data and labels, naming fields.
func (r *request) validateWrite(body api.WriteRequest) bool {
	if body.Data == nil {
		r.fail(invalidArg("data", "is required: an object of key/value strings"))
		return false
	}
	if err := sdk.ValidateData(body.Data); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	if err := sdk.ValidateLabels(body.Labels); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	return true
}

// written audits and answers a successful write.
func (r *request) written(m sdk.Meta, status int) {
	r.version = m.Version
	if !r.auditSuccess() {
		return
	}
	setETag(r.c, m.Version)
	if status == http.StatusCreated {
		r.c.Header("Location", "/v1/projects/"+m.Project+"/secrets/"+m.Name)
	}
	renderMetadata(r.c, status, &m)
}

func (s *Server) create(c *gin.Context) {
	r := s.req(c)
	var body api.WriteRequest
	if !r.decodeJSON(&body) {
		return
	}
	if body.Name == "" {
		r.fail(invalidArg("name", "is required"))
		return
	}
	if err := sdk.ValidateName(body.Name); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return
	}
	r.secret = body.Name
	if !r.validateWrite(body) || !r.allowed(ActionCreate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Write(ctx, sdk.WriteRequest{Project: r.route.Project, Name: r.secret, Data: body.Data, Labels: body.Labels, Mode: sdk.WriteCreate})
	if err != nil {
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretCreated, m)
	r.written(m, http.StatusCreated)
}

func (s *Server) replace(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	var body api.WriteRequest
	if !r.decodeJSON(&body) {
		return
	}
	if body.Name != "" && body.Name != r.secret {
		r.fail(invalidArg("name", "differs from the name in the path"))
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.validateWrite(body) || !r.allowed(ActionUpdate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	m, err := b.Write(ctx, sdk.WriteRequest{Project: r.route.Project, Name: r.secret, Data: body.Data, Labels: body.Labels, Mode: sdk.WriteReplace, ExpectedVersion: expected})
	if err != nil {
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretUpdated, m)
	r.written(m, http.StatusOK)
}

func (s *Server) delete(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.allowed(ActionDelete) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	if err := b.Delete(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret, Version: expected}); err != nil {
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretDeleted, sdk.Meta{Name: r.secret})
	r.version = expected
	if r.auditSuccess() {
		c.Status(http.StatusNoContent)
	}
}

func sortStrings(s []string) { sort.Strings(s) }
