// Package faultproxy is a fault-injecting HTTP proxy in front of a moto
// server, so that tests meet the behaviours of AWS Secrets Manager that moto
// (strongly consistent, unthrottled, unlimited) does not have:
//
//   - Lag: a write (CreateSecret, PutSecretValue, UpdateSecret, TagResource,
//     UntagResource) becomes visible to DescribeSecret, ListSecretVersionIds
//     and ListSecrets only Lag after it returned; until then those calls see
//     the secret as it was before the write (a create: not at all).
//     Documented by AWS: "Secrets Manager API operations are eventually
//     consistent" (ListSecrets and the user guide). The bound is not
//     documented; Lag is an assumption. GetSecretValue is not delayed (an
//     assumption: AWS documents no separate rule for it), deletes are
//     visible at once (an assumption). TagLag, when set, is the lag of
//     TagResource and UntagResource instead: AWS documents no order between
//     a value write becoming visible and a tag write made right after it, so
//     a new version may show with the tags of the previous one (the
//     duration is an assumption). Visibility stays in write order: a write
//     is visible once it and every earlier write of the secret are. Nothing
//     of a write is visible while it is in flight (moto may have applied it
//     before it answers), so what a reader has seen never disappears again:
//     reads are monotonic (an assumption, and the kind one: AWS documents
//     no such guarantee across its replicas).
//   - DeleteHold: after DeleteSecret, CreateSecret of the same name fails with
//     InvalidRequestException "already scheduled for deletion" for that
//     long. Documented: DeleteSecret "there might be a short delay before the
//     secret is permanently deleted"; the length is an assumption.
//   - MaxVersions: at most that many value writes per secret within
//     VersionWindow; more fail with LimitExceededException. Documented
//     (quotas page: AWS removes unlabelled versions beyond 100 but never those
//     created in the last 24 hours, so sustained writes reach the version
//     quota); the exact counting rule is an assumption.
//   - MaxTags: TagResource that would leave a secret with more tags (not
//     counting aws: ones) fails with InvalidParameterException. The limit
//     is documented ("Maximum number of tags per secret: 50", TagResource);
//     the error code is an assumption.
//   - WriteRate/WriteBurst: PutSecretValue and UpdateSecret together are
//     limited to WriteRate per second (token bucket), more fail with
//     ThrottlingException. Documented: "Combined rate of PutSecretValue, ...,
//     UpdateSecret ... 50 per second" per region.
//
// Every call is counted by operation (Calls), refused ones included.
package faultproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretgate/secretgate/internal/mototest"
)

// Config selects the faults; the zero value forwards everything unchanged.
type Config struct {
	Lag           time.Duration
	TagLag        time.Duration // TagResource and UntagResource; 0 = Lag
	DeleteHold    time.Duration
	MaxVersions   int
	VersionWindow time.Duration // 0 = for the proxy's lifetime
	WriteRate     float64       // per second; 0 = unlimited
	WriteBurst    int           // at least 1 when WriteRate > 0
	MaxTags       int           // tags per secret, aws: ones excluded; 0 = no limit
	// Deny lists operations answered with AccessDeniedException, as for
	// credentials whose IAM policy lacks them.
	Deny []string
}

// Proxy is a running fault proxy.
type Proxy struct {
	// Endpoint is the base URL for the SDK's BaseEndpoint.
	Endpoint string
	upstream string
	cfg      Config
	client   *http.Client

	mu       sync.Mutex
	calls    map[string]int
	pending  map[string][]snapshot // by secret name, oldest first
	held     map[string]time.Time  // name -> free at
	versions map[string][]time.Time
	tokens   float64
	last     time.Time
	locks    map[string]*sync.Mutex
}

// snapshot is what the delayed reads answer until visibleAt: the state
// just before a write.
type snapshot struct {
	visibleAt time.Time
	describe  answer
	versions  answer
}

type answer struct {
	status int
	body   []byte
}

// Start runs a proxy to upstream (a moto endpoint) on a free 127.0.0.1 port,
// closed when the test ends.
func Start(t testing.TB, upstream string, cfg Config) *Proxy {
	t.Helper()
	p := &Proxy{
		upstream: strings.TrimSuffix(upstream, "/"), cfg: cfg, client: &http.Client{Timeout: 30 * time.Second},
		calls: map[string]int{}, pending: map[string][]snapshot{}, held: map[string]time.Time{},
		versions: map[string][]time.Time{}, tokens: float64(max(cfg.WriteBurst, 1)), last: time.Now(),
		locks: map[string]*sync.Mutex{},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.Endpoint = "http://" + l.Addr().String()
	return p
}

// Calls returns how often each operation was called since the last Reset.
func (p *Proxy) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.calls)
}

// Reset zeroes the call counts.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = map[string]int{}
}

// request is the part of a Secrets Manager JSON request the proxy reads.
type request struct {
	SecretID     string  `json:"SecretId"`
	Name         string  `json:"Name"`
	SecretString *string `json:"SecretString"`
	Tags         []tag   `json:"Tags"`
}

type tag struct {
	Key string `json:"Key"`
}

var (
	delayedWrites = map[string]bool{"CreateSecret": true, "PutSecretValue": true, "UpdateSecret": true, "TagResource": true, "UntagResource": true}
	rateLimited   = map[string]bool{"PutSecretValue": true, "UpdateSecret": true}
)

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	var req request
	_ = json.Unmarshal(body, &req)
	name := req.Name
	if req.SecretID != "" {
		name = nameOf(req.SecretID)
	}
	p.mu.Lock()
	p.calls[op]++
	p.mu.Unlock()

	if slices.Contains(p.cfg.Deny, op) {
		awsError(w, "AccessDeniedException", "User is not authorized to perform: secretsmanager:"+op)
		return
	}
	if op == "" || (name == "" && op != "ListSecrets") {
		p.forward(w, r, body)
		return
	}
	if rateLimited[op] && !p.take() {
		awsError(w, "ThrottlingException", "Rate exceeded")
		return
	}
	switch op {
	case "CreateSecret":
		if p.isHeld(name) {
			awsError(w, "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
			return
		}
	case "DescribeSecret", "ListSecretVersionIds":
		if a, ok := p.delayed(name, op); ok {
			reply(w, a)
			return
		}
	case "ListSecrets":
		p.listSecrets(w, r, body)
		return
	case "TagResource":
		if p.cfg.MaxTags > 0 && p.tagsAfter(name, req.Tags, r) > p.cfg.MaxTags {
			awsError(w, "InvalidParameterException", fmt.Sprintf("A secret can have at most %d tags.", p.cfg.MaxTags))
			return
		}
	}
	valueWrite := req.SecretString != nil && (op == "CreateSecret" || rateLimited[op])
	if valueWrite && p.cfg.MaxVersions > 0 && p.versionCount(name) >= p.cfg.MaxVersions {
		awsError(w, "LimitExceededException", "The request failed because it would exceed one of the Secrets Manager quotas.")
		return
	}
	if !delayedWrites[op] && op != "DeleteSecret" {
		p.forward(w, r, body)
		return
	}
	// Writes of one secret are serialized so that each snapshot is the
	// state right before its write.
	lk := p.lock(name)
	lk.Lock()
	defer lk.Unlock()
	lag := p.cfg.Lag
	if p.cfg.TagLag > 0 && (op == "TagResource" || op == "UntagResource") {
		lag = p.cfg.TagLag
	}
	delayed := lag > 0 && delayedWrites[op]
	if delayed {
		// The snapshot is pending before the write reaches moto: a read
		// that moto answers after applying the write, but before the write
		// returned, must see the old state too. Registered only once the
		// write had returned, it let such a read see the new state and the
		// next read the old one again, a create undone, which no
		// eventually consistent service shows once a reader saw it.
		snap := snapshot{
			visibleAt: time.Now().Add(inFlight),
			describe:  p.call("DescribeSecret", fmt.Sprintf(`{"SecretId":%q}`, name), r),
			versions:  p.call("ListSecretVersionIds", fmt.Sprintf(`{"SecretId":%q,"IncludeDeprecated":true,"MaxResults":100}`, name), r),
		}
		p.mu.Lock()
		p.pending[name] = append(p.pending[name], snap)
		p.mu.Unlock()
	}
	a := p.call(op, string(body), r)
	now := time.Now()
	p.mu.Lock()
	switch {
	case a.status != http.StatusOK:
		if delayed {
			p.dropLast(name) // the write did not happen: nothing to lag
		}
	case op == "DeleteSecret":
		delete(p.pending, name)
		delete(p.versions, name)
		if p.cfg.DeleteHold > 0 {
			p.held[name] = now.Add(p.cfg.DeleteHold)
		}
	case delayed:
		// Writes of name are serialized: its in-flight snapshot is the last.
		snaps := p.pending[name]
		snaps[len(snaps)-1].visibleAt = now.Add(lag)
	}
	if valueWrite && a.status == http.StatusOK {
		p.versions[name] = append(p.versions[name], now)
	}
	p.mu.Unlock()
	reply(w, a)
}

// inFlight stands for "not visible before the write returns": the write
// sets the snapshot's real visibleAt when it does.
const inFlight = 24 * time.Hour

// dropLast removes the in-flight snapshot of name, under p.mu.
func (p *Proxy) dropLast(name string) {
	snaps := p.pending[name]
	if len(snaps) <= 1 {
		delete(p.pending, name)
		return
	}
	p.pending[name] = snaps[:len(snaps)-1]
}

// tagsAfter counts the tags a secret would have after TagResource, aws:
// ones excluded. It reads the current tags from moto, not through the lag.
func (p *Proxy) tagsAfter(name string, add []tag, r *http.Request) int {
	a := p.call("DescribeSecret", fmt.Sprintf(`{"SecretId":%q}`, name), r)
	var d struct {
		Tags []tag `json:"Tags"`
	}
	_ = json.Unmarshal(a.body, &d)
	keys := map[string]bool{}
	for _, t := range append(d.Tags, add...) {
		if !strings.HasPrefix(t.Key, "aws:") {
			keys[t.Key] = true
		}
	}
	return len(keys)
}

// nameOf maps a SecretId (name or ARN) to the secret name. moto's ARNs end
// in the name, a dash and six random characters, like AWS's.
func nameOf(id string) string {
	if _, rest, ok := strings.Cut(id, ":secret:"); ok && len(rest) > 7 {
		return rest[:len(rest)-7]
	}
	return id
}

func (p *Proxy) lock(name string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	lk, ok := p.locks[name]
	if !ok {
		lk = &sync.Mutex{}
		p.locks[name] = lk
	}
	return lk
}

// take spends one token of the write bucket.
func (p *Proxy) take() bool {
	if p.cfg.WriteRate <= 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.tokens = min(float64(max(p.cfg.WriteBurst, 1)), p.tokens+now.Sub(p.last).Seconds()*p.cfg.WriteRate)
	p.last = now
	if p.tokens < 1 {
		return false
	}
	p.tokens--
	return true
}

func (p *Proxy) isHeld(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.held[name])
}

func (p *Proxy) versionCount(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.VersionWindow <= 0 {
		return len(p.versions[name])
	}
	cut := time.Now().Add(-p.cfg.VersionWindow)
	n := 0
	for _, at := range p.versions[name] {
		if at.After(cut) {
			n++
		}
	}
	return n
}

// delayed returns the answer a lagging read of name gets, if any: the
// state before the oldest write that is not visible yet.
func (p *Proxy) delayed(name, op string) (answer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	snaps := p.pending[name]
	now := time.Now()
	for len(snaps) > 0 && !now.Before(snaps[0].visibleAt) {
		snaps = snaps[1:]
	}
	if len(snaps) == 0 {
		delete(p.pending, name)
		return answer{}, false
	}
	p.pending[name] = snaps
	if op == "DescribeSecret" {
		return snaps[0].describe, true
	}
	return snaps[0].versions, true
}

// anyPending says whether any write is not visible yet, dropping the
// snapshots of those that are.
func (p *Proxy) anyPending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for name, snaps := range p.pending {
		// With TagLag an earlier write may become visible after a later one.
		if !slices.ContainsFunc(snaps, func(s snapshot) bool { return now.Before(s.visibleAt) }) {
			delete(p.pending, name)
		}
	}
	return len(p.pending) > 0
}

// listSecrets forwards ListSecrets and rewrites the entries of secrets with
// writes not yet visible: dropped if they did not exist before, else shown
// as DescribeSecret showed them before the write.
func (p *Proxy) listSecrets(w http.ResponseWriter, r *http.Request, body []byte) {
	a := p.call("ListSecrets", string(body), r)
	if a.status != http.StatusOK || !p.anyPending() {
		reply(w, a)
		return
	}
	var out map[string]json.RawMessage
	var list []map[string]json.RawMessage
	if json.Unmarshal(a.body, &out) != nil || json.Unmarshal(out["SecretList"], &list) != nil {
		reply(w, a)
		return
	}
	kept := list[:0]
	for _, e := range list {
		var name string
		_ = json.Unmarshal(e["Name"], &name)
		old, ok := p.delayed(name, "DescribeSecret")
		if !ok {
			kept = append(kept, e)
			continue
		}
		var prev map[string]json.RawMessage
		if old.status != http.StatusOK || json.Unmarshal(old.body, &prev) != nil {
			continue // created after the visible state
		}
		if v, ok := prev["VersionIdsToStages"]; ok {
			prev["SecretVersionsToStages"] = v
			delete(prev, "VersionIdsToStages")
		}
		kept = append(kept, prev)
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		reply(w, a)
		return
	}
	out["SecretList"] = raw
	b, _ := json.Marshal(out)
	reply(w, answer{status: http.StatusOK, body: b})
}

// call sends one Secrets Manager request upstream with the original
// request's headers (moto does not check signatures).
func (p *Proxy) call(op, body string, orig *http.Request) answer {
	req, err := http.NewRequestWithContext(orig.Context(), http.MethodPost, p.upstream+"/", strings.NewReader(body))
	if err != nil {
		return answer{status: http.StatusBadGateway, body: []byte(err.Error())}
	}
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "Content-Type"} {
		req.Header.Set(h, orig.Header.Get(h))
	}
	req.Header.Set("X-Amz-Target", "secretsmanager."+op)
	resp, err := p.client.Do(req)
	if err != nil {
		return answer{status: http.StatusBadGateway, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{status: http.StatusBadGateway, body: []byte(err.Error())}
	}
	return answer{status: resp.StatusCode, body: b}
}

func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func reply(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// awsError answers like AWS's JSON protocol does.
func awsError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(http.StatusBadRequest)
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	_, _ = w.Write(b)
}

// CI is the stand-in the AWS tests run against: every fault on, with
// delays short enough for CI. The rate and tag limits are AWS's own; the
// lag and the delete hold are assumptions (AWS documents neither bound),
// and 50 versions per secret is below AWS's ~100 so that tests reach it.
var CI = Config{
	Lag:         300 * time.Millisecond,
	DeleteHold:  2 * time.Second,
	MaxVersions: 50,
	WriteRate:   50,
	WriteBurst:  50,
	MaxTags:     50,
}

// StartMoto starts a moto server (see mototest.Start: skips, or fails under
// CI=true, when moto is missing) with a proxy in front of it.
func StartMoto(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	moto := mototest.Start(t)
	if moto == nil {
		return nil
	}
	return Start(t, moto.Endpoint, cfg)
}
