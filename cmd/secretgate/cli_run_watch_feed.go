package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

// What `run --watch` and `inject --watch` share: following the event
// streams of the secrets a command depends on.

// changeFeed gathers the events of the secrets a command depends on, from
// one event stream per project, into one wake-up. Changes that arrive while
// the command is busy (resolving, restarting, rendering) are coalesced into
// the next resolution instead of queuing one each.
type changeFeed struct {
	ctx context.Context
	// wake has capacity 1: a pending wake-up stands for every change noted
	// since the last take.
	wake chan struct{}
	// ended says why a stream ended for good (the gateway refused a
	// reconnection: a revoked token, a removed binding, a deleted project).
	ended chan error

	mu      sync.Mutex
	changed map[string]bool            // "project/name", or "project (resync)"
	watched map[string]map[string]bool // project -> secret names
}

func newChangeFeed(ctx context.Context) *changeFeed {
	return &changeFeed{
		ctx: ctx, wake: make(chan struct{}, 1), ended: make(chan error),
		changed: map[string]bool{}, watched: map[string]map[string]bool{},
	}
}

func (f *changeFeed) note(what string) {
	f.mu.Lock()
	f.changed[what] = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take returns what changed since the last take, sorted.
func (f *changeFeed) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.changed))
	for w := range f.changed {
		out = append(out, w)
	}
	clear(f.changed)
	sort.Strings(out)
	return out
}

// empty says whether nothing is watched.
func (f *changeFeed) empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watched) == 0
}

// missing returns the secrets of targets that no stream follows yet.
func (f *changeFeed) missing(targets map[string]map[string]bool) map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]string{}
	for project, names := range targets {
		for n := range names {
			if !f.watched[project][n] {
				out[project] = append(out[project], n)
			}
		}
	}
	return out
}

// watch opens one stream per project of targets, narrowed to their
// secrets, before it returns: every change made after it returned is seen.
func (f *changeFeed) watch(c *client.Client, targets map[string][]string) error {
	projects := make([]string, 0, len(targets))
	for p := range targets {
		projects = append(projects, p)
	}
	sort.Strings(projects)
	for _, project := range projects {
		names := targets[project]
		sort.Strings(names)
		w, err := c.Watch(f.ctx, project, client.WatchOptions{Secrets: namesGlob(names)})
		if err != nil {
			return apiError(fmt.Errorf("--watch: cannot follow the changes of project %s: %w", project, err))
		}
		want := make(map[string]bool, len(names))
		f.mu.Lock()
		if f.watched[project] == nil {
			f.watched[project] = map[string]bool{}
		}
		for _, n := range names {
			want[n] = true
			f.watched[project][n] = true
		}
		f.mu.Unlock()
		go f.follow(project, want, w)
	}
	return nil
}

// follow notes the events of names (and every resync) until the stream
// ends. The client reconnects by itself and resumes with Last-Event-ID, so
// an end is for good.
func (f *changeFeed) follow(project string, names map[string]bool, w *client.Watcher) {
	for ev := range w.Events() {
		switch ev.Kind {
		case client.EventResync:
			// Events were missed: any of ours may have changed.
			f.note(project + " (resync)")
		case client.EventCreated, client.EventUpdated, client.EventDeleted:
			if names[ev.Name] {
				f.note(project + "/" + ev.Name)
			}
		}
		// Other kinds are ignored, as the client advises.
	}
	if f.ctx.Err() != nil {
		return
	}
	select {
	case f.ended <- apiError(fmt.Errorf("--watch: stopped following the changes of project %s: %w", project, w.Err())):
	case <-f.ctx.Done():
	}
}

// namesGlob narrows a stream to names: the name itself when there is one,
// else their common prefix and *. Names hold no glob metacharacter (see
// sdk.ValidateName), so none needs escaping; other names under the prefix
// still come, and follow drops them.
func namesGlob(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	prefix := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if prefix == "" {
		return ""
	}
	return prefix + "*"
}

// referenceTargets groups the secrets of references not pinned to a
// version, by project: the secrets whose next version changes what the
// references resolve to. Malformed references are left to the resolution,
// which names them.
func referenceTargets(refs []string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, ref := range refs {
		r, err := sdk.ParseReference(ref)
		if err != nil || r.Version != 0 {
			continue
		}
		if out[r.Project] == nil {
			out[r.Project] = map[string]bool{}
		}
		out[r.Project][r.Secret] = true
	}
	return out
}

// jitterDelay is the wait before acting on a change, drawn in [0, d) from
// crypto/rand: replicas that see the same event act at different times. A
// variable so that tests can pin it.
var jitterDelay = func(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return sdk.Jitter(d - 1)
}
