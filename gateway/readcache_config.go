package gateway

// The `cache:` block of a backend (docs/configuration.md, "Read cache").

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// CacheConfig turns on a backend's read cache (readcache.go). Absent = off;
// an empty block (`cache: {}`) is on with the defaults.
type CacheConfig struct {
	// TTL bounds how long the latest version of a secret is served from
	// the cache without asking the backend: a Go duration, 0 to ask every
	// time (the cache then only coalesces reads and serves stale values
	// during outages). Default 30s.
	TTL string `yaml:"ttl"`
	// MaxBytes bounds the cache's memory: a number of bytes, or a size
	// such as 64MiB or 100MB. Default 64MiB.
	MaxBytes string `yaml:"max_bytes"`
	// StaleIfError is how old a cached value may be and still be served
	// while the backend is unavailable or times out; 0 = never. Default 1h.
	StaleIfError string `yaml:"stale_if_error"`
}

// Defaults and bounds of a cache block.
const (
	DefaultCacheTTL          = 30 * time.Second
	DefaultCacheMaxBytes     = 64 << 20
	DefaultCacheStaleIfError = time.Hour
	// MaxCacheTTL catches a unit typo ("30h" for "30s"): a write made
	// behind the gateway's back stays invisible for up to the TTL.
	MaxCacheTTL = 24 * time.Hour
	// MinCacheMaxBytes holds at least a few secrets of the largest size
	// (sdk.MaxPayloadBytes).
	MinCacheMaxBytes = 1 << 20
	// MaxCacheStaleIfError: beyond a week an outage is an incident that
	// old values must not hide.
	MaxCacheStaleIfError = 7 * 24 * time.Hour
)

// cacheSettings is a validated CacheConfig.
type cacheSettings struct {
	ttl          time.Duration
	maxBytes     int64
	staleIfError time.Duration
}

// settings parses the block. Validate has reported every error already,
// so an error here only comes from a Config that skipped validation.
func (c CacheConfig) settings() (cacheSettings, error) {
	var first error
	s := c.parse(func(field, format string, args ...any) {
		if first == nil {
			first = cfgErr(field, format, args...)
		}
	})
	return s, first
}

// validate reports each malformed field of the block under field (e.g.
// "backends[0].cache").
func (c CacheConfig) validate(add func(field, format string, args ...any), field string) {
	c.parse(func(f, format string, args ...any) { add(field+"."+f, format, args...) })
}

// parse applies the defaults and reports each malformed field.
func (c CacheConfig) parse(report func(field, format string, args ...any)) cacheSettings {
	s := cacheSettings{ttl: DefaultCacheTTL, maxBytes: DefaultCacheMaxBytes, staleIfError: DefaultCacheStaleIfError}
	if c.TTL != "" {
		d, err := parseBoundedDuration(c.TTL, MaxCacheTTL)
		if err != nil {
			report("ttl", "%q %v", c.TTL, err)
		}
		s.ttl = d
	}
	if c.MaxBytes != "" {
		n, err := parseByteSize(c.MaxBytes)
		if err != nil {
			report("max_bytes", "%q %v", c.MaxBytes, err)
		}
		s.maxBytes = n
	}
	if c.StaleIfError != "" {
		d, err := parseBoundedDuration(c.StaleIfError, MaxCacheStaleIfError)
		if err != nil {
			report("stale_if_error", "%q %v", c.StaleIfError, err)
		}
		s.staleIfError = d
	}
	return s
}

func parseBoundedDuration(v string, limit time.Duration) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("must be a duration such as 30s or 5m, or 0")
	case d < 0:
		return 0, fmt.Errorf("must not be negative")
	case d > limit:
		return 0, fmt.Errorf("must be at most %s", limit)
	}
	return d, nil
}

var byteSizeRe = regexp.MustCompile(`^([0-9]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$`)

var byteUnits = map[string]int64{"": 1, "B": 1, "KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

// parseByteSize reads "67108864", "64MiB" or "100MB".
func parseByteSize(v string) (int64, error) {
	m := byteSizeRe.FindStringSubmatch(v)
	if m == nil {
		return 0, fmt.Errorf("must be a size such as 64MiB, 100MB or 67108864 (bytes); units are B, KB, MB, GB, KiB, MiB, GiB")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	unit := byteUnits[m[2]]
	if err != nil || n > (1<<62)/unit {
		return 0, fmt.Errorf("is too large")
	}
	if n*unit < MinCacheMaxBytes {
		return 0, fmt.Errorf("must be at least 1MiB")
	}
	return n * unit, nil
}
