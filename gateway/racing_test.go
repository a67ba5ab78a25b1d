package gateway

import (
	"context"
	"sync"

	"github.com/secretgate/secretgate/sdk"
)

func refOf(p, n string) sdk.Ref { return sdk.Ref{Project: p, Name: n} }

// racingBackend makes another writer win the next `races` check-and-set
// writes: just before each, it bumps the secret itself.
type racingBackend struct {
	*memBackend
	mu    sync.Mutex
	races int
}

func (r *racingBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	r.mu.Lock()
	if r.races > 0 && req.ExpectedVersion > 0 {
		r.races--
		cur, err := r.memBackend.Read(ctx, sdk.Ref{Project: req.Project, Name: req.Name})
		if err == nil {
			_, _ = r.memBackend.Write(ctx, sdk.WriteRequest{Project: req.Project, Name: req.Name, Data: cur.Data, Mode: sdk.WriteReplace})
		}
	}
	r.mu.Unlock()
	return r.memBackend.Write(ctx, req)
}

type singleBackend struct{ b sdk.Backend }

func (s singleBackend) Backend(string) (sdk.Backend, error)      { return s.b, nil }
func (s singleBackend) Suspect(string)                           {}
func (s singleBackend) Status() map[string]bool                  { return map[string]bool{"mem": true} }
func (s singleBackend) PingAll(context.Context) map[string]error { return nil }
