package file

// Settings: what Configure reads.

import (
	"strconv"
	"strings"

	"github.com/secretgate/secretgate/sdk"
)

// config is the parsed settings.
type config struct {
	path        string
	current     kekSource
	previous    *kekSource
	maxVersions int
}

func parseSettings(settings map[string]string) (*config, error) {
	for k := range settings {
		if !contains(knownSettings, k) {
			return nil, sdk.Invalid(k, "unknown setting of the file backend (known: %s)", strings.Join(knownSettings, ", "))
		}
	}
	cfg := &config{path: settings[SettingPath], maxVersions: DefaultMaxVersions}
	if cfg.path == "" {
		return nil, sdk.Invalid(SettingPath, "is required: the database file")
	}
	cur, err := oneSource(settings, true, SettingKeyFile, SettingKeyEnv, SettingPassphraseEnv)
	if err != nil {
		return nil, err
	}
	cfg.current = *cur
	cfg.previous, err = oneSource(settings, false, SettingPreviousKeyFile, SettingPreviousKeyEnv, SettingPreviousPassphraseEnv)
	if err != nil {
		return nil, err
	}
	if cfg.previous != nil && cfg.previous.kind == cfg.current.kind && cfg.previous.value == cfg.current.value {
		return nil, sdk.Invalid(cfg.previous.setting, "names the same key source as %s", cfg.current.setting)
	}
	if s, ok := settings[SettingMaxVersions]; ok && s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, sdk.Invalid(SettingMaxVersions, "must be a whole number of versions to keep, 0 for all")
		}
		cfg.maxVersions = n
	}
	return cfg, nil
}

// oneSource picks the one key source among the given settings (file, env,
// passphrase, in that order of kinds).
func oneSource(settings map[string]string, required bool, names ...string) (*kekSource, error) {
	kinds := []kekKind{kindKeyFile, kindKeyEnv, kindPassphraseEnv}
	var found *kekSource
	for i, n := range names {
		v := settings[n]
		if v == "" {
			continue
		}
		if found != nil {
			return nil, sdk.Invalid(n, "conflicts with %s: set exactly one of %s", found.setting, strings.Join(names, ", "))
		}
		found = &kekSource{setting: n, kind: kinds[i], value: v}
	}
	if found == nil && required {
		return nil, sdk.Invalid(names[0], "no key source: set exactly one of %s", strings.Join(names, ", "))
	}
	return found, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
