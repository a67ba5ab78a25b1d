// Package docs holds the project's documentation. Its only Go is the
// embedded OpenAPI document: go:embed cannot reach outside a package's
// directory, and the canonical file lives here beside docs/api.md, so the
// gateway imports this data-only package to serve it.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the OpenAPI 3.1 description of the HTTP
// API that the gateway serves at GET /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
