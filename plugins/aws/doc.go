// Package aws is the AWS Secrets Manager backend of secretgate, served as the
// built-in plugin "aws". It is meant for real accounts; its tests run against
// a local moto server.
//
// # Settings
//
//   - region: the AWS region (else AWS_REGION or the profile's region).
//   - endpoint: optional base URL (VPC endpoints, FIPS, a local server).
//   - prefix: prepended to every secret name; default "secretgate/". ASCII
//     letters, digits and / _ + = . @ - only, at most 320 characters.
//   - profile: optional shared-config profile.
//   - kms_key_id: optional KMS key (id, ARN or alias) for new secrets; else
//     AWS uses aws/secretsmanager.
//   - tags: optional tags added to every new secret, as comma-separated
//     key=value pairs: "team=payments,cost-center=42". Whitespace around keys
//     and values is trimmed; a value may contain '=' but not ','; keys may not
//     start with "aws:" or "secretgate:".
//   - max_attempts: attempts per AWS call, 1-20, default 5.
//
// Credentials come only from the standard AWS chain (environment, shared
// config and profile, web identity, container and instance roles); settings
// never hold keys. Throttling and transient errors are retried by the SDK's
// standard retryer (exponential backoff with jitter), then ErrUnavailable.
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
// secret; two are secretgate:project and secretgate:name and the configured
// tags count too, so at most 48 minus len(tags) labels fit; more is
// ErrInvalid naming "labels".
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
// Metadata without values: the Description holds a small JSON cache
// ("secretgate:{"v":N,"k":[keys],"u":time}") written after each version.
// Versions are immutable, so the cache is used only when its N's token is the
// AWSCURRENT VersionId; otherwise (a writer died between the two calls, a
// hand edit, key lists longer than the 2048-character Description) Describe
// and List read that one version with GetSecretValue to learn its keys.
// Version numbers are found from the VersionId by hashing candidates around
// the cached N, so a missing cache costs CPU, not calls (up to 65,536
// candidates).
//
// Times: CreatedAt is the secret's CreatedDate, UpdatedAt the CreatedDate of
// the current version; both UTC.
//
// List: ListSecrets with the filter name=<prefix><project>/<prefix filter>
// ("name: Prefix match, case-sensitive"), then an exact check of the project
// and name. AWS documents no byte-order sort, so every List call scans the
// project (100 secrets per ListSecrets call) and pages by name: the page
// token is an opaque encoding of the last name returned, bound to the
// project and prefix. Pages are in Go string order and every secret present
// throughout a listing appears exactly once. AWS documents ListSecrets as
// eventually consistent ("might not reflect changes from the last five
// minutes"); Describe and Read are not affected.
//
// Delete: DeleteSecret with ForceDeleteWithoutRecovery on the ARN just
// described: immediate and unrecoverable, no recovery window. AWS finishes
// the deletion asynchronously; a create of the same name retries with
// backoff until the name is free. A Delete with a version checks it just
// before deleting: AWS has no conditional delete, so a write that lands
// between check and delete is deleted with the rest.
//
// Labels and the cache are updated after the value (TagResource,
// UntagResource, UpdateSecret), not atomically with it: concurrent writers
// that change labels end with one writer's labels.
//
// # Errors
//
// ResourceNotFoundException is ErrNotFound; ResourceExistsException is
// ErrAlreadyExists on create and ErrVersionMismatch on a versioned write;
// throttling and 5xx, after the retryer, ErrUnavailable; AccessDenied and
// credential errors wrap sdk.ErrPermission and name the IAM action refused
// (secretsmanager:GetSecretValue, ...), KMS failures name kms:Decrypt or
// kms:GenerateDataKey. Errors never carry values.
//
// # IAM
//
// secretsmanager:CreateSecret, DescribeSecret, GetSecretValue,
// PutSecretValue, UpdateSecret, DeleteSecret, ListSecretVersionIds,
// TagResource, UntagResource on arn:aws:secretsmanager:*:*:secret:<prefix>*,
// and ListSecrets on "*"; with kms_key_id, kms:Decrypt and
// kms:GenerateDataKey on that key.
package aws
