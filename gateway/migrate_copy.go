package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/api"
)

func (mg *migrator) fail(m *migration, key string, err error) {
	msg := errorText(err)
	mg.countWith(m, outcomeFailed, func(r *api.MigrationReport) { r.Errors[key] = msg })
}

// Outcomes of one secret, as counted in reports and in metrics.
const (
	outcomeCopied   = "copied"
	outcomeSkipped  = "skipped"
	outcomeVerified = "verified"
	outcomeFailed   = "failed"
	outcomeDeleted  = "deleted"
	outcomeKept     = "kept"
)

// count adds one outcome to the report and to the metrics (dry runs are
// reported, not counted in the metrics: they move nothing).
func (mg *migrator) count(m *migration, outcome string) { mg.countWith(m, outcome, nil) }

// countWith also applies more to the report, in the same update.
func (mg *migrator) countWith(m *migration, outcome string, more func(r *api.MigrationReport)) {
	var src, dst string
	var dry bool
	m.update(func(r *api.MigrationReport) {
		if more != nil {
			more(r)
		}
		switch outcome {
		case outcomeCopied:
			r.Copied++
		case outcomeSkipped:
			r.Skipped++
		case outcomeVerified:
			r.Verified++
		case outcomeDeleted:
			r.Deleted++
		case outcomeKept:
			r.Kept++
		case outcomeFailed:
			r.Failed++
		}
		src, dst, dry = r.Source, r.Target, r.DryRun
	})
	if !dry {
		mg.s.metrics.migrated(src, dst, outcome)
	}
}

// errorText is what a report may say about an error: the text of typed sdk
// errors (which by the Backend contract name secrets and fields, never
// values), else only its class.
func errorText(err error) string {
	var fe *sdk.FieldError
	switch {
	case errors.As(err, &fe):
		return fe.Error()
	case errors.Is(err, errConflict), errors.Is(err, errVerify):
		return err.Error()
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrAlreadyExists), errors.Is(err, sdk.ErrVersionMismatch),
		errors.Is(err, sdk.ErrInvalid), errors.Is(err, sdk.ErrUnavailable), errors.Is(err, sdk.ErrPermission):
		return err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "backend call timed out"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return "internal error"
}

var (
	errConflict = errors.New("exists in the target with different content (on_conflict is fail)")
	errVerify   = errors.New("read-back from the target does not match the source digest")
)

// listNames lists every secret name of a project in a backend.
func (mg *migrator) listNames(ctx context.Context, backend, project string) ([]string, error) {
	var names []string
	token := ""
	for {
		var page sdk.ListPage
		err := mg.retry(ctx, backend, func(b sdk.Backend, cctx context.Context) error {
			var err error
			page, err = b.List(cctx, sdk.ListRequest{Project: project, PageSize: sdk.MaxPageSize, PageToken: token})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, s := range page.Secrets {
			names = append(names, s.Name)
		}
		if page.NextPageToken == "" {
			return names, nil
		}
		token = page.NextPageToken
	}
}

// forEach calls f for every name on at most workers goroutines, and stops
// handing out names once ctx ends.
func forEach(ctx context.Context, names []string, workers int, f func(name string)) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				f(name)
			}
		}()
	}
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		work <- n
	}
	close(work)
	wg.Wait()
}

func (mg *migrator) runProject(ctx context.Context, m *migration, spec api.MigrationReport, project string) {
	names, err := mg.listNames(ctx, spec.Source, project)
	if err != nil {
		mg.fail(m, "project:"+project, fmt.Errorf("listing the source: %w", err))
		return
	}
	m.update(func(r *api.MigrationReport) { r.Total += len(names) })
	forEach(ctx, names, spec.Workers, func(name string) { mg.copyOne(ctx, m, spec, project, name) })
}

// key of a secret in a report: project/name when several projects move.
func reportKey(spec api.MigrationReport, project, name string) string {
	if len(spec.Projects) > 1 {
		return project + "/" + name
	}
	return name
}

// readSecret reads one version of a secret (0 = latest) from a backend.
func (mg *migrator) readSecret(ctx context.Context, backend string, ref sdk.Ref) (sdk.Secret, error) {
	var sec sdk.Secret
	err := mg.retry(ctx, backend, func(b sdk.Backend, cctx context.Context) (err error) {
		sec, err = b.Read(cctx, ref)
		return err
	})
	return sec, err
}

func (mg *migrator) copyOne(ctx context.Context, m *migration, spec api.MigrationReport, project, name string) {
	key := reportKey(spec, project, name)
	ref := sdk.Ref{Project: project, Name: name}
	latest, err := mg.readSecret(ctx, spec.Source, ref)
	if err != nil {
		mg.fail(m, key, fmt.Errorf("reading the source: %w", err))
		return
	}
	want, err := digest(latest.Data, latest.Labels)
	if err != nil {
		mg.fail(m, key, err)
		return
	}
	labels := sdk.CloneData(latest.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if spec.Versions != "all" && !spec.DryRun {
		// A target is mostly empty: create the secret there at once, and
		// read the target first only when it already holds the name. That
		// saves a backend call per secret (billed, or under a quota, on a
		// cloud backend). The create is atomic: it never overwrites what
		// the target holds. A create that answers already_exists after a
		// retried attempt may have been this one's: compared below, an
		// identical target counts as skipped.
		err := mg.retry(ctx, spec.Target, func(b sdk.Backend, cctx context.Context) error {
			_, err := b.Write(cctx, sdk.WriteRequest{Project: project, Name: name, Data: latest.Data, Labels: labels, Mode: sdk.WriteCreate})
			return err
		})
		switch {
		case err == nil:
			mg.count(m, outcomeCopied)
			mg.verify(ctx, m, spec, key, ref, want)
			return
		case !errors.Is(err, sdk.ErrAlreadyExists):
			mg.fail(m, key, fmt.Errorf("writing version %d to the target: %w", latest.Version, err))
			return
		}
	}
	cur, err := mg.readSecret(ctx, spec.Target, ref)
	exists := err == nil
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		mg.fail(m, key, fmt.Errorf("reading the target: %w", err))
		return
	}
	if exists {
		if have, err := digest(cur.Data, cur.Labels); err == nil && bytes.Equal(have, want) {
			mg.count(m, outcomeSkipped)
			return
		}
	}
	// The versions to write, oldest first.
	var versions []sdk.Secret
	if spec.Versions == "all" {
		var err error
		if versions, err = mg.readVersions(ctx, spec.Source, ref, &latest); err != nil {
			mg.fail(m, key, fmt.Errorf("reading source versions: %w", err))
			return
		}
	} else {
		versions = []sdk.Secret{latest}
	}
	if exists {
		// A secret whose history in the target is a strict prefix of the
		// source's was cut short by an interrupted run: finish it.
		done := 0
		if spec.Versions == "all" {
			if n, ok := mg.resumePoint(ctx, spec.Target, ref, versions); ok {
				done = n
			}
		}
		switch {
		case done > 0:
			versions = versions[done:]
		case spec.OnConflict == "fail":
			mg.fail(m, key, errConflict)
			return
		case spec.OnConflict == "skip":
			mg.count(m, outcomeSkipped)
			return
		}
	}
	if spec.DryRun {
		mg.count(m, outcomeCopied)
		return
	}

	for _, v := range versions {
		mode := sdk.WriteReplace
		if !exists {
			mode = sdk.WriteCreate
		}
		req := sdk.WriteRequest{Project: project, Name: name, Data: v.Data, Labels: labels, Mode: mode}
		err := mg.retry(ctx, spec.Target, func(b sdk.Backend, cctx context.Context) error {
			_, err := b.Write(cctx, req)
			if err != nil && mode == sdk.WriteCreate && errors.Is(err, sdk.ErrAlreadyExists) {
				// A create whose answer was lost on a retried attempt.
				req.Mode = sdk.WriteReplace
				_, err = b.Write(cctx, req)
			}
			return err
		})
		if err != nil {
			mg.fail(m, key, fmt.Errorf("writing version %d to the target: %w", v.Version, err))
			return
		}
		exists = true
	}
	mg.count(m, outcomeCopied)
	mg.verify(ctx, m, spec, key, ref, want)
}

// verify reads a copied secret back from the target and compares its
// digest with the source's.
func (mg *migrator) verify(ctx context.Context, m *migration, spec api.MigrationReport, key string, ref sdk.Ref, want []byte) {
	back, err := mg.readSecret(ctx, spec.Target, ref)
	if err != nil {
		mg.fail(m, key, fmt.Errorf("reading back from the target: %w", err))
		return
	}
	got, err := digest(back.Data, back.Labels)
	if err != nil || !bytes.Equal(got, want) {
		mg.fail(m, key, errVerify)
		return
	}
	mg.count(m, outcomeVerified)
}

// deleteFromSource runs after a verified, persisted switch: it deletes from
// the source each secret whose latest version in the target has the same
// digest, compared again now, and keeps every other one.
func (mg *migrator) deleteFromSource(ctx context.Context, m *migration, spec api.MigrationReport, project string) {
	names, err := mg.listNames(ctx, spec.Source, project)
	if err != nil {
		mg.fail(m, "project:"+project, fmt.Errorf("listing the source for delete_source: %w", err))
		return
	}
	forEach(ctx, names, spec.Workers, func(name string) {
		key := reportKey(spec, project, name)
		ref := sdk.Ref{Project: project, Name: name}
		src, err := mg.readSecret(ctx, spec.Source, ref)
		if errors.Is(err, sdk.ErrNotFound) {
			return
		}
		if err != nil {
			mg.fail(m, key, fmt.Errorf("delete_source: reading the source: %w", err))
			return
		}
		dst, err := mg.readSecret(ctx, spec.Target, ref)
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			mg.fail(m, key, fmt.Errorf("delete_source: reading the target: %w", err))
			return
		}
		a, err1 := digest(src.Data, src.Labels)
		b, err2 := digest(dst.Data, dst.Labels)
		if err != nil || err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			mg.count(m, outcomeKept)
			return
		}
		err = mg.retry(ctx, spec.Source, func(b sdk.Backend, cctx context.Context) error {
			return b.Delete(cctx, ref)
		})
		if err != nil && !errors.Is(err, sdk.ErrNotFound) {
			mg.fail(m, key, fmt.Errorf("delete_source: deleting from the source: %w", err))
			return
		}
		mg.count(m, outcomeDeleted)
	})
}

// retry calls f with the backend's client, backing off while the backend
// answers ErrUnavailable.
func (mg *migrator) retry(ctx context.Context, backend string, f func(sdk.Backend, context.Context) error) error {
	delay := migrateBackoff
	var err error
	for attempt := 0; attempt < migrateAttempts; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		var b sdk.Backend
		b, err = mg.s.backend(backend)
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, mg.s.backendTimeout)
			err = f(b, cctx)
			cancel()
		}
		if err == nil || !errors.Is(err, sdk.ErrUnavailable) {
			return err
		}
		mg.s.backends.Suspect(backend)
		if err := sdk.Sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(delay*2, migrateMaxSleep)
	}
	return err
}

// digest is sha256 over the canonical encodings of data and labels.
func digest(data, labels map[string]string) ([]byte, error) {
	if data == nil {
		data = map[string]string{}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	d, err := sdk.EncodeData(data)
	if err != nil {
		return nil, fmt.Errorf("encoding data: %w", err)
	}
	l, err := sdk.EncodeData(labels)
	if err != nil {
		return nil, fmt.Errorf("encoding labels: %w", err)
	}
	h := sha256.New()
	h.Write(d)
	h.Write([]byte{0})
	h.Write(l)
	return h.Sum(nil), nil
}

// readVersions reads every stored version of a secret, oldest first; the
// last is latest (already read).
func (mg *migrator) readVersions(ctx context.Context, backend string, ref sdk.Ref, latest *sdk.Secret) ([]sdk.Secret, error) {
	var vs []sdk.VersionMeta
	if err := mg.retry(ctx, backend, func(b sdk.Backend, cctx context.Context) (err error) {
		vs, err = b.Versions(cctx, ref)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]sdk.Secret, 0, len(vs))
	for _, v := range vs {
		if latest != nil && v.Version == latest.Version {
			continue
		}
		sec, err := mg.readSecret(ctx, backend, sdk.Ref{Project: ref.Project, Name: ref.Name, Version: v.Version})
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", v.Version, err)
		}
		out = append(out, sec)
	}
	if latest != nil {
		out = append(out, *latest)
	}
	return out, nil
}

// resumePoint reports how many of the source versions the target already
// holds, in order, when its history is a strict prefix of the source's.
func (mg *migrator) resumePoint(ctx context.Context, target string, ref sdk.Ref, src []sdk.Secret) (int, bool) {
	have, err := mg.readVersions(ctx, target, ref, nil)
	if err != nil || len(have) == 0 || len(have) >= len(src) {
		return 0, false
	}
	for i, h := range have {
		a, err1 := sdk.EncodeData(h.Data)
		b, err2 := sdk.EncodeData(src[i].Data)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			return 0, false
		}
	}
	return len(have), true
}
