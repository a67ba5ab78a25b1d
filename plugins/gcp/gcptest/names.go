package gcptest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The id and label rules below are the ones the Secret Manager proto
// comments document (google/cloud/secretmanager/v1/{resources,service}.proto).
var (
	// GCP project ids: 6-30 characters, a lowercase letter first, no trailing
	// hyphen; project numbers are accepted too.
	projectIDRe = regexp.MustCompile(`^([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$`)
	locationRe  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// "A secret ID is a string with a maximum length of 255 characters and can
	// contain uppercase and lowercase letters, numerals, and the hyphen (-)
	// and underscore (_) characters."
	secretIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	// Label keys: `[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}`; values:
	// `[\p{Ll}\p{Lo}\p{N}_-]{0,63}`; each at most 128 bytes of UTF-8.
	labelKeyRe = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	labelValRe = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
	// Annotation keys: 1-63 characters, begin and end with [a-z0-9A-Z], with
	// dashes, underscores, dots and alphanumerics in between.
	annotationKeyRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)
	// Version aliases: at most 63 characters of letters, digits, '-' and '_',
	// starting with a letter.
	aliasRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
)

const (
	maxLabels          = 64
	maxLabelBytes      = 128
	maxAnnotationBytes = 16 * 1024 // "must be less than 16KiB" in total
	maxPayloadBytes    = 64 * 1024
	maxPageSize        = 25000
)

// parent is a parsed `projects/{p}` or `projects/{p}/locations/{l}`.
type parent struct {
	project, location string
}

// String is the parent's name as the service answers it: with the
// project number.
func (p parent) String() string {
	if p.location == "" {
		return "projects/" + ProjectNumber(p.project)
	}
	return "projects/" + ProjectNumber(p.project) + "/locations/" + p.location
}

var projectNumberRe = regexp.MustCompile(`^[0-9]{1,20}$`)

// canonical is a secret's resource name with the project number, whether
// the request named the project by id or number.
func canonical(secretName string) string { return secretOf(secretName) }

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func parseParent(s string) (parent, error) {
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 2 && parts[0] == "projects":
		if !projectIDRe.MatchString(parts[1]) {
			return parent{}, invalid("invalid project in resource name %q", s)
		}
		return parent{project: parts[1]}, nil
	case len(parts) == 4 && parts[0] == "projects" && parts[2] == "locations":
		if !projectIDRe.MatchString(parts[1]) {
			return parent{}, invalid("invalid project in resource name %q", s)
		}
		if !locationRe.MatchString(parts[3]) {
			return parent{}, invalid("invalid location in resource name %q", s)
		}
		return parent{project: parts[1], location: parts[3]}, nil
	}
	return parent{}, invalid("resource name %q must be projects/* or projects/*/locations/*", s)
}

// parseSecretName splits `<parent>/secrets/{id}`.
func parseSecretName(s string) (parent, string, error) {
	i := strings.LastIndex(s, "/secrets/")
	if i < 0 {
		return parent{}, "", invalid("resource name %q must be projects/*/secrets/* or projects/*/locations/*/secrets/*", s)
	}
	p, err := parseParent(s[:i])
	if err != nil {
		return parent{}, "", err
	}
	id := s[i+len("/secrets/"):]
	if !secretIDRe.MatchString(id) {
		return parent{}, "", invalid("invalid secret id in resource name %q: must be 1-255 characters of [A-Za-z0-9_-]", s)
	}
	return p, id, nil
}

// parseVersionName splits `<secret>/versions/{v}`; v is a positive integer,
// `latest`, or a version alias.
func parseVersionName(s string) (secret, version string, err error) {
	i := strings.LastIndex(s, "/versions/")
	if i < 0 {
		return "", "", invalid("resource name %q must be projects/*/secrets/*/versions/*", s)
	}
	secret, version = s[:i], s[i+len("/versions/"):]
	if _, _, err := parseSecretName(secret); err != nil {
		return "", "", err
	}
	if version == "latest" || aliasRe.MatchString(version) {
		return secret, version, nil
	}
	if n, err := strconv.ParseInt(version, 10, 64); err != nil || n < 1 {
		return "", "", invalid("invalid version in resource name %q: must be a positive integer, latest or an alias", s)
	}
	return secret, version, nil
}

func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return invalid("no more than %d labels can be assigned to a resource, got %d", maxLabels, len(labels))
	}
	for k, v := range labels {
		if len(k) > maxLabelBytes || !labelKeyRe.MatchString(k) {
			return invalid("label key %q must be 1-63 characters matching [\\p{Ll}\\p{Lo}][\\p{Ll}\\p{Lo}\\p{N}_-]{0,62}", k)
		}
		if len(v) > maxLabelBytes || !labelValRe.MatchString(v) {
			return invalid("value of label %q must be 0-63 characters matching [\\p{Ll}\\p{Lo}\\p{N}_-]{0,63}", k)
		}
	}
	return nil
}

func validateAnnotations(annotations map[string]string) error {
	total := 0
	for k, v := range annotations {
		if len(k) > maxLabelBytes || !annotationKeyRe.MatchString(k) {
			return invalid("annotation key %q must be 1-63 characters, begin and end with [a-z0-9A-Z], with [-_.a-z0-9A-Z] between", k)
		}
		if !utf8.ValidString(v) {
			return invalid("value of annotation %q must be valid UTF-8", k)
		}
		total += len(k) + len(v)
	}
	if total >= maxAnnotationBytes {
		return invalid("the total size of annotation keys and values must be less than 16KiB, got %d bytes", total)
	}
	return nil
}

func validateAliases(aliases map[string]int64) error {
	if len(aliases) > 50 {
		return invalid("no more than 50 version aliases can be assigned to a secret")
	}
	for a, v := range aliases {
		if !aliasRe.MatchString(a) || a == "latest" || a == "NEW" {
			return invalid("invalid version alias %q", a)
		}
		if v < 1 {
			return invalid("version alias %q must point at a positive version", a)
		}
	}
	return nil
}

func notFound(kind, name string) error {
	return status.Errorf(codes.NotFound, "%s [%s] not found.", kind, name)
}

func versionName(secret string, n int64) string {
	return fmt.Sprintf("%s/versions/%d", secret, n)
}
