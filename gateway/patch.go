package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

// PATCH: a read-modify-write of one secret, serialized per secret in this
// gateway and by check-and-set everywhere else.

// patchAttempts bounds the read + check-and-set loop of PATCH when another
// writer (another gateway, or a PUT) keeps changing the secret.
const patchAttempts = 16

func (s *Server) patch(c *gin.Context) {
	r := s.req(c)
	if !r.secretName() {
		return
	}
	var body api.PatchRequest
	if !r.decodeJSON(&body) {
		return
	}
	expected, ok := r.ifMatch()
	if !ok || !r.validatePatch(body) || !r.allowed(ActionUpdate) || !r.writable() {
		return
	}
	b, ctx, cancel, ok := r.writeBackend()
	if !ok {
		return
	}
	defer cancel()
	// Patches of one secret through this gateway take turns, so they do
	// not waste each other's writes; check-and-set still guards against
	// every other writer.
	unlock, err := s.lockSecret(ctx, r.route.Project, r.secret)
	if err != nil {
		r.backendErr(err)
		return
	}
	defer unlock()
	m, err := s.patchLoop(ctx, r, b, body, expected)
	if err != nil {
		r.backendErr(err)
		return
	}
	s.publish(r.route.Project, EventSecretUpdated, m)
	r.written(m, http.StatusOK)
}

func (r *request) validatePatch(body api.PatchRequest) bool {
	if len(body.Set) == 0 && len(body.Unset) == 0 && body.Labels == nil {
		r.fail(invalidArg("set", "a patch needs at least one key in set or unset, or labels"))
		return false
	}
	if err := sdk.ValidateLabels(body.Labels); err != nil {
		r.fail(mapBackendError(err, opContext{}))
		return false
	}
	for _, k := range sortedKeys(body.Set) {
		if err := sdk.ValidateKey(k); err != nil {
			var fe *sdk.FieldError
			errors.As(err, &fe)
			r.fail(invalidArg("set", "%s", fe.Reason))
			return false
		}
	}
	for _, k := range body.Unset {
		if err := sdk.ValidateKey(k); err != nil {
			var fe *sdk.FieldError
			errors.As(err, &fe)
			r.fail(invalidArg("unset", "%s", fe.Reason))
			return false
		}
		if _, both := body.Set[k]; both {
			r.fail(invalidArg("unset", "key %q is also in set", k))
			return false
		}
	}
	return true
}

// patchLoop reads the latest version, applies the patch and writes it with
// check-and-set (retryCAS).
func (s *Server) patchLoop(ctx context.Context, r *request, b sdk.Backend, body api.PatchRequest, expected int64) (sdk.Meta, error) {
	ref := sdk.Ref{Project: r.route.Project, Name: r.secret}
	return retryCAS(ctx, r.secret, "patch attempts", expected, func() (sdk.Meta, error) {
		cur, err := b.Read(ctx, ref)
		if err != nil {
			return sdk.Meta{}, err
		}
		if expected > 0 && cur.Version != expected {
			return sdk.Meta{}, sdk.VersionMismatch(ref.Project, ref.Name, expected, cur.Version)
		}
		data := sdk.CloneData(cur.Data)
		if data == nil {
			data = map[string]string{}
		}
		for k, v := range body.Set {
			data[k] = v
		}
		for _, k := range body.Unset {
			delete(data, k)
		}
		if len(data) == 0 {
			return sdk.Meta{}, &apiError{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument,
				Message: "invalid unset: the patch would remove every key; delete the secret instead"}
		}
		if err := sdk.ValidateData(data); err != nil {
			// The merged map holds stored values the caller may not be
			// allowed to read: the answer names the limits, never a size
			// or count computed from them (one bit remains: fits or not).
			return sdk.Meta{}, &apiError{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument,
				Message: fmt.Sprintf("invalid set: the patched secret would exceed the limits of a secret (at most %d keys and %d bytes of JSON); nothing was changed", sdk.MaxKeys, sdk.MaxPayloadBytes)}
		}
		return b.Write(ctx, sdk.WriteRequest{Project: ref.Project, Name: ref.Name, Data: data, Labels: body.Labels, Mode: sdk.WriteReplace, ExpectedVersion: cur.Version})
	})
}

// retryCAS runs a read-modify-write until its check-and-set write lands:
// write reads the latest version and writes with ExpectedVersion set to it.
// When another writer got there first (ErrVersionMismatch) it runs again
// after a jittered backoff, up to patchAttempts times; with If-Match
// (expected > 0) a mismatch is the answer. what names the attempts in the
// error that ends a secret that kept changing.
func retryCAS(ctx context.Context, secret, what string, expected int64, write func() (sdk.Meta, error)) (sdk.Meta, error) {
	for attempt := 0; attempt < patchAttempts; attempt++ {
		m, err := write()
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, sdk.ErrVersionMismatch) || expected > 0 {
			return sdk.Meta{}, err
		}
		if err := sleepJitter(ctx, attempt); err != nil {
			return sdk.Meta{}, err
		}
	}
	return sdk.Meta{}, &apiError{Status: http.StatusPreconditionFailed, Code: api.CodeVersionMismatch,
		Message: fmt.Sprintf("secret %q kept changing during %d %s; retry", secret, patchAttempts, what)}
}

// sleepJitter waits a random time up to 2ms * 2^attempt (capped at 250ms).
func sleepJitter(ctx context.Context, attempt int) error {
	return sdk.Sleep(ctx, sdk.Jitter(min(2*time.Millisecond<<min(attempt, 8), 250*time.Millisecond)))
}

// lockSecret takes one of 256 striped locks for a secret, honouring ctx.
func (s *Server) lockSecret(ctx context.Context, project, name string) (func(), error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(project))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(name))
	l := s.locks[h.Sum32()%uint32(len(s.locks))]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for concurrent patches: %w", ctx.Err())
	}
}
