package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/docs"
)

// OpenAPIPath is where the gateway serves docs/openapi.yaml.
const OpenAPIPath = "/v1/openapi.yaml"

// registerOpenAPI serves the API's OpenAPI document. It needs no token:
// the document describes routes and shapes, never a project or a secret.
func (s *Server) registerOpenAPI(e *gin.Engine) {
	e.GET(OpenAPIPath, func(c *gin.Context) {
		c.Data(http.StatusOK, "application/yaml", docs.OpenAPI)
	})
}
