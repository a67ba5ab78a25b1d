package gcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secretgate/secretgate/sdk"
)

var (
	gcpProjectRe = regexp.MustCompile(`^([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$`)
	locationRe   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// The prefix is at most 62 characters so that the longest id,
	// prefix + "_" + project (63) + "_" + name (128), fits GCP's 255.
	prefixRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,61}$`)
)

const (
	defaultPrefix = "sg"
	defaultLease  = 30 * time.Second
	defaultTTL    = 60 * time.Second
)

// config is the parsed settings.
type config struct {
	project         string
	location        string
	prefix          string
	credentialsFile string
	endpoint        string
	insecure        bool
	lease           time.Duration
	metaTTL         time.Duration
}

func parseConfig(settings map[string]string) (config, error) {
	known := map[string]bool{"gcp_project": true, "location": true, "prefix": true, "credentials_file": true, "endpoint": true, "insecure": true, "claim_lease": true, "metadata_ttl": true}
	for k := range settings {
		if !known[k] {
			return config{}, sdk.Invalid("settings."+k, "unknown setting; the gcp plugin takes gcp_project, location, prefix, credentials_file, endpoint, insecure, claim_lease and metadata_ttl")
		}
	}
	c := config{
		project:         settings["gcp_project"],
		location:        settings["location"],
		prefix:          settings["prefix"],
		credentialsFile: settings["credentials_file"],
		endpoint:        settings["endpoint"],
		lease:           defaultLease,
		metaTTL:         defaultTTL,
	}
	if !gcpProjectRe.MatchString(c.project) {
		return config{}, sdk.Invalid("settings.gcp_project", "is required: a GCP project id (6-30 characters of a-z, 0-9 and '-') or project number")
	}
	if c.location != "" && !locationRe.MatchString(c.location) {
		return config{}, sdk.Invalid("settings.location", "must be a GCP location such as us-east1")
	}
	if c.prefix == "" {
		c.prefix = defaultPrefix
	}
	if !prefixRe.MatchString(c.prefix) {
		return config{}, sdk.Invalid("settings.prefix", "must be 1-62 characters of A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit")
	}
	if v := settings["insecure"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return config{}, sdk.Invalid("settings.insecure", "must be true or false")
		}
		c.insecure = b
	}
	if c.insecure {
		if c.endpoint == "" {
			return config{}, sdk.Invalid("settings.insecure", "needs an endpoint: it is for local test servers only")
		}
		host, _, err := net.SplitHostPort(c.endpoint)
		if err != nil {
			return config{}, sdk.Invalid("settings.endpoint", "must be host:port")
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return config{}, sdk.Invalid("settings.insecure", "is allowed only with a loopback endpoint (localhost, 127.0.0.1, ::1): it sends requests in plain text without credentials")
		}
		if c.credentialsFile != "" {
			return config{}, sdk.Invalid("settings.credentials_file", "cannot be used with insecure=true")
		}
	}
	if v := settings["claim_lease"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
			return config{}, sdk.Invalid("settings.claim_lease", "must be a duration between 100ms and 10m, e.g. 30s")
		}
		c.lease = d
	}
	if v := settings["metadata_ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			return config{}, sdk.Invalid("settings.metadata_ttl", "must be a duration between 0s and 1h, e.g. 60s")
		}
		c.metaTTL = d
	}
	return c, nil
}

// clientOptions builds the Secret Manager client options: the endpoint
// (regional when a location is set), and credentials from the file, from
// ADC, or none for an insecure local server.
func (c config) clientOptions() ([]option.ClientOption, error) {
	var opts []option.ClientOption
	switch {
	case c.endpoint != "":
		opts = append(opts, option.WithEndpoint(c.endpoint))
	case c.location != "":
		// Regional secrets are served only by the regional endpoint.
		opts = append(opts, option.WithEndpoint(fmt.Sprintf("secretmanager.%s.rep.googleapis.com:443", c.location)))
	}
	if c.insecure {
		return append(opts,
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithoutAuthentication(),
		), nil
	}
	if c.credentialsFile != "" {
		typ, err := credentialsType(c.credentialsFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithAuthCredentialsFile(typ, c.credentialsFile))
	}
	return opts, nil
}

// credentialsType reads the "type" of a credentials JSON file, which
// option.WithAuthCredentialsFile wants to be told. Errors never quote the
// file's content.
func credentialsType(path string) (option.CredentialsType, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", sdk.Invalid("settings.credentials_file", "cannot be read: %v", err)
	}
	var f struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", sdk.Invalid("settings.credentials_file", "is not a JSON credentials file")
	}
	switch option.CredentialsType(f.Type) {
	case option.ServiceAccount, option.AuthorizedUser, option.ExternalAccount, option.ImpersonatedServiceAccount:
		return option.CredentialsType(f.Type), nil
	}
	return "", sdk.Invalid("settings.credentials_file", "has an unsupported credentials type %q", f.Type)
}

func newClient(ctx context.Context, c config) (*secretmanager.Client, error) {
	opts, err := c.clientOptions()
	if err != nil {
		return nil, err
	}
	client, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcp: creating the Secret Manager client: %w", err)
	}
	// The library's own retries (AccessSecretVersion retries UNAVAILABLE for
	// up to 60s) are replaced by ours, which are the same for every call and
	// bounded: see errors.go.
	client.CallOptions = &secretmanager.CallOptions{}
	return client, nil
}
