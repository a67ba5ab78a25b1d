package gateway

// Reloading the configuration without a restart (docs/configuration.md,
// "Reloading"): subjects, tokens, bindings, projects, auth issuers and
// backends. Everything the new configuration needs is built before
// anything changes, so an invalid or unstartable configuration changes
// nothing; then one swap makes it current. A request in flight keeps the
// snapshot it was authenticated with (live.go), and the old plugin of a
// removed or reconfigured backend keeps running for Host.ReloadDrain.

import (
	"context"
	"fmt"
	"reflect"
	"strings"
)

// ReloadReport says what a reload changed.
type ReloadReport struct {
	Started []string // backends whose plugin was started (new or reconfigured)
	Stopped []string // backends whose old plugin stops after the drain
	// Kept are projects whose binding the new configuration changes or
	// removes while a migration moves them: they keep their binding, with
	// the reason.
	Kept map[string]string
	// NeedRestart names changed settings a reload cannot apply.
	NeedRestart []string
}

// Reload makes cfg (validated by ParseConfig) the server's configuration.
// On error nothing has changed. Reloads are serialized.
func (s *Server) Reload(ctx context.Context, cfg *Config) (ReloadReport, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	rep, err := s.reload(ctx, cfg)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.metrics.reloaded(outcome)
	return rep, err
}

func (s *Server) reload(ctx context.Context, cfg *Config) (ReloadReport, error) {
	rep := ReloadReport{Kept: map[string]string{}, NeedRestart: restartOnly(s.cfg, cfg)}
	live, err := s.newLive(cfg)
	if err != nil {
		return rep, err
	}
	applied := false
	defer func() {
		if !applied {
			live.retire(0)
		}
	}()

	// The migrator's lock keeps a migration from starting, switching or
	// ending while the routing is recomputed and swapped.
	mg := s.migrator
	mg.mu.Lock()
	defer mg.mu.Unlock()
	moving := map[string]bool{}
	used := map[string]string{} // backend -> a project or migration using it
	for p, id := range mg.active {
		moving[p] = true
		if m := mg.all[id]; m != nil {
			rep := m.snapshot()
			used[rep.Source] = "migration " + id
			used[rep.Target] = "migration " + id
		}
	}
	routes, err := s.nextRoutes(cfg, moving, rep.Kept)
	if err != nil {
		return rep, err
	}
	backends := map[string]bool{}
	for _, b := range cfg.Backends {
		backends[b.Name] = true
	}
	for _, rt := range routes {
		used[rt.Backend] = fmt.Sprintf("project %q", rt.Project)
	}
	for _, b := range sortedKeys(used) {
		if !backends[b] {
			return rep, cfgErr("backends", "backend %q is still used by %s: keep it until the migration ends or the project moves", b, used[b])
		}
	}

	if s.host != nil {
		specs, err := PluginSpecs(cfg, s.executable)
		if err != nil {
			return rep, err
		}
		rep.Started, rep.Stopped, err = s.host.Apply(ctx, specs)
		if err != nil {
			return rep, fmt.Errorf("backends: %w", err)
		}
	}
	s.routing.replace(routes)
	s.shared.reapply()
	s.live.Swap(live).retire(ReloadDrain)
	applied = true
	return rep, nil
}

// nextRoutes is the routing table of cfg: its bindings, the bindings that
// migrations made (the overlay, as at start-up), and the current binding of
// every project a migration is moving, which a reload does not touch.
func (s *Server) nextRoutes(cfg *Config, moving map[string]bool, kept map[string]string) (map[string]Route, error) {
	oldCfg := map[string]string{}
	for _, p := range s.config().Projects {
		oldCfg[p.Name] = p.Backend
	}
	next := map[string]Route{}
	for _, p := range cfg.Projects {
		old, had := s.routing.Lookup(p.Name)
		switch {
		case had && (moving[p.Name] || old.ReadOnly):
			// Paused by a migration (of another replica, with shared
			// state): the pause is not the file's to lift.
			next[p.Name] = old
			if p.Backend != oldCfg[p.Name] {
				kept[p.Name] = "being migrated: the binding is kept until the migration ends"
			}
		case had && old.Backend != oldCfg[p.Name] && p.Backend == oldCfg[p.Name]:
			// A migration moved it and the file still names the old
			// backend: the migration's binding stands, as at start-up.
			next[p.Name] = Route{Project: p.Name, Backend: old.Backend}
		default:
			next[p.Name] = Route{Project: p.Name, Backend: p.Backend}
		}
	}
	for _, old := range s.routing.Projects() {
		if _, ok := next[old.Project]; !ok && moving[old.Project] {
			next[old.Project] = old
			kept[old.Project] = "being migrated: it stays until the migration ends"
		}
	}
	return next, nil
}

// restartOnly lists the settings that differ and that only a restart
// applies: the listener, TLS, the audit log and the web UI.
func restartOnly(old, cfg *Config) []string {
	var out []string
	if old == nil {
		return nil
	}
	if old.Listen != cfg.Listen {
		out = append(out, "listen")
	}
	if old.TLS != cfg.TLS {
		out = append(out, "tls")
	}
	if old.Audit != cfg.Audit {
		out = append(out, "audit")
	}
	if old.UI != cfg.UI {
		out = append(out, "ui")
	}
	if old.VaultAPI != cfg.VaultAPI {
		out = append(out, "vault_api") // its routes are registered at start
	}
	if !reflect.DeepEqual(old.State, cfg.State) {
		out = append(out, "state")
	}
	return out
}

// ReloadFile reads, validates and applies a configuration file, and logs
// the outcome (never a value: configuration errors name fields). adjust,
// when set, applies the command line's overrides to the loaded file.
func (s *Server) ReloadFile(ctx context.Context, path string, opts LoadOptions, adjust func(*Config)) error {
	cfg, err := LoadConfig(path, opts)
	if err == nil && adjust != nil {
		adjust(cfg)
	}
	if err != nil {
		s.metrics.reloaded("error")
		s.log.Error("configuration reload refused; the previous configuration keeps serving", "path", path, "error", err)
		return err
	}
	rep, err := s.Reload(ctx, cfg)
	if err != nil {
		s.log.Error("configuration reload failed; the previous configuration keeps serving", "path", path, "error", err)
		return err
	}
	args := []any{"path", path}
	if len(rep.Started) > 0 {
		args = append(args, "plugins_started", strings.Join(rep.Started, ","))
	}
	if len(rep.Stopped) > 0 {
		args = append(args, "plugins_stopping", strings.Join(rep.Stopped, ","), "drain", ReloadDrain.String())
	}
	s.log.Info("configuration reloaded", args...)
	for _, p := range sortedKeys(rep.Kept) {
		s.log.Warn("configuration reload: project binding kept", "project", p, "reason", rep.Kept[p])
	}
	if len(rep.NeedRestart) > 0 {
		s.log.Warn("configuration reload: these settings changed but apply only after a restart", "settings", strings.Join(rep.NeedRestart, ","))
	}
	return nil
}
