package aws

// Writes: Write (create or new version, with labels) and Delete.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/secretgate/secretgate/sdk"
)

// Write stores a new version. The version number is the check-and-set: the
// new version's ClientRequestToken is versionToken(n+1), and AWS refuses a
// token that already names a version with a different value
// (PutSecretValue, ClientRequestToken: "If a version with this value already
// exists and the version of the SecretString and SecretBinary values are
// different from those in the request, then the request fails because you
// can't modify a secret version"), so of two writers racing for n+1 exactly
// one stores a new value. Writes go to the ARN read just before, so a
// secret deleted and created again in between is not written to. A write
// is one PutSecretValue (one unit of the 50 per second that PutSecretValue
// and UpdateSecret share), plus TagResource/UntagResource when labels
// change.
func (b *Backend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.ready(); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	if req.Labels != nil {
		if err := checkTagBudget(2+len(b.tags), req.Labels); err != nil {
			return sdk.Meta{}, err
		}
	}
	body, err := sdk.EncodeData(req.Data)
	if err != nil {
		return sdk.Meta{}, sdk.Invalid("data", "cannot be encoded as JSON")
	}
	keys := sdk.SortedKeys(req.Data)
	settleBy := time.Now().Add(b.settleWait)
	var floor int64 // the lowest version number not yet known to be taken
	for attempt := 0; attempt < writeAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, attempt); err != nil {
				return sdk.Meta{}, err
			}
		}
		v, err := b.current(ctx, req.Project, req.Name)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			if req.ExpectedVersion > 0 && time.Now().Before(settleBy) && b.hasVersion(ctx, secretID(b.prefix, req.Project, req.Name), req, req.ExpectedVersion) {
				// The expected version exists, DescribeSecret does not show
				// its secret yet: wait (bounded) before answering 404.
				continue
			}
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, err
			}
			m, retry, err := b.create(ctx, req, body, keys)
			if retry {
				continue
			}
			return m, err
		case err != nil:
			return sdk.Meta{}, err
		}
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
		}
		var cur int64
		if v.newer {
			cur = v.recent.meta.Version
		} else if cur, err = v.st.currentNumber(req.Project, req.Name); err != nil {
			return sdk.Meta{}, err
		}
		labels := b.labelsOf(v)
		if req.Labels != nil {
			// Tags that others put on the secret count against the 50 too:
			// refuse before storing the value, not at TagResource after.
			others := countOtherTags(v.st.tags)
			if err := checkTagBudget(max(others, 2+len(b.tags)), req.Labels); err != nil {
				return sdk.Meta{}, err
			}
		}
		n := max(cur+1, floor)
		if req.ExpectedVersion > 0 {
			switch {
			case cur > req.ExpectedVersion:
				return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, cur)
			case cur < req.ExpectedVersion && !b.hasVersion(ctx, v.arn(), req, req.ExpectedVersion):
				return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, cur)
			}
			// Version e exists (AWS's view of AWSCURRENT may lag behind it).
			// Writing token(e+1) is the check-and-set: it fails if e+1
			// exists, and versions are written in order, so it succeeds only
			// while e is the latest.
			n = req.ExpectedVersion + 1
		}
		out, err := b.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId:           awsv2.String(v.arn()),
			ClientRequestToken: awsv2.String(versionToken(req.Project, req.Name, n)),
			SecretString:       awsv2.String(string(body)),
		})
		lost := false
		switch {
		case isCode(err, codeExists):
			lost = true // another writer stored version n first
		case err != nil && (errors.Is(mapError("", "", err), sdk.ErrNotFound) || isCode(err, codeInvalidReq)):
			// Deleted (or scheduled for deletion) since describe.
			if req.Mode == sdk.WriteReplace || req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
			}
			continue
		case err != nil:
			return sdk.Meta{}, mapError("PutSecretValue", what(req.Project, req.Name), err)
		case !slices.Contains(out.VersionStages, stageCurrent):
			// AWS ignored the request as a repeat of an identical version n
			// that is no longer current: a newer write won.
			lost = true
		}
		if lost {
			if req.ExpectedVersion > 0 {
				return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, 0)
			}
			floor = n + 1 // version n exists whatever AWS shows
			continue
		}
		created := v.st.created
		if v.newer {
			created = v.recent.meta.CreatedAt
		}
		return b.finishWrite(ctx, req, v.arn(), labels, created, n, keys)
	}
	return sdk.Meta{}, fmt.Errorf("aws: %s: lost the race for a new version %d times in a row: %w", what(req.Project, req.Name), writeAttempts, sdk.ErrUnavailable)
}

// newNonce returns a random tag for one create (see create).
func newNonce() (string, error) {
	var buf [8]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", fmt.Errorf("aws: reading random bytes: %w", err)
	}
	return hex.EncodeToString(buf[:]), nil
}

// create makes a new secret holding version 1. retry reports that the name
// turned out to exist (an upsert then writes a new version).
//
// Two creates with identical data send the same ClientRequestToken and
// value, and AWS answers both with success (the second is ignored as a
// repeat). Each create therefore puts a random nonce in the Description and
// reads it back: the create that finds another nonce did not create the
// secret, and reports ErrAlreadyExists (create) or writes a new version
// (upsert), so no caller's labels are dropped silently.
func (b *Backend) create(ctx context.Context, req sdk.WriteRequest, body []byte, keys []string) (sdk.Meta, bool, error) {
	nonce, err := newNonce()
	if err != nil {
		return sdk.Meta{}, false, err
	}
	id := secretID(b.prefix, req.Project, req.Name)
	in := &secretsmanager.CreateSecretInput{
		Name:               awsv2.String(id),
		SecretString:       awsv2.String(string(body)),
		ClientRequestToken: awsv2.String(versionToken(req.Project, req.Name, 1)),
		Description:        awsv2.String(encodeCache(metaCache{V: 1, K: keys, C: nonce})),
		Tags:               createTags(req.Project, req.Name, b.tags, req.Labels),
	}
	if b.kmsKeyID != "" {
		in.KmsKeyId = awsv2.String(b.kmsKeyID)
	}
	out, err := b.createWaiting(ctx, req, in)
	switch {
	case isCode(err, codeExists):
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, false, sdk.AlreadyExists(req.Project, req.Name)
		}
		return sdk.Meta{}, true, nil
	case err != nil:
		return sdk.Meta{}, false, err
	}
	arn := deref(out.ARN)
	labels := sdk.CloneData(req.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	m := sdk.Meta{Project: req.Project, Name: req.Name, Keys: keys, Version: 1, Labels: labels}
	// Read the secret back for its creation time and the nonce, waiting
	// (bounded) for AWS to show it. If it never does within settle_wait the
	// value is stored all the same: the answer then carries this host's
	// clock and the nonce goes unchecked.
	var st state
	err = b.settle(ctx, func() (bool, error) {
		var err error
		st, err = b.describe(ctx, req.Project, req.Name)
		return errors.Is(err, sdk.ErrNotFound) || (err == nil && st.arn != arn), err
	})
	switch {
	case err == nil && st.arn == arn && st.cache.C != nonce:
		if req.Mode == sdk.WriteCreate {
			return sdk.Meta{}, false, sdk.AlreadyExists(req.Project, req.Name)
		}
		return sdk.Meta{}, true, nil
	case err == nil && st.arn == arn:
		m.CreatedAt = st.created
	case err != nil && !errors.Is(err, sdk.ErrNotFound):
		return sdk.Meta{}, false, fmt.Errorf("aws: %s was created as version 1, reading it back failed: %w", what(req.Project, req.Name), err)
	default:
		m.CreatedAt = time.Now().UTC()
	}
	m.UpdatedAt = m.CreatedAt
	b.recent.wrote(arn, m)
	return m, false, nil
}

// createWaiting sends CreateSecret, waiting while the name is still held by
// a deleted secret: AWS deletes asynchronously ("there might be a short
// delay before the secret is permanently deleted", DeleteSecret) and
// refuses the name with InvalidRequestException meanwhile. It waits at most
// delete_wait, and stops early enough to answer before ctx's deadline.
func (b *Backend) createWaiting(ctx context.Context, req sdk.WriteRequest, in *secretsmanager.CreateSecretInput) (*secretsmanager.CreateSecretOutput, error) {
	start := time.Now()
	stop := start.Add(b.deleteWait)
	if d, ok := ctx.Deadline(); ok {
		// Leave time to answer: a clear 503 beats a deadline error.
		stop = minTime(stop, d.Add(-time.Until(d)/10))
	}
	for attempt := 0; ; attempt++ {
		out, err := b.client.CreateSecret(ctx, in)
		switch {
		case err == nil, isCode(err, codeExists):
			return out, err
		case !isCode(err, codeInvalidReq) || !heldByDeletion(err):
			return nil, mapError("CreateSecret", what(req.Project, req.Name), err)
		}
		d := time.Duration(1<<min(attempt, 6)) * 50 * time.Millisecond // up to 3.2 s
		d = d/2 + sdk.Jitter(d)
		if time.Now().Add(d).After(stop) {
			return nil, fmt.Errorf("aws: %s: the name is still held by a deleted secret (AWS frees names asynchronously; waited %v): retry later: %w",
				what(req.Project, req.Name), time.Since(start).Round(time.Millisecond), sdk.ErrUnavailable)
		}
		if err := sdk.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// heldByDeletion says whether an InvalidRequestException of CreateSecret is
// the name being held by a deleted secret ("You can't create this secret
// because a secret with this name is already scheduled for deletion"), not
// another refusal that waiting cannot cure.
func heldByDeletion(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	msg := strings.ToLower(ae.ErrorMessage())
	return msg == "" || strings.Contains(msg, "delet")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finishWrite runs after version n is stored: it applies labels and
// answers. The value is already stored, so a failure here says so. UpdatedAt
// is this host's clock when AWS confirmed the write (PutSecretValue does not
// return the version's CreatedDate; reads report AWS's).
func (b *Backend) finishWrite(ctx context.Context, req sdk.WriteRequest, arn string, have map[string]string, created time.Time, n int64, keys []string) (sdk.Meta, error) {
	m := sdk.Meta{
		Project: req.Project, Name: req.Name, Keys: keys, Version: n, Labels: have,
		CreatedAt: created, UpdatedAt: time.Now().UTC(),
	}
	if m.UpdatedAt.Before(created) {
		m.UpdatedAt = created
	}
	if req.Labels != nil {
		set, remove := labelDiff(have, req.Labels)
		if len(remove) > 0 {
			if _, err := b.client.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: awsv2.String(arn), TagKeys: remove}); err != nil {
				b.recent.wrote(arn, m)
				return sdk.Meta{}, fmt.Errorf("stored as version %d, but labels were not updated: %w", n, mapError("UntagResource", what(req.Project, req.Name), err))
			}
		}
		if len(set) > 0 {
			if _, err := b.client.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: awsv2.String(arn), Tags: set}); err != nil {
				m.Labels = nil // unknown
				b.recent.wrote(arn, m)
				return sdk.Meta{}, fmt.Errorf("stored as version %d, but labels were not updated: %w", n, mapError("TagResource", what(req.Project, req.Name), err))
			}
		}
		m.Labels = sdk.CloneData(req.Labels)
	}
	b.recent.wrote(arn, m)
	return cloneMeta(m), nil
}

// Delete removes the secret with all its versions at once
// (ForceDeleteWithoutRecovery: no recovery window, the name is free again
// as soon as AWS's asynchronous deletion finishes, which create waits for).
// With ref.Version > 0 the version is checked just before deleting; AWS has
// no conditional delete, so a write landing between check and delete is
// deleted too.
func (b *Backend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.ready(); err != nil {
		return err
	}
	if err := sdk.ValidateRef(ref); err != nil {
		return err
	}
	v, err := b.current(ctx, ref.Project, ref.Name)
	if err != nil {
		return err
	}
	if ref.Version > 0 {
		cur := v.recent.meta.Version
		if !v.newer {
			if cur, err = v.st.currentNumber(ref.Project, ref.Name); err != nil {
				return err
			}
		}
		if cur != ref.Version {
			return sdk.VersionMismatch(ref.Project, ref.Name, ref.Version, cur)
		}
	}
	_, err = b.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId: awsv2.String(v.arn()), ForceDeleteWithoutRecovery: awsv2.Bool(true),
	})
	if err != nil {
		if errors.Is(mapError("", "", err), sdk.ErrNotFound) || isCode(err, codeInvalidReq) {
			return sdk.NotFound(ref.Project, ref.Name)
		}
		return mapError("DeleteSecret", what(ref.Project, ref.Name), err)
	}
	b.recent.gone(ref.Project, ref.Name, v.arn())
	return nil
}
