package gcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/secretgate/secretgate/sdk"
)

// Write implements the check-and-set protocol described in the package doc:
// read the secret (etag, claim) and verify by number which version is
// current; claim the next one with an UpdateSecret guarded by the etag; add
// the version; check the number it got.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	payload, err := sdk.EncodeData(req.Data)
	if err != nil {
		return sdk.Meta{}, sdk.Invalid("data", "cannot be encoded as JSON: %v", err)
	}
	keys := sdk.SortedKeys(req.Data)
	claimID, err := newClaimID()
	if err != nil {
		return sdk.Meta{}, err
	}
	w := &writer{b: b, req: req, payload: payload, keys: keys, claimID: claimID}
	return w.run(ctx)
}

type writer struct {
	b       *Backend
	req     sdk.WriteRequest
	payload []byte
	keys    []string
	claimID string
}

func (w *writer) mismatch(current int64) error {
	return sdk.VersionMismatch(w.req.Project, w.req.Name, w.req.ExpectedVersion, current)
}

func (w *writer) run(ctx context.Context) (sdk.Meta, error) {
	b, req := w.b, w.req
	wait, backoff := 25*time.Millisecond, baseBackoff
	useCache := true
	stale, invisible := 0, 0
	// again waits a little before another round on a fresh GetSecret.
	again := func() error {
		useCache = false
		err := sdk.Sleep(ctx, sdk.Jitter(backoff))
		backoff = min(2*backoff, maxBackoff)
		if err != nil {
			return fmt.Errorf("gcp: writing %s: %w: %w", what(req.Project, req.Name), sdk.ErrUnavailable, err)
		}
		return nil
	}
	for round := 0; round < maxWriteRounds; round++ {
		st, _, err := b.view(ctx, req.Project, req.Name, useCache)
		if isNotFound(err) {
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			}
			m, err, exists := w.create(ctx)
			if !exists {
				return m, err
			}
			// CreateSecret says it exists, GetSecret does not show it: a
			// creation moments ago, seen through a lagging view.
			if invisible++; invisible > lagRounds {
				if req.Mode == sdk.WriteCreate {
					return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
				}
				return sdk.Meta{}, fmt.Errorf("gcp: %s exists but is not visible yet (eventual consistency): %w", what(req.Project, req.Name), sdk.ErrUnavailable)
			}
			if err := again(); err != nil {
				return sdk.Meta{}, err
			}
			continue
		}
		if err != nil {
			return sdk.Meta{}, err
		}
		h, err := b.head(ctx, req.Project, req.Name, st, false)
		if err != nil {
			return sdk.Meta{}, err
		}
		// Our own claim, made by an attempt whose answer was lost.
		if st.claimID == w.claimID && h.n == st.claim-1 {
			return w.add(ctx, st, st.claim)
		}
		if h.n > 0 && req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
		}
		if h.inFlight {
			// Another writer holds a live claim on the next version.
			switch {
			case h.n == 0 && req.Mode == sdk.WriteCreate:
				return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
			case h.n == 0 && req.Mode == sdk.WriteReplace:
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			case req.ExpectedVersion > 0:
				return sdk.Meta{}, fmt.Errorf("%w (a write of version %d is in flight)", w.mismatch(h.n), st.claim)
			}
			if err := sdk.Sleep(ctx, min(wait, time.Until(st.claimAt.Add(b.cfg.lease))+time.Millisecond)); err != nil {
				return sdk.Meta{}, fmt.Errorf("gcp: waiting for a concurrent write of %s: %w: %w", what(req.Project, req.Name), sdk.ErrUnavailable, err)
			}
			wait = min(2*wait, 400*time.Millisecond)
			useCache = false
			continue
		}
		if h.n == 0 {
			// Versionless: a creation that died before adding version 1, and
			// whose claim expired. It does not exist for secretgate.
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			}
		} else if req.ExpectedVersion > 0 && req.ExpectedVersion != h.n {
			// Seen versions only grow; a view can only lag. An expected
			// version below what we see is stale for sure; one above it is
			// either not there (by number tells) or newer than a lagging
			// view, so look again for a while.
			if req.ExpectedVersion < h.n || stale >= lagRounds {
				return sdk.Meta{}, w.mismatch(h.n)
			}
			if there, err := b.exists(ctx, req.Project, req.Name, req.ExpectedVersion); err != nil {
				return sdk.Meta{}, err
			} else if !there {
				return sdk.Meta{}, w.mismatch(h.n)
			}
			stale++
			if err := again(); err != nil {
				return sdk.Meta{}, err
			}
			continue
		}

		labels := req.Labels
		if labels == nil && h.n > 0 {
			labels = st.labels
		}
		next := h.n + 1
		upd, err := w.claim(ctx, st, next, labels)
		switch {
		case err == nil:
			b.cache.putOwn(b.secretName(req.Project, req.Name), upd)
			return w.add(ctx, readState(upd), next)
		case status.Code(err) == codes.NotFound: // deleted meanwhile (a mutation's answer is current)
			b.cache.drop(b.secretName(req.Project, req.Name))
			if err := again(); err != nil {
				return sdk.Meta{}, err
			}
			continue
		case etagFailure(err):
			// The secret changed since the view we judged: another writer's
			// claim, an operator's edit, or our view lagged. Judge afresh;
			// a check-and-set write that keeps failing is a mismatch.
			b.cache.staleEtag(b.secretName(req.Project, req.Name), st.secret.GetEtag())
			if stale++; stale > lagRounds && (req.ExpectedVersion > 0 || req.Mode == sdk.WriteCreate) {
				if req.Mode == sdk.WriteCreate && h.n > 0 {
					return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
				}
				return sdk.Meta{}, w.mismatch(0)
			}
			if err := again(); err != nil {
				return sdk.Meta{}, err
			}
			continue
		default:
			return sdk.Meta{}, err
		}
	}
	return sdk.Meta{}, fmt.Errorf("gcp: %s: too many concurrent writers: %w", what(req.Project, req.Name), sdk.ErrUnavailable)
}

// claim records, with an UpdateSecret guarded by the etag of st, that this
// writer adds version next, and sets the labels. Only the labels and
// annotations secretgate owns change; the rest of both maps is sent back
// as read, which the etag makes safe. Gives the raw gRPC error for etag
// failures and NOT_FOUND, a mapped one otherwise.
func (w *writer) claim(ctx context.Context, st state, next int64, labels map[string]string) (*secretmanagerpb.Secret, error) {
	b, req := w.b, w.req
	ours, err := claimAnnotations(next, w.claimID, b.now(), w.keys, labels)
	if err != nil {
		return nil, err
	}
	gl, ga, err := mergeOwned(st, req.Project, labels, ours)
	if err != nil {
		return nil, err
	}
	var upd *secretmanagerpb.Secret
	_, err = retry(ctx, func(ctx context.Context) (err error) {
		upd, err = b.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret: &secretmanagerpb.Secret{
				Name:        st.secret.GetName(),
				Etag:        st.secret.GetEtag(),
				Labels:      gl,
				Annotations: ga,
			},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels", "annotations"}},
		})
		return err
	})
	if err == nil || status.Code(err) == codes.NotFound || etagFailure(err) {
		return upd, err
	}
	return nil, mapErr(ctx, "UpdateSecret", what(req.Project, req.Name), err)
}

// create makes the secret with a claim on version 1. exists is true when
// CreateSecret found it there already and the caller should look again.
func (w *writer) create(ctx context.Context) (m sdk.Meta, err error, exists bool) {
	b, req := w.b, w.req
	ann, err := claimAnnotations(1, w.claimID, b.now(), w.keys, req.Labels)
	if err != nil {
		return sdk.Meta{}, err, false
	}
	secret := &secretmanagerpb.Secret{Labels: gcpLabels(req.Project, req.Labels, nil), Annotations: ann}
	if b.cfg.location == "" {
		// Regional secrets take no replication policy; global ones are
		// replicated automatically by Google.
		secret.Replication = &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}
	}
	var created *secretmanagerpb.Secret
	_, err = retry(ctx, func(ctx context.Context) (err error) {
		created, err = b.client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
			Parent: b.parent(), SecretId: b.secretID(req.Project, req.Name), Secret: secret,
		})
		return err
	})
	if status.Code(err) == codes.AlreadyExists {
		// Another creator, a dead creation, or our own lost answer: the
		// main loop tells them apart.
		return sdk.Meta{}, nil, true
	}
	if err != nil {
		return sdk.Meta{}, mapErr(ctx, "CreateSecret", what(req.Project, req.Name), err), false
	}
	b.cache.putOwn(b.secretName(req.Project, req.Name), created)
	m, err = w.add(ctx, readState(created), 1)
	return m, err, false
}

// add adds the payload as version `next`, under the claim recorded in st.
func (w *writer) add(ctx context.Context, st state, next int64) (sdk.Meta, error) {
	b, req := w.b, w.req
	key := b.secretName(req.Project, req.Name)
	// A claim is honoured by others for the lease; adding after half of it
	// has passed risks racing a writer that took over.
	deadline := st.claimAt.Add(b.cfg.lease / 2)
	if b.now().After(deadline) {
		return sdk.Meta{}, fmt.Errorf("gcp: claiming version %d of %s took longer than half the claim lease: %w", next, what(req.Project, req.Name), sdk.ErrUnavailable)
	}
	crc := crc32c(w.payload)
	addReq := &secretmanagerpb.AddSecretVersionRequest{
		Parent:  st.secret.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: w.payload, DataCrc32C: &crc},
	}
	var (
		n       int64
		created time.Time
	)
	backoff := baseBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithDeadline(ctx, deadline)
		v, err := b.client.AddSecretVersion(actx, addReq)
		cancel()
		if err == nil {
			if n, err = versionNumber(v.GetName()); err != nil {
				return sdk.Meta{}, err
			}
			created = v.GetCreateTime().AsTime().UTC()
			break
		}
		code := status.Code(err)
		wait := sdk.Jitter(backoff)
		switch {
		case code == codes.ResourceExhausted:
			// Refused before it was applied (the per-secret limit, most
			// likely, with writers racing): wait as told, while the claim
			// holds. Our claim keeps others off version `next` meanwhile.
			if d, ok := retryDelay(err); ok && d > wait {
				wait = d
			}
			if b.now().Add(wait).After(deadline) || attempt == maxAttempts {
				return sdk.Meta{}, mapErr(ctx, "AddSecretVersion", what(req.Project, req.Name), err)
			}
		case code == codes.Unavailable || code == codes.DeadlineExceeded:
			if attempt == maxAttempts || b.now().After(deadline) {
				return sdk.Meta{}, mapErr(ctx, "AddSecretVersion", what(req.Project, req.Name), err)
			}
			// AddSecretVersion is not idempotent: before trying again, see
			// whether the unanswered attempt landed, by number (strongly
			// consistent after an add). While our claim holds, no one else
			// adds version `next`.
			if got, _, aerr := b.access(ctx, req.Project, req.Name, fmt.Sprint(next)); aerr == nil || errors.Is(aerr, errVersionDisabled) {
				n, created = next, b.now().UTC()
				if aerr == nil {
					n = got
				}
			}
		default:
			return sdk.Meta{}, mapErr(ctx, "AddSecretVersion", what(req.Project, req.Name), err)
		}
		if n > 0 {
			break
		}
		if err := sdk.Sleep(ctx, wait); err != nil {
			return sdk.Meta{}, mapErr(ctx, "AddSecretVersion", what(req.Project, req.Name), err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
	if n != next {
		// A version was added outside the protocol (by hand, or by a writer
		// whose claim had expired) between our claim and our add. Our
		// payload is stored and is the newest; record its number so that
		// the claim names it again.
		ann := maps.Clone(st.secret.GetAnnotations())
		ann[annClaim] = fmt.Sprint(n)
		fixed, err := b.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: st.secret.GetName(), Etag: st.secret.GetEtag(), Annotations: ann},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
		})
		if err == nil {
			b.cache.putOwn(key, fixed)
			st = readState(fixed)
		} else {
			b.cache.staleEtag(key, st.secret.GetEtag())
		}
	}
	b.cache.addVersion(key, st.secret, n, created)
	return sdk.Meta{
		Project: req.Project, Name: req.Name,
		Keys:      append([]string(nil), w.keys...),
		Version:   n,
		Labels:    copyLabels(st.labels),
		CreatedAt: st.secret.GetCreateTime().AsTime().UTC(),
		UpdatedAt: created,
	}, nil
}

// Delete removes a whole secret (ref.Version 0) or, with ref.Version set,
// only while that version is the current one and no write is in flight.
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.ready(); err != nil {
		return err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	key := b.secretName(ref.Project, ref.Name)
	if ref.Version == 0 {
		handled, err := b.deleteSecret(ctx, ref, &secretmanagerpb.DeleteSecretRequest{Name: key})
		if handled {
			return err
		}
		return mapErr(ctx, "DeleteSecret", what(ref.Project, ref.Name), err)
	}
	// Check-and-set: the current version must be ref.Version with no write
	// in flight, judged on a view whose etag then guards the delete: if
	// anything changed the secret since (a claim, a lagging view), the
	// delete fails and we look again.
	useCache, backoff := true, baseBackoff
	for round := 0; ; round++ {
		st, _, err := b.view(ctx, ref.Project, ref.Name, useCache)
		if err != nil {
			return err
		}
		h, err := b.head(ctx, ref.Project, ref.Name, st, false)
		if err != nil {
			return err
		}
		switch {
		case h.n == 0:
			return sdk.NotFound(ref.Project, ref.Name)
		case h.inFlight:
			return fmt.Errorf("%w (a write of version %d is in flight)", sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, h.n), st.claim)
		case ref.Version < h.n:
			return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, h.n)
		case ref.Version > h.n:
			// Newer than what we see: either it does not exist (a mismatch)
			// or our view lags.
			there, err := b.exists(ctx, ref.Project, ref.Name, ref.Version)
			if err != nil {
				return err
			}
			if !there || round >= lagRounds {
				return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, h.n)
			}
			useCache = false
			if err := sdk.Sleep(ctx, sdk.Jitter(backoff)); err != nil {
				return mapErr(ctx, "GetSecret", what(ref.Project, ref.Name), err)
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		handled, err := b.deleteSecret(ctx, ref, &secretmanagerpb.DeleteSecretRequest{Name: key, Etag: st.secret.GetEtag()})
		switch {
		case handled:
			return err
		case etagFailure(err):
			b.cache.staleEtag(key, st.secret.GetEtag())
			if round >= lagRounds {
				return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, 0)
			}
			useCache = false
			if err := sdk.Sleep(ctx, sdk.Jitter(backoff)); err != nil {
				return mapErr(ctx, "DeleteSecret", what(ref.Project, ref.Name), err)
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		return mapErr(ctx, "DeleteSecret", what(ref.Project, ref.Name), err)
	}
}

// deleteSecret sends req, retried, and settles the answers every delete
// shares: success, and NOT_FOUND, which is a success too when an earlier,
// unanswered attempt may have deleted (see retry). Any other error comes
// back as the service sent it, with handled false, for the caller's cases.
func (b *Backend) deleteSecret(ctx context.Context, ref sdk.Ref, req *secretmanagerpb.DeleteSecretRequest) (handled bool, err error) {
	mayHaveRun, err := retry(ctx, func(ctx context.Context) error { return b.client.DeleteSecret(ctx, req) })
	switch {
	case err == nil:
		b.cache.deleted(req.GetName())
		return true, nil
	case status.Code(err) == codes.NotFound:
		b.cache.deleted(req.GetName())
		if mayHaveRun {
			return true, nil
		}
		return true, sdk.NotFound(ref.Project, ref.Name)
	}
	return false, err
}
