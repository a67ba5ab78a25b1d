package file

// Settings: what Configure reads.

import (
	"slices"
	"strconv"
	"strings"

	"github.com/secretgate/secretgate/internal/envelope"
	"github.com/secretgate/secretgate/sdk"
)

// config is the parsed settings.
type config struct {
	path        string
	current     envelope.Source
	previous    *envelope.Source
	maxVersions int
}

func parseSettings(settings map[string]string) (*config, error) {
	for k := range settings {
		if !slices.Contains(knownSettings, k) {
			return nil, sdk.Invalid(k, "unknown setting of the file backend (known: %s)", strings.Join(knownSettings, ", "))
		}
	}
	cfg := &config{path: settings[SettingPath], maxVersions: DefaultMaxVersions}
	if cfg.path == "" {
		return nil, sdk.Invalid(SettingPath, "is required: the database file")
	}
	keys, err := envelope.ParseSources(settings)
	if err != nil {
		return nil, err
	}
	cfg.current, cfg.previous = keys.Current, keys.Previous
	if s, ok := settings[SettingMaxVersions]; ok && s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, sdk.Invalid(SettingMaxVersions, "must be a whole number of versions to keep, 0 for all")
		}
		cfg.maxVersions = n
	}
	return cfg, nil
}
