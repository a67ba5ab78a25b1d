package gcp

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/secretgate/secretgate/sdk"
)

// GCP label and annotation names this plugin owns.
const (
	labelProject  = "secretgate-project"
	annClaim      = "secretgate-claim"
	annClaimID    = "secretgate-claim-id"
	annClaimAt    = "secretgate-claim-at"
	annKeys       = "secretgate-keys"
	annLabels     = "secretgate-labels"
	maxGCPLabels  = 64
	maxAnnotation = 16*1024 - 1 // "the total size ... must be less than 16KiB"
)

// GCP label values allow only lowercase letters, digits, '_' and '-'.
var gcpLabelValRe = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

func (b *Backend) parent() string {
	if b.cfg.location != "" {
		return "projects/" + b.cfg.project + "/locations/" + b.cfg.location
	}
	return "projects/" + b.cfg.project
}

// secretID maps a secretgate project and name to a GCP secret id:
// <prefix>_<project>_<name>. Projects contain no '_', so the project is the
// text between the fixed prefix and the next '_': the mapping is injective.
func (b *Backend) secretID(project, name string) string {
	return b.cfg.prefix + "_" + project + "_" + name
}

func (b *Backend) secretName(project, name string) string {
	return b.parent() + "/secrets/" + b.secretID(project, name)
}

// nameFromID recovers the secretgate name from a GCP secret resource name of
// the given project; ok is false for anything this plugin did not make.
func (b *Backend) nameFromID(project, resource string) (string, bool) {
	id := resource[strings.LastIndex(resource, "/")+1:]
	name, ok := strings.CutPrefix(id, b.cfg.prefix+"_"+project+"_")
	if !ok || sdk.ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

func versionNumber(resource string) (int64, error) {
	i := strings.LastIndex(resource, "/versions/")
	if i < 0 {
		return 0, fmt.Errorf("gcp: unexpected version resource name %q", resource)
	}
	n, err := strconv.ParseInt(resource[i+len("/versions/"):], 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("gcp: unexpected version resource name %q", resource)
	}
	return n, nil
}

// state is what this plugin keeps on a GCP secret besides its versions.
type state struct {
	secret  *secretmanagerpb.Secret
	claim   int64     // the version number last claimed by a writer
	claimID string    // who claimed it
	claimAt time.Time // when (the writer's clock)
	keys    []string  // keys of version `claim`; nil when not recorded
	labels  map[string]string
}

func readState(s *secretmanagerpb.Secret) state {
	a := s.GetAnnotations()
	st := state{secret: s, claimID: a[annClaimID], labels: map[string]string{}}
	st.claim, _ = strconv.ParseInt(a[annClaim], 10, 64)
	st.claimAt, _ = time.Parse(time.RFC3339Nano, a[annClaimAt])
	if k, ok := a[annKeys]; ok && k != "" {
		st.keys = strings.Split(k, ",")
	}
	if l := a[annLabels]; l != "" {
		_ = json.Unmarshal([]byte(l), &st.labels)
	}
	return st
}

// claimAnnotations records a claim on version n for a write of keys and
// labels. The key list is left out when it does not fit next to the labels
// (then Describe and List read it from the payload instead).
func claimAnnotations(n int64, claimID string, at time.Time, keys []string, labels map[string]string) (map[string]string, error) {
	a := map[string]string{
		annClaim:   strconv.FormatInt(n, 10),
		annClaimID: claimID,
		annClaimAt: at.UTC().Format(time.RFC3339Nano),
	}
	if len(labels) > 0 {
		j, err := json.Marshal(labels)
		if err != nil {
			return nil, fmt.Errorf("gcp: encoding labels: %w", err)
		}
		a[annLabels] = string(j)
	}
	size := func() int {
		n := 0
		for k, v := range a {
			n += len(k) + len(v)
		}
		return n
	}
	if size() > maxAnnotation {
		return nil, sdk.Invalid("labels", "take %d bytes as JSON, more than GCP's 16 KiB annotation limit allows", size())
	}
	a[annKeys] = strings.Join(keys, ",") // keys contain no ','
	if size() > maxAnnotation {
		delete(a, annKeys)
	}
	return a, nil
}

// ownedAnnotations are the annotation keys secretgate owns; every other
// annotation is the operator's and is kept as it is.
var ownedAnnotations = []string{annClaim, annClaimID, annClaimAt, annKeys, annLabels}

// gcpLabels are the GCP labels of a secret: others (labels secretgate does
// not own, kept as they are), the project marker, and a mirror of every
// secretgate label that fits GCP's label rules and whose key others do not
// use (for the console, billing and IAM conditions; the annotation stays
// the truth), within GCP's 64 labels.
func gcpLabels(project string, labels, others map[string]string) map[string]string {
	out := make(map[string]string, len(others)+1+len(labels))
	for k, v := range others {
		out[k] = v
	}
	out[labelProject] = project
	for _, k := range sdk.SortedKeys(labels) {
		v := labels[k]
		if len(out) == maxGCPLabels {
			break
		}
		if _, taken := out[k]; taken || len(v) > 128 || !gcpLabelValRe.MatchString(v) {
			continue
		}
		out[k] = v
	}
	return out
}

// mergeOwned builds the labels and annotations a write sends: what st holds,
// with only the keys secretgate owns replaced. A GCP label is secretgate's
// when it is the project marker or mirrors a secretgate label of st with the
// same value; the rest are the operator's.
func mergeOwned(st state, project string, labels, ours map[string]string) (map[string]string, map[string]string, error) {
	others := map[string]string{}
	for k, v := range st.secret.GetLabels() {
		if k == labelProject {
			continue
		}
		if old, mirrored := st.labels[k]; mirrored && old == v {
			continue
		}
		others[k] = v
	}
	ann := map[string]string{}
	for k, v := range st.secret.GetAnnotations() {
		ann[k] = v
	}
	for _, k := range ownedAnnotations {
		delete(ann, k)
	}
	for k, v := range ours {
		ann[k] = v
	}
	size := func() int {
		n := 0
		for k, v := range ann {
			n += len(k) + len(v)
		}
		return n
	}
	if size() > maxAnnotation {
		delete(ann, annKeys) // Describe and List read the keys from the payload then
	}
	if size() > maxAnnotation {
		return nil, nil, sdk.Invalid("labels", "take %d bytes as JSON next to the secret's other annotations, more than GCP's 16 KiB annotation limit allows", size())
	}
	return gcpLabels(project, labels, others), ann, nil
}

func newClaimID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("gcp: generating a claim id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func sortedCopy(keys []string) []string {
	out := append([]string(nil), keys...)
	sort.Strings(out)
	return out
}
