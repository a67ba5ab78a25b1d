// Package gcp is secretgate's Google Cloud Secret Manager backend, served as
// the built-in plugin `gcp`. It uses cloud.google.com/go/secretmanager/apiv1
// (gRPC).
//
// The operator's reference (settings, IAM, names, consistency, quotas and
// costs) is docs/backends/gcp.md; it is not repeated here. What follows is
// how the plugin does it, and why it is correct.
//
// # Mapping
//
// Names. The secret `name` of secretgate project `project` is the GCP
// secret id `<prefix>_<project>_<name>` under projects/<gcp_project> (or
// projects/<gcp_project>/locations/<location>). Secretgate projects contain
// no '_' and the prefix is fixed, so the project is the text between the
// prefix and the next '_': the mapping is injective. Ids stay within GCP's
// 255 characters (prefix ≤ 62, project ≤ 63, name ≤ 128). Secret Manager
// answers resource names with the project number whatever the request
// used; the plugin reads only the id after the last '/'.
//
// Values. Version payload = sdk.EncodeData(data), the canonical JSON of the
// key/value map (≤ 64 KiB, GCP's payload limit too). data_crc32c (CRC32C,
// Castagnoli) is sent with every AddSecretVersion and checked on every
// AccessSecretVersion; a mismatch is retried like an unavailable server.
//
// Versions. GCP's version numbers (1, 2, 3... per secret) are secretgate's.
// Nothing is pruned (MaxVersions 0). See "Reads" for disabled versions.
//
// # Consistency model
//
// Google documents (cloud.google.com/secret-manager/docs/reference/
// consistency) that adding a version and then accessing that version BY
// NUMBER is strongly consistent, that this does not hold for `latest` or
// aliases, and that every other operation is eventually consistent,
// "typically within minutes, but may take a few hours". So GetSecret,
// GetSecretVersion, ListSecrets, ListSecretVersions and access of `latest`
// may all answer from the past. The plugin relies on three things only:
//
//   - access by number: whether version n exists (and its payload);
//   - the answers to its own mutations (UpdateSecret, CreateSecret and
//     AddSecretVersion return what they stored, and the version number);
//   - the secret's etag as the serialization point: an UpdateSecret or
//     DeleteSecret carrying an etag fails with FAILED_PRECONDITION unless it
//     is the current one. That the check is made against the current state,
//     not a lagging copy, is an assumption (the etag page documents
//     optimistic concurrency control, not its consistency); everything else
//     here follows from it.
//
// A view read through a lagging call is never trusted for a decision that
// sticks: it is either confirmed by number, or guarded by its own etag (a
// stale view has a stale etag, so the mutation based on it fails and the
// plugin looks again).
//
// Each plugin process keeps a cache per secret of what its own mutations
// were told, what GetSecret or ListSecrets showed (for metadata_ttl), the
// versions it added or saw by number (facts about one incarnation of the
// secret, kept while its create_time is the same), and a tombstone for
// secrets it deleted (for metadata_ttl). This gives read-your-writes within
// one gateway: a Read, Describe, Versions or List right after a Write or
// Delete of this process reflects it, through any lag. Another replica sees
// the change when Secret Manager converges (or, for labels from its cache,
// after metadata_ttl).
//
// # Check-and-set
//
// AddSecretVersion takes no precondition, and adding a version does not
// change the secret's etag. Writes therefore claim the next version number
// with an etag-guarded UpdateSecret first. The annotations
// `secretgate-claim` (a version number C), `secretgate-claim-id` (random,
// per write) and `secretgate-claim-at` (the writer's clock) hold the claim;
// `secretgate-keys` and `secretgate-labels` are those of version C.
//
//  1. View the secret: the cache, or GetSecret; etag E, claim C.
//  2. The current version: C when version C exists (access by number, or
//     known to this process). Else the writer of C is at work (claim
//     younger than claim_lease: "in flight") or died, and C-1 is current.
//     `latest` is never used for this.
//  3. In flight: a check-and-set write fails with ErrVersionMismatch, an
//     unconditional one waits for it (re-checking by number) and starts
//     again. ExpectedVersion, when set, must equal the current version:
//     lower is a mismatch; higher is a mismatch when that version does not
//     exist (by number), else the view lags and the write looks again
//     (about 3s at most, then ErrVersionMismatch).
//  4. UpdateSecret with etag E sets the claim to current+1 (with the new
//     key list and labels). Of several racing writers exactly one passes;
//     the others (and writers whose view lagged) get FAILED_PRECONDITION
//     (ABORTED is accepted too) and judge afresh on GetSecret; a
//     check-and-set write that keeps failing is ErrVersionMismatch.
//  5. AddSecretVersion, within half the lease of the claim; the number it
//     answers is the version written. A lost answer (UNAVAILABLE, deadline)
//     is resolved by accessing version C by number before trying again.
//
// Creation is the same with CreateSecret carrying the claim on version 1.
// A create that GetSecret does not show but CreateSecret finds existing (a
// creation moments ago elsewhere) looks again for a while, then answers
// ErrAlreadyExists (create) or ErrUnavailable (upsert).
//
// A check-and-set write succeeds only if its UpdateSecret passed with the
// etag of the view it judged, so no other claim happened between its check
// and its claim: no lost update and no duplicate version, whatever the lag
// (tested with every read lagging, and with `latest` lagging longer than
// the lease while GetSecret is current, across separate replicas).
//
// Failure cases:
//   - A writer dies between 4 and 5. Readers are not affected: version C
//     does not exist and `latest` is still C-1. Check-and-set writes get
//     ErrVersionMismatch and unconditional ones wait until the claim is
//     claim_lease old; then the next writer claims C again. A secret with
//     no version at all does not exist for secretgate (NotFound, not
//     listed) and is taken over by the next create.
//   - A writer stalls for longer than claim_lease/2 inside its own
//     AddSecretVersion call while another takes its expired claim over.
//     Both versions are stored and the second writer is told success
//     although its ExpectedVersion was, by then, one behind. The deadline
//     on the call makes this require a request that the server applies
//     after the client gave up on it; writers' clocks must agree to well
//     within claim_lease.
//   - Versions added outside secretgate (gcloud) are not claimed: a write
//     whose add gets a higher number than it claimed records that number,
//     but a check-and-set against such a version is not detected. Do not
//     add versions by hand to secrets written with If-Match.
//
// Delete with ref.Version > 0 judges the current version as in 2 and 3 and
// calls DeleteSecret with etag E, so that it fails if any writer claimed a
// version since the view (it then looks again, and answers
// ErrVersionMismatch when the version moved): a check-and-set delete never
// deletes a newer version. DeleteSecret removes every version; the id can
// be created again at once.
//
// # Reads
//
// Read of the latest version is one AccessSecretVersion(latest), whose
// answer names the version; labels and CreatedAt come from the cache (a
// GetSecret when it has nothing younger than metadata_ttl). When this
// process knows a newer version than `latest` answered (its own write), it
// reads that one by number; when `latest` answers a version newer than it
// knows, that version is confirmed by number (a lagging `latest` can still
// show a secret this process deleted and re-created). Reading version n is
// one access by number. UpdatedAt is the version's create_time when known
// (own writes, GetSecretVersion for old versions, kept), and for the current
// version otherwise the time its write claimed it (at most claim_lease/2
// earlier than create_time). A Read of a secret created moments ago by
// another replica, whose payload is visible but whose metadata is not yet,
// is ErrUnavailable (retryable), not a Read without labels.
//
// Disabled versions. Versions lists the ENABLED versions; one an operator
// disabled or destroyed in GCP is not readable by number (ErrNotFound). When
// the newest version is disabled, `latest` fails with FAILED_PRECONDITION;
// Read then answers the newest enabled version (one ListSecretVersions, a
// read-quota call, only in that case), so Read of the latest and Versions
// agree; with no enabled version it is ErrNotFound. Describe and List still
// report the newest version secretgate wrote, and a write continues from it.
//
// Cost per operation (counted in the stand-in, TestCallsPerOperation):
//
//	operation                     before (calls, quota)         after
//	Read (latest), warm cache     3: 1 access + 2 reads         1 access
//	Read, first in this process   3: 1 access + 2 reads         1 access + 1 read
//	Write, replace                4: 2 reads + 2 writes         2 writes (+1 read, +1 access cold)
//	Write, create                 3: 1 read + 2 writes          1 read + 2 writes
//	List of 100                   101 reads                     1 read (+ up to 100 access, once)
//	Delete                        1 write                       1 write
//	Delete with If-Match          3: 2 reads + 1 write          1 write (+1 read, +1 access cold)
//
// With Google's default quotas (90,000 access and 600 read requests per
// minute per project) one GCP project sustained about 300 Reads per minute
// (5/s) before, whatever the number of replicas; now about 90,000 per
// minute (1,500/s). The read quota then bounds only the metadata refreshes:
// one GetSecret per secret read per metadata_ttl per replica, so replicas ×
// distinct secrets read must stay under 600 × metadata_ttl/1m (raise
// metadata_ttl for many secrets; labels changed elsewhere show that late).
//
// # Labels and metadata
//
// GCP labels allow lowercase values only and at most 64 labels, narrower
// than secretgate's labels, so the labels are stored as JSON in the
// annotation `secretgate-labels`, which is what secretgate reads. GCP labels
// carry `secretgate-project=<project>` (what List filters on) plus a mirror
// of each secretgate label whose value fits GCP's rules and whose key no
// other GCP label uses, for the console, billing and IAM conditions.
//
// Ownership. Secretgate owns the annotations secretgate-claim,
// secretgate-claim-id, secretgate-claim-at, secretgate-keys and
// secretgate-labels, the label secretgate-project, and each GCP label that
// mirrors a secretgate label with the same value. Every other label and
// annotation (set by an operator, Terraform, another tool) is kept on every
// write: the write sends back the maps it read with only the owned keys
// changed, and the etag guarantees they were current. Operator annotations
// count toward GCP's 16 KiB; when the total would not fit, the key list is
// left out (Describe and List then read keys from the payload), and if the
// labels alone do not fit the write is ErrInvalid.
//
// # List
//
// ListSecrets with the filter `labels.secretgate-project=<project> AND
// name:<prefix>_<project>_<list prefix>` (`name:` is a substring match, so
// the prefix is checked again), every GCP page of it. Google documents no
// order (the stand-in uses none in particular) and its page tokens follow
// its own, so each secretgate page sorts the names and continues after the
// last name of the previous page, which is what the page token holds. The
// listing carries each secret's annotations, hence version, keys and
// labels: a page costs one ListSecrets, plus one access by number for each
// secret whose claimed version this process has not yet seen to exist
// (once per version; with 90,000 per minute, not the read quota). What this
// process wrote or deleted within metadata_ttl is merged in, since the
// listing lags.
//
// # Errors
//
// NOT_FOUND → ErrNotFound; ALREADY_EXISTS → ErrAlreadyExists; etag
// failures → ErrVersionMismatch (after looking again, see above);
// UNAVAILABLE is retried (5 attempts, 50ms doubling to 1s, full jitter,
// within the caller's deadline; the client library's own retries are turned
// off) and then ErrUnavailable; PERMISSION_DENIED → ErrPermission naming the
// IAM permission the call needs; UNAUTHENTICATED → ErrPermission;
// INVALID_ARGUMENT → ErrInvalid. No error carries a secret value. A delete
// retried after an UNAVAILABLE that then answers NOT_FOUND is a success (the
// lost attempt deleted); after only quota refusals it is ErrNotFound, since
// a refused call never ran.
//
// Quotas. RESOURCE_EXHAUSTED becomes sdk.Throttled(limit, retryAfter), which
// the gateway answers 429 backend_throttled with Retry-After. The limit is
// named from the error's ErrorInfo (quota_metric, quota_limit; AIP-193) when
// present, else from the call: access requests (90,000/min per project),
// read requests (600/min), write requests (600/min), or the per-secret
// AddSecretVersion+UpdateSecret limit (2/s and 120/min, "soft-enforced"
// for global secrets). Retry-After is the RetryInfo when the service sends
// one (whether Secret Manager does is not documented), else the window: 1s
// for the per-secret limit, 60s for per-minute quotas. A quota that comes
// back within a second (RetryInfo ≤ 1s, the per-secret 2/s) is retried
// within the budget above, and AddSecretVersion, already holding its claim,
// waits as told up to claim_lease/2; a per-minute quota is not retried,
// since retrying spends more of it.
package gcp
