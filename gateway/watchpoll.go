package gateway

// The watch poller: writes made behind the gateway's back (directly in
// Vault, AWS or GCP) become events, for the secrets someone is watching
// (docs/configuration.md, "Watching for changes").
//
// Design:
//   - One poller per project, started by its first watcher and stopped when
//     nobody has watched it for pollLinger (long enough for a client's
//     reconnect backoff, so a brief disconnect resumes without a gap).
//     Each round is one listing of the project's backend, narrowed to the
//     longest name prefix all watchers' globs share: one List call per page
//     of secrets, whatever the number of watchers. On Vault a listing reads
//     each secret's metadata; on AWS and GCP it is one ListSecrets call per
//     100 (AWS) or 25,000 (GCP) secrets.
//   - The poller compares the listing with what it knows: the versions of
//     the last listing and of every write through the gateway since (which
//     enter the same map as they are published). So a write through the
//     gateway is never announced twice, and the poller announces only what
//     nobody told it about.
//   - A listing started before a write through the gateway returned may not
//     show it: every entry remembers the log index of its last event, and a
//     listing never overrides an entry newer than the listing's start.
//   - Cloud listings are eventually consistent: an older version, or a
//     deleted secret still listed, is a stale listing unless the backend's
//     own dates say the secret was created again. A name missing from a
//     listing is announced as deleted only once a Describe confirms it, in
//     deleteRounds rounds in a row: reads of an eventually consistent
//     service need not be monotonic (a replica that has not seen a create
//     may answer the next listing and Describe both), and a watcher told of
//     a delete acts on it (drops its copy, alerts someone).
//   - The first listing is a baseline and announces nothing. Changes made
//     while nobody watched were not seen: if the log held events a watcher
//     could resume from when the poller started (or the baseline comes late),
//     the baseline appends a resync so that it re-lists. Writes through the
//     gateway while the baseline lists are noted in it afterwards.

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

const (
	// pollLinger keeps a project polled after its last watcher left: the
	// clients reconnect within 30 s (sdk/client/watch.go), and a reconnect
	// within the linger resumes with nothing missed.
	pollLinger = 45 * time.Second
	// maxDeleteChecks bounds the Describe calls of one round; the rest are
	// checked in the next rounds.
	maxDeleteChecks = 32
	// tombstoneTTL is how long a deleted name is remembered, so that a
	// lagging listing that still shows it is not taken for a re-creation.
	tombstoneTTL = 10 * time.Minute
	// deleteRounds is how many rounds in a row must miss a name, each
	// with a Describe that does not find it, before its delete is
	// announced: a delete made behind the gateway's back is announced one
	// poll interval later than it is seen.
	deleteRounds = 2
)

// pollState is a project's poller state, guarded by its projectLog's mu.
type pollState struct {
	running   bool
	idleSince time.Time // when the last watcher left; zero while watched
	// since is the log's last index when the poller started; rounds counts
	// the rounds it began. They tell a late baseline from a first one.
	since  uint64
	rounds int
	// known is nil until the first listing (the baseline).
	known   map[string]knownSecret
	prefix  string // the name prefix known covers
	backend string // the backend known was listed from
}

// knownSecret is what the poller last learned of one secret.
type knownSecret struct {
	version   int64
	createdAt time.Time // zero when unknown
	deleted   bool
	deletedAt time.Time
	// absent counts the rounds in a row that missed the name and could
	// not describe it (deleteRounds announces the delete).
	absent int
	// setAt is the log index of the event that set this entry, 0 when a
	// listing did; a listing that started before it cannot override it.
	setAt uint64
}

// note records an event in the poller's view, under the project's lock.
func (ps *pollState) note(kind string, m sdk.Meta, index uint64) {
	switch {
	case ps.known == nil:
	case kind == EventResync:
		// A migration switch: another backend, another baseline (the
		// resync already tells watchers to re-list).
		ps.known = nil
	case !strings.HasPrefix(m.Name, ps.prefix):
	case kind == EventSecretDeleted:
		prev := ps.known[m.Name]
		ps.known[m.Name] = knownSecret{deleted: true, deletedAt: time.Now(), createdAt: prev.createdAt, setAt: index}
	default:
		ps.known[m.Name] = knownSecret{version: m.Version, createdAt: m.CreatedAt, setAt: index}
	}
}

// pollInterval is the watch poll interval of a backend; 0 = off (also for
// a backend the configuration does not name, as in handler tests).
func (s *Server) pollInterval(backend string) time.Duration {
	for _, b := range s.config().Backends {
		if b.Name == backend {
			return b.PollInterval()
		}
	}
	return 0
}

// startPoller starts the project's poller unless one runs or its backend
// is not polled.
func (s *Server) startPoller(project string, pl *projectLog) {
	rt, ok := s.routing.Lookup(project)
	if !ok || s.pollInterval(rt.Backend) <= 0 {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.poll.running {
		return
	}
	pl.poll.running, pl.poll.since = true, pl.last
	h := s.events()
	h.pollers.Add(1)
	go func() {
		defer h.pollers.Done()
		s.pollProject(project, pl)
	}()
}

// pollProject runs one project's poller until nobody has watched it for
// pollLinger, its backend is no longer polled, or the hub closes.
func (s *Server) pollProject(project string, pl *projectLog) {
	h := s.events()
	ctx := h.ctx
	for {
		rt, ok := s.routing.Lookup(project)
		interval := time.Duration(0)
		if ok {
			interval = s.pollInterval(rt.Backend)
		}
		if interval <= 0 || !pl.stillWatched(h.linger) {
			return
		}
		if err := s.pollOnce(ctx, rt, pl); err != nil && ctx.Err() == nil {
			// Names and the backend's error only: errors never hold values.
			s.log.Warn("watch poll failed; the next round retries", "project", project, "backend", rt.Backend, "error", err)
			s.metrics.watchPolled(rt.Backend, "failed")
			if errors.Is(err, sdk.ErrThrottled) {
				interval *= 2 // give the quota room before the next round
			}
		} else if err == nil {
			s.metrics.watchPolled(rt.Backend, "ok")
		}
		// ±10%: pollers of many projects do not fire in lockstep.
		if sdk.Sleep(ctx, interval-interval/10+sdk.Jitter(interval/5)) != nil {
			return
		}
	}
}

// stillWatched reports whether the poller should go on; when it should not,
// it forgets the baseline (changes from now on are not seen) and marks the
// poller stopped, under the same lock a new watcher's startPoller takes.
func (pl *projectLog) stillWatched(linger time.Duration) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.subs) > 0 || pl.poll.idleSince.IsZero() || time.Since(pl.poll.idleSince) < linger {
		return true
	}
	pl.poll = pollState{}
	return false
}

// watchPrefix is the longest name prefix every watcher's glob starts with:
// the listing covers exactly what someone may be told about.
func (pl *projectLog) watchPrefix() string {
	first, prefix := true, ""
	for sub := range pl.subs {
		p := globPrefix(sub.glob)
		if first {
			prefix, first = p, false
			continue
		}
		for !strings.HasPrefix(p, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	return prefix
}

// globPrefix is the literal part of a path.Match glob before its first
// special character.
func globPrefix(glob string) string {
	if i := strings.IndexAny(glob, `*?[\`); i >= 0 {
		return glob[:i]
	}
	return glob
}

// pollOnce lists the watched secrets and announces what changed.
func (s *Server) pollOnce(ctx context.Context, rt Route, pl *projectLog) error {
	b, err := s.backend(rt.Backend)
	if err != nil {
		return err
	}
	pl.mu.Lock()
	prefix, start := pl.watchPrefix(), pl.last
	pl.poll.rounds++
	pl.mu.Unlock()

	listed, err := s.listAll(ctx, b, rt.Project, prefix)
	if err != nil {
		return err
	}

	pl.mu.Lock()
	missing := pl.reconcile(rt.Backend, prefix, start, listed)
	pl.mu.Unlock()

	// A name missing from an eventually consistent listing may still be
	// there: announce its delete only when Describe agrees.
	// One secret the backend cannot describe (an AWS version written
	// outside secretgate, say) must not hold up the others: it is kept as
	// it was, and the round reports the first such error.
	var gone []string
	var first error
	for _, name := range missing {
		cctx, cancel := context.WithTimeout(ctx, s.backendTimeout)
		_, err := b.Describe(cctx, sdk.Ref{Project: rt.Project, Name: name})
		cancel()
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			gone = append(gone, name)
		case err != nil && first == nil:
			first = err
		}
	}
	if len(gone) > 0 {
		pl.mu.Lock()
		pl.confirmDeleted(rt.Backend, start, gone)
		pl.mu.Unlock()
	}
	return first
}

// listAll pages through the project's secrets under prefix.
func (s *Server) listAll(ctx context.Context, b sdk.Backend, project, prefix string) (map[string]sdk.Meta, error) {
	out := map[string]sdk.Meta{}
	req := sdk.ListRequest{Project: project, Prefix: prefix, PageSize: sdk.MaxPageSize}
	for {
		cctx, cancel := context.WithTimeout(ctx, s.backendTimeout)
		page, err := b.List(cctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, m := range page.Secrets {
			out[m.Name] = m
		}
		if page.NextPageToken == "" {
			return out, nil
		}
		req.PageToken = page.NextPageToken
	}
}

// reconcile compares a listing that started at log index start with what
// the poller knows, appends the events it proves, and returns the known
// names the listing misses (deletes to confirm). Under pl.mu.
func (pl *projectLog) reconcile(backend, prefix string, start uint64, listed map[string]sdk.Meta) []string {
	ps := &pl.poll
	baseline := ps.known == nil || ps.backend != backend
	if baseline {
		// The resync first: noting it forgets any previous baseline. It is
		// owed when a watcher could resume from an event across a time
		// nobody polled: events logged before this poller started, or
		// before a baseline that comes late (earlier rounds failed, or the
		// project moved to another backend). Events of writes through the
		// gateway while the first round lists are delivered as they are:
		// nothing was unpolled between them and the listing.
		end := pl.last // events logged while the listing ran: (start, end]
		// (A baseline for another backend follows an earlier round: rounds > 1.)
		late := ps.since > 0 || ps.rounds > 1 || end-start >= eventLogSize
		if late && pl.last > 0 && pl.ring[pl.last%eventLogSize].kind != EventResync {
			pl.append(EventResync, sdk.Meta{})
		}
		ps.known = make(map[string]knownSecret, len(listed))
		ps.backend, ps.prefix = backend, prefix
		for name, m := range listed {
			ps.known[name] = knownSecret{version: m.Version, createdAt: m.CreatedAt}
		}
		// Writes through the gateway while the listing ran were announced,
		// but found no baseline to note them in, and the listing may not
		// show them: note them now, or the next round announces them again.
		// (A migration switch among them drops the baseline, as note does
		// for every resync.)
		for i := max(start+1, end-min(end, eventLogSize-1)); i <= end && i > 0; i++ {
			ev := pl.ring[i%eventLogSize]
			ps.note(ev.kind, sdk.Meta{Name: ev.name, Version: ev.version}, ev.index)
		}
		return nil
	}
	if prefix != ps.prefix {
		// Watchers came or went: names newly covered are a baseline of
		// their own, names no longer covered are forgotten.
		old := ps.prefix
		ps.prefix = prefix
		for name := range ps.known {
			if !strings.HasPrefix(name, prefix) {
				delete(ps.known, name)
			}
		}
		for name, m := range listed {
			if !strings.HasPrefix(name, old) {
				ps.known[name] = knownSecret{version: m.Version, createdAt: m.CreatedAt}
			}
		}
	}
	now := time.Now()
	for name, m := range listed {
		k, ok := ps.known[name]
		if ok && k.absent > 0 {
			k.absent = 0 // listed again: what made it look deleted was a lagging read
			ps.known[name] = k
		}
		switch {
		case ok && k.setAt > start:
			// The gateway wrote it while the listing ran: newer news.
		case !ok:
			pl.append(EventSecretCreated, m)
		case k.deleted:
			// Listed after a delete: created again only if its latest
			// version is newer than the delete (else the listing lags).
			if m.UpdatedAt.After(k.deletedAt) {
				pl.append(EventSecretCreated, m)
			}
		case m.Version > k.version:
			pl.append(EventSecretUpdated, m)
		case m.Version < k.version && !k.createdAt.IsZero() && m.CreatedAt.After(k.createdAt):
			// Deleted and created again between two rounds.
			pl.append(EventSecretDeleted, sdk.Meta{Name: name})
			pl.append(EventSecretCreated, m)
		case k.createdAt.IsZero() && m.Version == k.version:
			ps.known[name] = knownSecret{version: m.Version, createdAt: m.CreatedAt}
		}
	}
	var missing []string
	for name, k := range ps.known {
		if _, ok := listed[name]; ok || k.setAt > start {
			continue
		}
		if k.deleted {
			if now.Sub(k.deletedAt) > tombstoneTTL {
				delete(ps.known, name)
			}
			continue
		}
		if len(missing) < maxDeleteChecks {
			missing = append(missing, name)
		}
	}
	return missing
}

// confirmDeleted counts a round that missed each of names and whose
// Describe did not find it, and announces the deletes confirmed by
// deleteRounds such rounds in a row, unless the gateway wrote the name
// meanwhile. Under pl.mu.
func (pl *projectLog) confirmDeleted(backend string, start uint64, names []string) {
	ps := &pl.poll
	if ps.known == nil || ps.backend != backend {
		return
	}
	for _, name := range names {
		k, ok := ps.known[name]
		if !ok || k.deleted || k.setAt > start {
			continue
		}
		if k.absent++; k.absent < deleteRounds {
			ps.known[name] = k
			continue
		}
		pl.append(EventSecretDeleted, sdk.Meta{Name: name})
	}
}
