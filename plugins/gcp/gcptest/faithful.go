package gcptest

import (
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Options make the server behave like the real service where the real
// service is weaker than a single in-memory map: consistency lag and quotas.
// The zero value is a strongly consistent, unlimited server.
type Options struct {
	// Lag: GetSecret, GetSecretVersion, ListSecrets, ListSecretVersions and
	// AccessSecretVersion of `latest` or an alias answer from the state as it
	// was Lag ago (a secret created since is NOT_FOUND, one deleted since is
	// still there). Only AccessSecretVersion by number, and every mutation
	// (including its etag check), see the current state. Documented: "adding
	// a secret version and then immediately accessing that secret version by
	// version number is a strongly consistent operation ... This doesn't
	// apply when you access a secret version using aliases or latest. Other
	// operations within Secret Manager are eventually consistent."
	// (cloud.google.com/secret-manager/docs/reference/consistency). Modelled
	// as a fixed delay: an assumption (Google gives no bound: "typically
	// converge within minutes, but may take a few hours"). That mutations
	// check etags against the current state is an assumption too (the etag
	// page documents optimistic concurrency, not its consistency).
	Lag time.Duration
	// LatestLag, when set, is the lag of `latest` and aliases (in
	// AccessSecretVersion and GetSecretVersion) instead of Lag: Google does
	// not say the eventually consistent reads converge together, so tests
	// can make GetSecret current while `latest` still lags.
	LatestLag time.Duration
	// Quotas answered with RESOURCE_EXHAUSTED; zero limits are unlimited.
	Quotas Quotas
}

// Limit is at most N calls per fixed window of Per.
type Limit struct {
	N   int
	Per time.Duration
}

// Quotas are the per-project request quotas and the per-secret modification
// limit (cloud.google.com/secret-manager/quotas): an access request is an
// AccessSecretVersion, a write request any mutation, a read request any
// other call.
type Quotas struct {
	Access, Read, Write Limit
	// PerSecret applies to AddSecretVersion and UpdateSecret of one secret;
	// every limit in the list must hold.
	PerSecret []Limit
}

// GoogleQuotas are Google's documented defaults for global secrets: 90,000
// access, 600 read and 600 write requests per minute per project, and 2 per
// second and 120 per minute AddSecretVersion+UpdateSecret per secret (the
// last is "soft-enforced"; here it is always enforced).
func GoogleQuotas() Quotas {
	return Quotas{
		Access:    Limit{90000, time.Minute},
		Read:      Limit{600, time.Minute},
		Write:     Limit{600, time.Minute},
		PerSecret: []Limit{{2, time.Second}, {120, time.Minute}},
	}
}

// NewServerWith returns an empty server with the given options.
func NewServerWith(o Options) *Server {
	s := NewServer()
	s.opts = o
	return s
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Running {
	return startServer(t, NewServerWith(o))
}

// ProjectNumber is the number this server gives a project id. Secret
// Manager answers with resource names holding the project number whatever
// the request used (documented in the Secret proto: "in the format
// projects/*/secrets/*"; the number is what the service returns); here it
// is a stable hash of the id.
func ProjectNumber(id string) string {
	if projectNumberRe.MatchString(id) {
		return id
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return fmt.Sprint(100000000000 + h.Sum64()%900000000000)
}

// --- call counts ---

type counter struct {
	mu    sync.Mutex
	calls map[string]int
}

// Calls returns how many calls of each method (short name) the server got
// since it started or since ResetCalls, refused ones included.
func (s *Server) Calls() map[string]int {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	out := make(map[string]int, len(s.count.calls))
	for k, v := range s.count.calls {
		out[k] = v
	}
	return out
}

// ResetCalls zeroes the call counts.
func (s *Server) ResetCalls() {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	s.count.calls = nil
}

func (s *Server) countCall(method string) {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	if s.count.calls == nil {
		s.count.calls = map[string]int{}
	}
	s.count.calls[method]++
}

// --- quotas ---

type window struct {
	start time.Time
	n     int
}

type quotaState struct {
	mu      sync.Mutex
	windows map[string]*window
}

// take spends one unit of lim under key; it returns how long until the
// window resets when none is left.
func (q *quotaState) take(key string, lim Limit, now time.Time) (time.Duration, bool) {
	if lim.N <= 0 || lim.Per <= 0 {
		return 0, true
	}
	if q.windows == nil {
		q.windows = map[string]*window{}
	}
	w := q.windows[key]
	start := now.Truncate(lim.Per)
	if w == nil || !w.start.Equal(start) {
		w = &window{start: start}
		q.windows[key] = w
	}
	if w.n >= lim.N {
		return start.Add(lim.Per).Sub(now), false
	}
	w.n++
	return 0, true
}

var writeMethods = map[string]bool{
	"CreateSecret": true, "UpdateSecret": true, "DeleteSecret": true, "AddSecretVersion": true,
	"EnableSecretVersion": true, "DisableSecretVersion": true, "DestroySecretVersion": true,
}

// resourceOf is the resource name a request is about (a parent, secret or
// version name).
func resourceOf(req any) string {
	switch r := req.(type) {
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetParent() string }:
		return r.GetParent()
	case interface {
		GetSecret() *secretmanagerpb.Secret
	}:
		return r.GetSecret().GetName()
	}
	return ""
}

func projectOf(resource string) string {
	parts := strings.SplitN(resource, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return ProjectNumber(parts[1])
}

func secretOf(resource string) string {
	if i := strings.Index(resource, "/versions/"); i >= 0 {
		resource = resource[:i]
	}
	parts := strings.SplitN(resource, "/", 3)
	if len(parts) == 3 {
		return "projects/" + ProjectNumber(parts[1]) + "/" + parts[2]
	}
	return resource
}

// exhausted is the error Google's APIs answer for a quota (AIP-193: an
// ErrorInfo with reason RATE_LIMIT_EXCEEDED naming quota_metric and
// quota_limit). The RetryInfo is this server's addition (an assumption:
// Google does not document one for Secret Manager); clients must cope
// without it.
func exhausted(metric, limit, consumer string, retry time.Duration) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("Quota exceeded for quota metric '%s' and limit '%s' of service 'secretmanager.googleapis.com' for consumer '%s'.", metric, limit, consumer))
	st, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: "RATE_LIMIT_EXCEEDED", Domain: "googleapis.com", Metadata: map[string]string{
			"service": "secretmanager.googleapis.com", "quota_metric": metric, "quota_limit": limit, "consumer": consumer,
		}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)},
	)
	if err != nil {
		return status.Error(codes.ResourceExhausted, "quota exceeded")
	}
	return st.Err()
}

// admit charges a call to the quotas; a refused call is not served.
func (s *Server) admit(method string, req any) error {
	q := s.opts.Quotas
	res := resourceOf(req)
	project := projectOf(res)
	consumer := "project_number:" + project
	now := s.now()
	s.quota.mu.Lock()
	defer s.quota.mu.Unlock()
	per := func(l Limit) string {
		if l.Per == time.Second {
			return "second"
		}
		if l.Per == time.Minute {
			return "minute"
		}
		return l.Per.String()
	}
	switch {
	case method == "AccessSecretVersion":
		if d, ok := s.quota.take("access/"+project, q.Access, now); !ok {
			return exhausted("secretmanager.googleapis.com/access_requests", "AccessRequestsPerMinutePerProject", consumer, d)
		}
	case writeMethods[method]:
		if method == "AddSecretVersion" || method == "UpdateSecret" {
			sec := secretOf(res)
			for i, l := range q.PerSecret {
				if d, ok := s.quota.take(fmt.Sprintf("secret%d/%s", i, sec), l, now); !ok {
					return exhausted("secretmanager.googleapis.com/secret_modifications", fmt.Sprintf("ModificationsPer%sPerSecret", strings.ToUpper(per(l)[:1])+per(l)[1:]), consumer, d)
				}
			}
		}
		if d, ok := s.quota.take("write/"+project, q.Write, now); !ok {
			return exhausted("secretmanager.googleapis.com/write_requests", "WriteRequestsPerMinutePerProject", consumer, d)
		}
	default:
		if d, ok := s.quota.take("read/"+project, q.Read, now); !ok {
			return exhausted("secretmanager.googleapis.com/read_requests", "ReadRequestsPerMinutePerProject", consumer, d)
		}
	}
	return nil
}

// --- lag ---

// rev is the state of one secret from a moment on; sec nil = deleted.
type rev struct {
	at  time.Time
	sec *secret
}

// snapshot deep-copies a secret for the history; mu must be held.
func snapshot(sec *secret) *secret {
	if sec == nil {
		return nil
	}
	out := &secret{pb: clone(sec.pb), order: sec.order, versions: make([]*version, len(sec.versions))}
	for i, v := range sec.versions {
		out.versions[i] = &version{pb: clone(v.pb), data: append([]byte(nil), v.data...), crc: v.crc}
	}
	return out
}

// record appends the current state of name to its history; mu must be held
// for writing. Revisions that no lagged reader can see any more are dropped.
func (s *Server) record(name string) {
	longest := max(s.opts.Lag, s.opts.LatestLag)
	if longest <= 0 {
		return
	}
	now := s.now()
	h := append(s.history[name], rev{at: now, sec: snapshot(s.secrets[name])})
	cut := now.Add(-longest)
	i := 0
	for i+1 < len(h) && !h[i+1].at.After(cut) {
		i++
	}
	s.history[name] = h[i:]
}

// view is what a reader lagging by lag sees of name; mu must be held.
func (s *Server) view(name string, lag time.Duration) *secret {
	if lag <= 0 {
		return s.secrets[name]
	}
	cut := s.now().Add(-lag)
	var out *secret
	for _, r := range s.history[name] {
		if r.at.After(cut) {
			break
		}
		out = r.sec
	}
	return out
}

// names lists every secret a lagged reader may see; mu must be held.
func (s *Server) names() []string {
	if max(s.opts.Lag, s.opts.LatestLag) <= 0 {
		out := make([]string, 0, len(s.secrets))
		for n := range s.secrets {
			out = append(out, n)
		}
		return out
	}
	out := make([]string, 0, len(s.history))
	for n := range s.history {
		out = append(out, n)
	}
	return out
}
