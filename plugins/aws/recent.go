package aws

import (
	"slices"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// maxRecent bounds the memory of recentWrites; past it the oldest entries
// go first (they are the likeliest to be visible in AWS already).
const maxRecent = 10000

// recentWrites remembers this plugin's own writes and deletes for as long as
// AWS may not show them yet. Every Secrets Manager operation is eventually
// consistent ("All Secrets Manager operations are eventually consistent.
// ListSecrets might not reflect changes from the last five minutes",
// ListSecrets API reference), so without it a caller could write a secret
// and then not find it, or find the previous version, through the same
// gateway. Views from AWS are overlaid with what this process knows to be
// newer: read-your-writes within one plugin process, not across processes.
type recentWrites struct {
	mu     sync.Mutex
	window time.Duration
	m      map[string]*recentEntry
}

type recentEntry struct {
	arn      string
	meta     sdk.Meta          // after the newest write this process made
	versions []sdk.VersionMeta // versions this process wrote, oldest first
	deleted  bool
	at       time.Time
}

func newRecentWrites(window time.Duration) *recentWrites {
	return &recentWrites{window: window, m: map[string]*recentEntry{}}
}

func recentKey(project, name string) string { return project + "\x00" + name }

// wrote records that version m.Version of the secret with this ARN is stored.
func (r *recentWrites) wrote(arn string, m sdk.Meta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := recentKey(m.Project, m.Name)
	e, ok := r.m[k]
	if !ok || e.deleted || e.arn != arn {
		e = &recentEntry{arn: arn}
		r.m[k] = e
	}
	e.at = time.Now()
	if m.Version >= e.meta.Version {
		e.meta = cloneMeta(m)
	}
	if !slices.ContainsFunc(e.versions, func(v sdk.VersionMeta) bool { return v.Version == m.Version }) {
		e.versions = append(e.versions, sdk.VersionMeta{Version: m.Version, CreatedAt: m.UpdatedAt})
		slices.SortFunc(e.versions, func(a, b sdk.VersionMeta) int { return int(a.Version - b.Version) })
	}
	r.prune()
}

// gone records that the secret with this ARN was deleted.
func (r *recentWrites) gone(project, name, arn string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[recentKey(project, name)] = &recentEntry{arn: arn, meta: sdk.Meta{Project: project, Name: name}, deleted: true, at: time.Now()}
	r.prune()
}

// get returns a copy of what this process knows about a secret.
func (r *recentWrites) get(project, name string) (recentEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[recentKey(project, name)]
	if !ok || time.Since(e.at) > r.window {
		return recentEntry{}, false
	}
	c := *e
	c.meta = cloneMeta(e.meta)
	c.versions = slices.Clone(e.versions)
	return c, true
}

// project returns the names of a project's secrets with recent entries.
func (r *recentWrites) project(project string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, e := range r.m {
		if e.meta.Project == project && time.Since(e.at) <= r.window {
			names = append(names, e.meta.Name)
		}
	}
	return names
}

// prune drops expired entries, then the oldest beyond maxRecent.
func (r *recentWrites) prune() {
	if len(r.m) <= maxRecent {
		return
	}
	type kv struct {
		k  string
		at time.Time
	}
	var all []kv
	for k, e := range r.m {
		if time.Since(e.at) > r.window {
			delete(r.m, k)
			continue
		}
		all = append(all, kv{k, e.at})
	}
	slices.SortFunc(all, func(a, b kv) int { return a.at.Compare(b.at) })
	for i := 0; len(r.m) > maxRecent; i++ {
		delete(r.m, all[i].k)
	}
}

func cloneMeta(m sdk.Meta) sdk.Meta {
	m.Keys = slices.Clone(m.Keys)
	m.Labels = sdk.CloneData(m.Labels)
	return m
}
