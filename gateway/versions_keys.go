package gateway

// GET .../versions?keys=true: which keys each version holds, so that a
// version history can show what a rotation added or removed. Key names are
// metadata (secrets.list sees the latest ones); to learn an older version's,
// the gateway reads that version itself, and no value leaves it.

import (
	"context"
	"errors"
	"strconv"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// boolQuery parses an optional true/false query parameter, naming it when
// it is neither.
func (r *request) boolQuery(name string) (value, ok bool) {
	raw, present := r.c.GetQuery(name)
	if !present {
		return false, true
	}
	v, err := strconv.ParseBool(raw)
	if err != nil || (raw != "true" && raw != "false") {
		r.fail(invalidArg(name, "must be true or false"))
		return false, false
	}
	return v, true
}

// versionKeys fills the keys of the newest api.MaxVersionKeys versions. A
// version the backend no longer serves (disabled in GCP, pruned meanwhile)
// is left without keys; any other error fails the request.
func (s *Server) versionKeys(ctx context.Context, r *request, b sdk.Backend, vs []api.Version) bool {
	start := max(0, len(vs)-api.MaxVersionKeys)
	for i := start; i < len(vs); i++ {
		sec, err := b.Read(ctx, sdk.Ref{Project: r.route.Project, Name: r.secret, Version: vs[i].Version})
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			continue
		case err != nil:
			r.backendErr(err)
			return false
		}
		vs[i].Keys = sdk.SortedKeys(sec.Data)
	}
	return true
}
