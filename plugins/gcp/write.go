package gcp

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/secretgate/secretgate/sdk"
)

// Write implements the check-and-set protocol described in the package doc:
// read the secret (etag, claim) and its latest version; claim version L+1
// with an UpdateSecret guarded by the etag; add the version; check it got
// number L+1.
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
	wait := 25 * time.Millisecond
	for round := 0; round < maxWriteRounds; round++ {
		st, err := b.getSecret(ctx, req.Project, req.Name)
		if isNotFound(err) {
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			}
			m, err, again := w.create(ctx)
			if !again {
				return m, err
			}
			continue
		}
		if err != nil {
			return sdk.Meta{}, err
		}
		lv, err := b.latest(ctx, req.Project, req.Name)
		if err != nil {
			return sdk.Meta{}, err
		}
		var current int64
		if lv != nil {
			if current, err = versionNumber(lv.GetName()); err != nil {
				return sdk.Meta{}, err
			}
		}

		// Our own claim, made by an attempt whose answer was lost.
		if st.claimID == w.claimID && st.claim == current+1 {
			return w.add(ctx, st, current+1)
		}
		if current > 0 && req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
		}
		if st.claim > current && b.now().Sub(st.claimAt) < b.cfg.lease {
			// Another writer holds a live claim on the next version.
			switch {
			case current == 0 && req.Mode == sdk.WriteCreate:
				return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
			case current == 0 && req.Mode == sdk.WriteReplace:
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			case req.ExpectedVersion > 0:
				return sdk.Meta{}, fmt.Errorf("%w (a write of version %d is in flight)", w.mismatch(current), st.claim)
			}
			if err := sdk.Sleep(ctx, min(wait, time.Until(st.claimAt.Add(b.cfg.lease))+time.Millisecond)); err != nil {
				return sdk.Meta{}, fmt.Errorf("gcp: waiting for a concurrent write of %s: %w: %w", what(req.Project, req.Name), sdk.ErrUnavailable, err)
			}
			wait = min(2*wait, 400*time.Millisecond)
			continue
		}
		if current == 0 {
			// Versionless: a creation that died before adding version 1, and
			// whose claim expired. It does not exist for secretgate.
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			}
		} else if req.ExpectedVersion > 0 && req.ExpectedVersion != current {
			return sdk.Meta{}, w.mismatch(current)
		}

		labels := req.Labels
		if labels == nil && current > 0 {
			labels = st.labels
		}
		next := current + 1
		claimAt := b.now()
		ann, err := claimAnnotations(next, w.claimID, claimAt, w.keys, labels)
		if err != nil {
			return sdk.Meta{}, err
		}
		var upd *secretmanagerpb.Secret
		_, err = retry(ctx, func(ctx context.Context) (err error) {
			upd, err = b.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
				Secret: &secretmanagerpb.Secret{
					Name:        st.secret.GetName(),
					Etag:        st.secret.GetEtag(),
					Labels:      gcpLabels(req.Project, labels),
					Annotations: ann,
				},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels", "annotations"}},
			})
			return err
		})
		switch {
		case err == nil:
			return w.add(ctx, readState(upd), next)
		case status.Code(err) == codes.NotFound: // deleted meanwhile
			continue
		case etagFailure(err):
			// Someone else changed the secret since we read it (or our
			// first, unanswered, attempt did: the next round sees our id).
			if req.ExpectedVersion > 0 || req.Mode == sdk.WriteCreate {
				st2, err2 := b.getSecret(ctx, req.Project, req.Name)
				if err2 == nil && st2.claimID == w.claimID {
					return w.add(ctx, st2, next)
				}
				if req.Mode == sdk.WriteCreate && current > 0 {
					return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
				}
				if req.ExpectedVersion > 0 {
					return sdk.Meta{}, w.mismatch(0)
				}
			}
			continue
		default:
			return sdk.Meta{}, mapErr(ctx, "UpdateSecret", what(req.Project, req.Name), err)
		}
	}
	return sdk.Meta{}, fmt.Errorf("gcp: %s: too many concurrent writers: %w", what(req.Project, req.Name), sdk.ErrUnavailable)
}

// create makes the secret with a claim on version 1. again is true when the
// secret appeared meanwhile and the caller should look at it afresh.
func (w *writer) create(ctx context.Context) (m sdk.Meta, err error, again bool) {
	b, req := w.b, w.req
	ann, err := claimAnnotations(1, w.claimID, b.now(), w.keys, req.Labels)
	if err != nil {
		return sdk.Meta{}, err, false
	}
	secret := &secretmanagerpb.Secret{Labels: gcpLabels(req.Project, req.Labels), Annotations: ann}
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
	m, err = w.add(ctx, readState(created), 1)
	return m, err, false
}

// add adds the payload as version `next`, under the claim recorded in st.
func (w *writer) add(ctx context.Context, st state, next int64) (sdk.Meta, error) {
	b, req := w.b, w.req
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
	var v *secretmanagerpb.SecretVersion
	backoff := baseBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithDeadline(ctx, deadline)
		var err error
		v, err = b.client.AddSecretVersion(actx, addReq)
		cancel()
		if err == nil {
			break
		}
		if !transient(err) && status.Code(err) != codes.DeadlineExceeded || attempt == maxAttempts || b.now().After(deadline) {
			return sdk.Meta{}, mapErr(ctx, "AddSecretVersion", what(req.Project, req.Name), err)
		}
		// AddSecretVersion is not idempotent: before trying again, see
		// whether the unanswered attempt landed. While our claim holds, no
		// one else adds version `next`.
		lv, lerr := b.latest(ctx, req.Project, req.Name)
		if lerr == nil && lv != nil {
			if n, _ := versionNumber(lv.GetName()); n >= next {
				v = lv
				break
			}
		}
		if err := sdk.Sleep(ctx, sdk.Jitter(backoff)); err != nil {
			return sdk.Meta{}, mapErr(ctx, "AddSecretVersion", what(req.Project, req.Name), err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
	n, err := versionNumber(v.GetName())
	if err != nil {
		return sdk.Meta{}, err
	}
	if n != next {
		// A writer whose claim had expired added a version between our
		// claim and our add (see the package doc). Our payload is stored
		// and is the latest; record its number so that the key list in the
		// claim describes it again.
		ann := st.secret.GetAnnotations()
		fixed := make(map[string]string, len(ann))
		for k, v := range ann {
			fixed[k] = v
		}
		fixed[annClaim] = fmt.Sprint(n)
		_, _ = b.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: st.secret.GetName(), Etag: st.secret.GetEtag(), Annotations: fixed},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
		})
	}
	return sdk.Meta{
		Project: req.Project, Name: req.Name,
		Keys:      append([]string(nil), w.keys...),
		Version:   n,
		Labels:    st.labels,
		CreatedAt: st.secret.GetCreateTime().AsTime().UTC(),
		UpdatedAt: v.GetCreateTime().AsTime().UTC(),
	}, nil
}
