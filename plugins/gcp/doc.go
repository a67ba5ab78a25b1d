// Package gcp is secretgate's Google Cloud Secret Manager backend, served as
// the built-in plugin `gcp`. It uses cloud.google.com/go/secretmanager/apiv1
// (gRPC).
//
// # Settings
//
//	gcp_project       required: the GCP project id (or number) holding the secrets
//	location          optional: a region (us-east1, ...) for regional secrets;
//	                  the regional endpoint secretmanager.<location>.rep.googleapis.com
//	                  is used unless endpoint says otherwise
//	prefix            optional, default "sg": the first part of every secret id
//	credentials_file  optional: a credentials JSON file (service account,
//	                  authorized user, external account, impersonated service
//	                  account); without it Application Default Credentials
//	endpoint          optional: host:port of another Secret Manager endpoint
//	insecure          optional, "true" for plaintext gRPC without credentials,
//	                  only with a loopback endpoint (the local test server of
//	                  package gcptest)
//	claim_lease       optional, default 30s: see "Check-and-set" below
//
// # Mapping
//
// Names. The secret `name` of secretgate project `project` is the GCP
// secret id `<prefix>_<project>_<name>` under projects/<gcp_project> (or
// projects/<gcp_project>/locations/<location>). Secretgate projects contain
// no '_' and the prefix is fixed, so the project is the text between the
// prefix and the next '_': the mapping is injective. Ids stay within GCP's
// 255 characters (prefix ≤ 62, project ≤ 63, name ≤ 128).
//
// Values. Version payload = sdk.EncodeData(data), the canonical JSON of the
// key/value map (≤ 64 KiB, GCP's payload limit too). data_crc32c (CRC32C,
// Castagnoli) is sent with every AddSecretVersion and checked on every
// AccessSecretVersion; a mismatch is retried like an unavailable server.
//
// Versions. GCP's version numbers (1, 2, 3... per secret) are secretgate's.
// Versions lists the ENABLED versions; one an operator disabled or
// destroyed in GCP is not readable and not listed (reading it is
// ErrNotFound). Nothing is pruned (MaxVersions 0).
//
// Labels and metadata. GCP labels allow lowercase values only and at most
// 64 labels, narrower than secretgate's labels, so the labels are stored as
// JSON in the annotation `secretgate-labels`, which is what secretgate
// reads. GCP labels carry `secretgate-project=<project>` (what List
// filters on) plus a mirror of each secretgate label whose value fits GCP's
// rules (same key, up to 63 of them), for the console, billing and IAM
// conditions. The sorted key list of the version last claimed is kept in
// the annotation `secretgate-keys`, so that Describe and List need no
// payload access; when it is not the latest version's (a write in flight or
// abandoned) or did not fit (annotations total < 16 KiB), the keys are read
// from the payload instead. CreatedAt is the GCP secret's create_time,
// UpdatedAt the latest version's.
//
// # Check-and-set
//
// AddSecretVersion takes no precondition, and adding a version does not
// change the secret's etag. Writes therefore claim the next version number
// with an etag-guarded UpdateSecret first. The annotations
// `secretgate-claim` (a version number), `secretgate-claim-id` (random, per
// write) and `secretgate-claim-at` (the writer's clock) hold the claim.
//
//  1. GetSecret gives etag E and the claim C; GetSecretVersion(latest) gives
//     the latest version L (0 when there is none).
//  2. If C > L and the claim is younger than claim_lease, another write is
//     in flight: a check-and-set write fails with ErrVersionMismatch (the
//     other write will come first), an unconditional one waits for it and
//     starts again. Otherwise ExpectedVersion, when set, must equal L, else
//     ErrVersionMismatch.
//  3. UpdateSecret with etag E sets the claim to L+1 (with the new key list
//     and labels). Of several racing writers exactly one passes; the others
//     get FAILED_PRECONDITION (what Secret Manager documents for etag
//     mismatches; ABORTED is accepted too): ErrVersionMismatch for
//     check-and-set writes, another round for unconditional ones.
//  4. AddSecretVersion, within half the lease of the claim; it must come
//     back as version L+1.
//
// Creation is the same with CreateSecret carrying the claim on version 1.
//
// Failure cases:
//   - A writer dies between 3 and 4 (or between CreateSecret and its first
//     AddSecretVersion). Readers are not affected: the latest version is
//     still L and its keys are read from its payload. Check-and-set writes
//     get ErrVersionMismatch and unconditional ones wait until the claim is
//     claim_lease old; then the next writer takes the claim over. A secret
//     with no version at all does not exist for secretgate (NotFound, not
//     listed) and is taken over by the next create. Nothing wedges for
//     longer than claim_lease.
//   - A lost answer: a retried UpdateSecret or CreateSecret whose first try
//     landed sees its own claim id and carries on; an AddSecretVersion that
//     fails with UNAVAILABLE is retried only after GetSecretVersion(latest)
//     shows the version did not land.
//   - A writer stalls for longer than claim_lease/2 inside its own
//     AddSecretVersion call while another takes its expired claim over.
//     Both versions are stored (L+1 and L+2) and the second writer is told
//     success although its ExpectedVersion was, by then, one behind. The
//     claim deadline on the call makes this require a request that the
//     server applies after the client gave up on it; writers' clocks must
//     agree to well within claim_lease.
//   - Versions added outside secretgate are fine: L is always GCP's latest.
//
// Delete with ref.Version > 0 checks L and the claim as above and then
// calls DeleteSecret with etag E, so that it fails if any writer claimed a
// version meanwhile (ErrVersionMismatch). DeleteSecret removes every
// version; the id can be created again at once.
//
// # List
//
// ListSecrets with the filter `labels.secretgate-project=<project> AND
// name:<prefix>_<project>_<list prefix>` (`name:` is a substring match, so
// the prefix is checked again), every GCP page of it. GCP's own order is
// newest first (the proto) and its page tokens follow it, so each
// secretgate page sorts the names and continues after the last name of the
// previous page, which is what the page token holds (base64). A page then
// costs one ListSecrets sweep of the project plus one GetSecretVersion per
// listed secret (parallel, 8 at a time), and a payload access only for
// secrets whose key list is not recorded.
//
// # Errors
//
// NOT_FOUND → ErrNotFound; ALREADY_EXISTS → ErrAlreadyExists; etag
// failures → ErrVersionMismatch; UNAVAILABLE and RESOURCE_EXHAUSTED are
// retried (5 attempts, 50ms doubling to 1s, full jitter, within the
// caller's deadline; the client library's own retries are turned off) and
// then ErrUnavailable; PERMISSION_DENIED → ErrPermission naming the IAM
// permission the call needs; UNAUTHENTICATED → ErrPermission;
// INVALID_ARGUMENT → ErrInvalid. No error carries a secret value.
//
// # IAM
//
// secretmanager.secrets.{create,get,list,update,delete} and
// secretmanager.versions.{add,get,list,access} on the project (the README
// has a custom role). Without versions.access, reads fail and Describe and
// List work for every secret whose key list is recorded.
package gcp
