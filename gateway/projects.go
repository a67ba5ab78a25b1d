package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/secretgate/secretgate/sdk/api"
)

var projectActions = []string{ActionList, ActionRead, ActionCreate, ActionUpdate, ActionDelete, ActionMigrate}

// listProjects answers who the caller is and the projects it has a binding
// on, so that clients (the web UI, scripts) can offer them; projects without
// a binding stay invisible, as everywhere else. Backend names are not shown: they are
// the operator's business.
func (s *Server) listProjects(c *gin.Context) {
	subject := c.GetString(ctxKeySubject)
	out := []api.Project{}
	for _, rt := range s.routing.Projects() {
		if !s.authzOf(c).HasAnyBinding(subject, rt.Project) {
			continue
		}
		p := api.Project{Name: rt.Project, Actions: []string{}}
		for _, a := range projectActions {
			if s.authzOf(c).Allowed(subject, rt.Project, a, "") {
				p.Actions = append(p.Actions, a)
			}
		}
		out = append(out, p)
	}
	list := api.ProjectList{Subject: subject, Projects: out}
	if cl := callerOf(c); cl.subject != "" {
		list.Issuer = cl.issuer
		if !cl.expires.IsZero() {
			exp := cl.expires.UTC()
			list.ExpiresAt = &exp
		}
	}
	c.JSON(http.StatusOK, list)
}
