// Package aws is the AWS Secrets Manager backend of secretgate, served as the
// built-in plugin "aws". It is meant for real accounts; its tests run against
// a local moto server behind a fault proxy (internal/mototest/faultproxy)
// that adds AWS's lag, delete propagation, rate, version and tag limits.
//
// The operator's reference (settings, IAM, how secrets map, consistency,
// quotas, errors) is docs/backends/aws.md; it is not repeated here. What
// follows is how the plugin does it.
//
// Credentials come only from the standard AWS chain (environment, shared
// config and profile, web identity, container and instance roles); settings
// never hold keys. Throttling and transient errors are retried by the SDK's
// standard retryer (exponential backoff with jitter); see Errors for what
// callers get when it gives up.
//
// # Mapping
//
// Names: one AWS secret per secretgate secret, named
// <prefix><project>/<name>. Projects contain no '/', so this is injective.
// Each secret is tagged secretgate:project and secretgate:name, and a secret
// without those tags is never touched.
//
// Values: SecretString is exactly sdk.EncodeData(data), a plain JSON object
// of strings, so the console, External Secrets, Lambda extensions and any
// other AWS consumer read it as they expect.
//
// Labels: one tag secretgate:label:<key> per label. AWS allows 50 tags per
// secret ("aws:" tags do not count); two are secretgate:project and
// secretgate:name, and the configured tags and any tags others added count
// too, so at most 48 minus those labels fit; more is ErrInvalid naming
// "labels", refused before the value is stored.
//
// Versions: version N's ClientRequestToken, and so its AWS VersionId, is
// UUIDv5(namespace, project NUL name NUL N). A write reads the current
// version n (the VersionId labelled AWSCURRENT, mapped back to its number)
// and sends PutSecretValue with the token of n+1 to the secret's ARN. AWS
// refuses a token that already names a version with a different value
// (PutSecretValue: "you can't modify a secret version"), so of several
// writers racing for n+1 exactly one stores its value and the others get
// ErrVersionMismatch (with ExpectedVersion) or start over (without). Two
// writers racing with byte-identical data for the same n+1 both succeed: AWS
// treats the second as a retry of the first ("the request is ignored"), the
// store holds one version n+1 with that data, and both callers are told
// version n+1. A repeat that AWS ignores for a version no longer current is
// detected (the answer lacks AWSCURRENT) and treated as a lost race.
// Reading version N asks GetSecretValue for VersionId token(N). Versions
// lists ListSecretVersionIds (deprecated versions included), i.e. what AWS
// still keeps: AWS keeps 100 most recent versions plus all from the last 24
// hours, so Capabilities.MaxVersions is 0 (no fixed count). Versions written
// by other tools (console, rotation lambdas) have no number: they are left
// out of Versions, and while one is AWSCURRENT, reads and writes of the
// latest version fail with an error that says so.
//
// Metadata without values: CreateSecret writes a small JSON cache into the
// Description ("secretgate:{"v":1,"k":[keys],"c":nonce}"). Later writes do
// not rewrite it (that would be a second UpdateSecret per write, see
// Quotas), so it is used only while its version's token is the AWSCURRENT
// VersionId, i.e. for secrets never rewritten; otherwise Describe reads the
// current version with GetSecretValue to learn its keys, and List reads
// those of a page with BatchGetSecretValue, 20 secrets per call (or one
// GetSecretValue each when the credentials lack
// secretsmanager:BatchGetSecretValue). Version
// numbers are found from the VersionId by hashing candidates around a hint,
// so a stale cache costs CPU, not calls (up to 65,536 candidates).
//
// Times: CreatedAt is the secret's CreatedDate, UpdatedAt the CreatedDate of
// the current version; both UTC. A write's own answer carries this host's
// clock when AWS confirmed it as UpdatedAt (PutSecretValue does not return
// the version's date); reads report AWS's.
//
// List: ListSecrets with the filter name=<prefix><project>/<prefix filter>
// ("name: Prefix match, case-sensitive"), then an exact check of the project
// and name. AWS documents no byte-order sort, so every List call scans the
// project (100 secrets per ListSecrets call) and pages by name: the page
// token is an opaque encoding of the last name returned, bound to the
// project and prefix. Pages are in Go string order and every secret present
// throughout a listing appears exactly once.
//
// Delete: DeleteSecret with ForceDeleteWithoutRecovery on the ARN just
// described: immediate and unrecoverable, no recovery window. A Delete with
// a version checks it just before deleting: AWS has no conditional delete,
// so a write that lands between check and delete is deleted with the rest.
// AWS frees the name asynchronously ("there might be a short delay before
// the secret is permanently deleted"); meanwhile CreateSecret of the name
// fails with InvalidRequestException ("already scheduled for deletion"). A
// create then retries with backoff (50 ms growing to 3.2 s) for up to
// delete_wait (default 2 minutes, like Terraform), stopping early enough
// to answer before the caller's deadline (the gateway's backend timeout,
// 10 s by default). Meanwhile reads of the name say not found, and a create
// that gives up is ErrUnavailable (HTTP 503) saying the name is still held
// by a deleted secret: retry later. Capabilities.DeletePropagation declares
// delete_wait.
//
// Labels are updated after the value (TagResource, UntagResource), not
// atomically with it: concurrent writers that change labels end with one
// writer's labels.
//
// # Consistency
//
// "All Secrets Manager operations are eventually consistent. ListSecrets
// might not reflect changes from the last five minutes" (ListSecrets API
// reference). How long DescribeSecret, ListSecretVersionIds and
// GetSecretValue lag is not documented. The plugin:
//
//   - reports writes from what AWS answered: CreateSecret and PutSecretValue
//     succeeded means stored; nothing after them turns a stored write into
//     an error except a failed label update, which says "stored as version
//     N, but labels were not updated";
//   - remembers its own writes and deletes for five minutes and overlays
//     them on what AWS shows (Describe, Read, List, Versions, Delete and the
//     next Write): one plugin process, hence one gateway, reads its own
//     writes. Other processes see AWS's view;
//   - retries, with backoff and for at most settle_wait, a read that finds
//     the value but no metadata (another process's fresh create), and the
//     read-back of a create (below);
//   - keeps If-Match a real check-and-set: a CAS write for version e sends
//     token(e+1), which AWS refuses if version e+1 exists. When
//     DescribeSecret shows a version older than e, the plugin reads version
//     e by number: if it exists the write proceeds (the token still decides),
//     else it is ErrVersionMismatch at once. A view newer than e is a
//     mismatch.
//
// Two creates with byte-identical data send the same token and value, and AWS
// answers both with success (the second is a no-op). Each create therefore
// writes a random nonce into the Description and reads the secret back (for
// up to settle_wait): the one that finds another nonce did not create it and
// gets ErrAlreadyExists (an upsert writes version 2 instead), so no caller's
// labels are dropped silently. If AWS does not show the secret within
// settle_wait the create still succeeds, unverified, with this host's clock
// as CreatedAt.
//
// # Quotas
//
// PutSecretValue and UpdateSecret share 50 requests per second per region
// (quotas page, not adjustable). A write is one PutSecretValue; labels that
// change add TagResource/UntagResource (their own 50 per second); a create
// is one CreateSecret. AWS keeps at most about 100 versions of a secret but
// never removes versions of the last 24 hours, and advises writing a secret
// at most once every 10 minutes; beyond that PutSecretValue fails with
// LimitExceededException. Calls per operation (counted in the test proxy):
// Read 2 (DescribeSecret, GetSecretValue); Write of a new version 2
// (DescribeSecret, PutSecretValue); create 3 (DescribeSecret, CreateSecret,
// DescribeSecret); Delete 2; List of 100 secrets 1 ListSecrets if none was
// rewritten, else plus 5 BatchGetSecretValue (100 per second).
//
// # Errors
//
// ResourceNotFoundException is ErrNotFound; ResourceExistsException is
// ErrAlreadyExists on create and ErrVersionMismatch on a versioned write;
// throttling (ThrottlingException and kin), after the retryer, is
// ErrThrottled naming the rate quota (for writes "PutSecretValue and
// UpdateSecret together, 50 requests per second per region"), retry after
// 1 s; LimitExceededException is not retried and is ErrThrottled naming
// the versions quota on PutSecretValue (retry after 10 minutes) or the
// secrets quota on CreateSecret; the gateway answers both with 429
// backend_throttled and Retry-After. 5xx and network errors, after the
// retryer, are ErrUnavailable; AccessDenied and credential errors wrap
// sdk.ErrPermission and name the IAM action refused
// (secretsmanager:GetSecretValue, ...), KMS failures name kms:Decrypt or
// kms:GenerateDataKey. Errors never carry values.
package aws
