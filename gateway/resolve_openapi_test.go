package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/secretgate/secretgate/docs"
)

// The answers of POST /v1/resolve validate against docs/openapi.yaml, and
// its request schema agrees with the strict decoder.
func TestOpenAPIResolve(t *testing.T) {
	s := loadOpenAPI(t, docs.OpenAPI)
	e := newOpenAPIEnv(t, false, false)
	r := e.do(t, "POST", "/v1/projects/payments/secrets", "t-admin", map[string]any{"name": "db", "data": map[string]string{"user": "u", "password": "p"}})
	require.Equal(t, http.StatusCreated, r.code, "%s", r.body)
	tests := []struct {
		name, token, body string
		status            int
		schemaOK          bool
	}{
		{"resolve", "t-admin", `{"refs":["sg://payments/db/user","sg://payments/db/password?version=1"]}`, 200, true},
		{"resolve denied", "t-editor", `{"refs":["sg://payments/db/user"]}`, 403, true},
		{"resolve missing key", "t-admin", `{"refs":["sg://payments/db/nope"]}`, 404, true},
		{"resolve unknown project", "t-admin", `{"refs":["sg://nowhere/db/user"]}`, 404, true},
		{"resolve unavailable", "t-admin", `{"refs":["sg://broken/db/user"]}`, 503, true},
		{"resolve throttled", "t-admin", `{"refs":["sg://quota/db/user"]}`, 429, true},
		{"resolve malformed", "t-admin", `{"refs":["sg://payments/db"]}`, 400, false},
		{"resolve leading zero", "t-admin", `{"refs":["sg://payments/db/user?version=01"]}`, 400, false},
		{"resolve empty", "t-admin", `{"refs":[]}`, 400, false},
		{"resolve null", "t-admin", `{"refs":null}`, 400, false},
		{"resolve unknown member", "t-admin", `{"refs":["sg://payments/db/user"],"x":1}`, 400, false},
		{"resolve too many", "t-admin", `{"refs":[` + strings.Repeat(`"sg://payments/db/user",`, 100) + `"sg://payments/db/user"]}`, 400, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, opPtr := s.operation(t, "POST", "/v1/resolve")
			body, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.body))
			require.NoError(t, err)
			verr := s.schema(t, opPtr+"/requestBody/content/application~1json/schema").Validate(body)
			if tc.schemaOK {
				require.NoError(t, verr, "the spec refuses a body the gateway accepts")
			} else {
				require.Error(t, verr, "the spec accepts a body the gateway refuses")
			}
			r := e.do(t, "POST", "/v1/resolve", tc.token, tc.body)
			require.Equal(t, tc.status, r.code, "%s", r.body)
			s.check(t, "POST", "/v1/resolve", r)
		})
	}
}
