package aws

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/uuid"

	"github.com/secretgate/secretgate/sdk"
)

// Tag keys this plugin owns. Every secretgate secret carries the first two;
// each label is one more tag.
const (
	tagProject     = "secretgate:project"
	tagName        = "secretgate:name"
	tagLabelPrefix = "secretgate:label:"
	tagOwnPrefix   = "secretgate:"

	// maxTags is the AWS quota of tags per secret (TagResource: "Maximum
	// number of tags per secret: 50").
	maxTags = 50
	// maxDescription is the length limit of a secret's Description
	// (CreateSecret/UpdateSecret API reference: "Maximum length of 2048").
	maxDescription = 2048
	// maxSecretName is the AWS limit on secret names (CreateSecret: "Length
	// Constraints: Minimum length of 1. Maximum length of 512").
	maxSecretName = 512

	stageCurrent = "AWSCURRENT"
)

// tokenNamespace is the UUIDv5 namespace of version tokens. It is fixed
// forever: changing it would make every stored version unreadable by number.
var tokenNamespace = uuid.MustParse("6f1d8c3e-2b7a-4c55-9a61-3e0f4d9b2c17")

// prefixRe is what a configured prefix may hold: characters AWS allows in
// secret names (CreateSecret: "ASCII letters, numbers, and /_+=.@-") that
// are also allowed in a ListSecrets filter value (Filter: pattern
// ^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$).
var prefixRe = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]*$`)

// secretID is the AWS secret name of a secretgate secret. Projects hold no
// '/', so <prefix><project>/<name> is injective.
func secretID(prefix, project, name string) string {
	return prefix + project + "/" + name
}

// projectPrefix is the AWS name prefix of every secret of a project.
func projectPrefix(prefix, project string) string { return prefix + project + "/" }

// parseSecretID splits an AWS secret name back into its secretgate name
// within a project, or reports that it is no secretgate secret of that
// project (a deeper path, an invalid name).
func parseSecretID(prefix, project, id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, projectPrefix(prefix, project))
	if !ok || sdk.ValidateName(rest) != nil {
		return "", false
	}
	return rest, true
}

// versionToken is the ClientRequestToken, and so the AWS VersionId, of
// version n of a secret: a UUIDv5 of project, name and n. Two writers that
// both try to create version n send the same token, and AWS's idempotency
// rule turns that into a check-and-set (see Write).
func versionToken(project, name string, n int64) string {
	return uuid.NewSHA1(tokenNamespace, []byte(project+"\x00"+name+"\x00"+strconv.FormatInt(n, 10))).String()
}

// maxVersionSearch bounds the search of versionNumber; a secret written
// through secretgate more often than this without a usable hint is treated
// as holding a foreign version.
const maxVersionSearch = 1 << 16

// versionNumber maps an AWS VersionId back to our version number, searching
// outward from hint (the number the metadata cache claims, or 0). It fails
// for ids that secretgate did not write (console edits, rotation lambdas).
func versionNumber(project, name, id string, hint int64) (int64, bool) {
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 5 {
		return 0, false
	}
	if hint < 1 {
		hint = 1
	}
	// Versions only grow, so the true number is usually at or just above a
	// stale hint; look upward first, then downward.
	for d := int64(0); d < maxVersionSearch; d++ {
		if up := hint + d; versionToken(project, name, up) == id {
			return up, true
		}
		if down := hint - d - 1; down >= 1 && versionToken(project, name, down) == id {
			return down, true
		}
	}
	return 0, false
}

// currentVersionID finds the VersionId that carries the AWSCURRENT stage.
func currentVersionID(stages map[string][]string) string {
	for id, ss := range stages {
		for _, s := range ss {
			if s == stageCurrent {
				return id
			}
		}
	}
	return ""
}

// metaCache is what the plugin keeps in the secret's Description: the
// number, sorted keys and creation time of the version it last wrote. It is
// a cache, never the truth: it is used only when v maps to the VersionId
// that AWS currently labels AWSCURRENT (version contents are immutable,
// PutSecretValue: "you can't modify an existing version"), else the plugin
// reads the current version once to learn its keys.
type metaCache struct {
	V int64     `json:"v"`
	K []string  `json:"k,omitempty"`
	U time.Time `json:"u,omitzero"` // written by older plugin versions only
	// C is the random nonce of the create that made the secret (see create).
	C string `json:"c,omitempty"`
}

// updated is the UpdatedAt the cache gives: version 1 was created with the
// secret; for later versions only older plugins recorded a time.
func (c metaCache) updated(created time.Time) time.Time {
	if !c.U.IsZero() {
		return c.U.UTC()
	}
	if c.V == 1 {
		return created
	}
	return time.Time{}
}

const cacheMarker = "secretgate:"

// encodeCache renders the Description. Keys that would overflow the 2048
// character limit are left out; readers then fall back to GetSecretValue.
func encodeCache(c metaCache) string {
	b, err := json.Marshal(c)
	if err == nil && len(cacheMarker)+len(b) <= maxDescription {
		return cacheMarker + string(b)
	}
	c.K = nil
	b, _ = json.Marshal(c) // a number and a time always marshal
	return cacheMarker + string(b)
}

// decodeCache parses a Description; a foreign or broken one is no cache.
func decodeCache(desc string) (metaCache, bool) {
	rest, ok := strings.CutPrefix(desc, cacheMarker)
	if !ok {
		return metaCache{}, false
	}
	var c metaCache
	if err := json.Unmarshal([]byte(rest), &c); err != nil || c.V < 1 {
		return metaCache{}, false
	}
	return c, true
}

// labelsFromTags extracts labels from a secret's tags.
func labelsFromTags(tags []types.Tag) map[string]string {
	labels := map[string]string{}
	for _, t := range tags {
		if k, ok := strings.CutPrefix(deref(t.Key), tagLabelPrefix); ok {
			labels[k] = deref(t.Value)
		}
	}
	return labels
}

// tagValue finds one tag's value.
func tagValue(tags []types.Tag, key string) (string, bool) {
	for _, t := range tags {
		if deref(t.Key) == key {
			return deref(t.Value), true
		}
	}
	return "", false
}

// ownsSecret says whether tags mark the secret as project/name's; the name
// mapping alone already implies it, the tags guard against foreign secrets
// that happen to live under the prefix.
func ownsSecret(tags []types.Tag, project, name string) bool {
	p, ok1 := tagValue(tags, tagProject)
	n, ok2 := tagValue(tags, tagName)
	return ok1 && ok2 && p == project && n == name
}

// createTags are the tags of a new secret: ours, the configured extra tags,
// and one per label, sorted by key so requests are deterministic.
func createTags(project, name string, extra, labels map[string]string) []types.Tag {
	all := map[string]string{tagProject: project, tagName: name}
	for k, v := range extra {
		all[k] = v
	}
	for k, v := range labels {
		all[tagLabelPrefix+k] = v
	}
	return toTags(all)
}

func toTags(m map[string]string) []types.Tag {
	tags := make([]types.Tag, 0, len(m))
	for _, k := range sdk.SortedKeys(m) {
		tags = append(tags, types.Tag{Key: ptr(k), Value: ptr(m[k])})
	}
	return tags
}

// labelDiff computes the tags to set and the tag keys to remove to turn the
// labels have into want.
func labelDiff(have, want map[string]string) (set []types.Tag, remove []string) {
	add := map[string]string{}
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			add[tagLabelPrefix+k] = v
		}
	}
	for _, k := range sdk.SortedKeys(have) {
		if _, ok := want[k]; !ok {
			remove = append(remove, tagLabelPrefix+k)
		}
	}
	return toTags(add), remove
}

// countOtherTags counts the tags that are not labels and count against the
// 50: "Tags with this prefix [aws:] do not count against your tags per
// secret limit" (TagResource).
func countOtherTags(tags []types.Tag) int {
	n := 0
	for _, t := range tags {
		k := deref(t.Key)
		if !strings.HasPrefix(k, tagLabelPrefix) && !strings.HasPrefix(k, "aws:") {
			n++
		}
	}
	return n
}

// checkTagBudget refuses label sets that would exceed the AWS quota of 50
// tags per secret ("Maximum number of tags per secret: 50", TagResource),
// naming the field and the limit. others counts the tags that are not
// labels: secretgate's two, the configured tags, and any added by others.
func checkTagBudget(others int, labels map[string]string) error {
	if budget := maxTags - others; len(labels) > budget {
		return sdk.Invalid("labels", "holds %d labels; AWS allows %d tags per secret and %d are taken by other tags (secretgate's, the configured ones, and any added outside secretgate), which leaves room for at most %d labels", len(labels), maxTags, others, max(budget, 0))
	}
	return nil
}

// parseTags parses the `tags` setting: comma-separated key=value pairs, for
// example "team=payments,cost-center=42". Whitespace around keys and values
// is trimmed; a value may contain '=' but no ','. Keys must not use the
// reserved prefixes "aws:" and "secretgate:".
func parseTags(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || k == "":
			return nil, sdk.Invalid("tags", "entry %d must be key=value", i+1)
		case len(k) > 128 || len(v) > 256:
			return nil, sdk.Invalid("tags", "entry %d: keys are at most 128 and values at most 256 characters", i+1)
		case strings.HasPrefix(strings.ToLower(k), "aws:") || strings.HasPrefix(k, tagOwnPrefix):
			return nil, sdk.Invalid("tags", "key %q uses a reserved prefix (aws: or secretgate:)", k)
		}
		if _, dup := out[k]; dup {
			return nil, sdk.Invalid("tags", "key %q is given twice", k)
		}
		out[k] = v
	}
	if len(out) > maxTags-2 {
		return nil, sdk.Invalid("tags", "holds %d tags; AWS allows %d per secret and this backend uses 2", len(out), maxTags)
	}
	return out, nil
}

func validatePrefix(p string) error {
	if !prefixRe.MatchString(p) {
		return sdk.Invalid("prefix", "may hold only ASCII letters, digits and / _ + = . @ -")
	}
	// Longest project (63) + '/' + longest name (128) must still fit.
	if len(p)+63+1+sdk.MaxNameLen > maxSecretName {
		return sdk.Invalid("prefix", "is longer than %d characters", maxSecretName-63-1-sdk.MaxNameLen)
	}
	if strings.HasPrefix(p, "!") {
		return sdk.Invalid("prefix", "must not start with '!'")
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
