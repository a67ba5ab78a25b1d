package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

// What `run` and `inject` share: the environment a child gets, built from
// the process's own, dotenv files and whole secrets, with every reference
// resolved in one POST /v1/resolve. Nothing of it is written to disk.

// envVar is one variable of the child's environment and where it came from,
// for messages (which name variables and references, never values).
type envVar struct {
	name, value string
	from        string // "the environment", "FILE:LINE" or "--secret P/S"
	ref         string // the reference the value came from, if any
}

// childEnv is an ordered environment where later definitions win.
type childEnv struct {
	vars  map[string]*envVar
	order []string
}

func newChildEnv() *childEnv { return &childEnv{vars: map[string]*envVar{}} }

// clone copies e, so that every resolution under --watch starts again from
// the references, not from values an earlier one put in their place.
func (e *childEnv) clone() *childEnv {
	c := &childEnv{vars: make(map[string]*envVar, len(e.vars)), order: append([]string(nil), e.order...)}
	for n, v := range e.vars {
		cp := *v
		c.vars[n] = &cp
	}
	return c
}

func (e *childEnv) set(v envVar) {
	if _, ok := e.vars[v.name]; !ok {
		e.order = append(e.order, v.name)
	}
	e.vars[v.name] = &v
}

// environ is the KEY=VALUE list for exec.
func (e *childEnv) environ() []string {
	out := make([]string, 0, len(e.order))
	for _, n := range e.order {
		out = append(out, n+"="+e.vars[n].value)
	}
	return out
}

// addEnviron adds the process's variables.
func (e *childEnv) addEnviron(environ []string) {
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		e.set(envVar{name: name, value: value, from: "the environment"})
	}
}

// validEnvName: what a POSIX shell accepts as a variable name.
func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// addEnvFile adds a dotenv file (see readDotenv); later lines win.
func (e *childEnv) addEnvFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return usageError("--env-file: %w", err)
	}
	defer f.Close()
	entries, err := readDotenv(f, path, "--env-file")
	if err != nil {
		return err
	}
	for _, d := range entries {
		e.set(envVar{name: d.name, value: d.value, from: d.where})
	}
	return nil
}

// dotenvEntry is one NAME=VALUE line of a dotenv file.
type dotenvEntry struct {
	name, value string
	where       string // FILE:LINE, for messages
}

// readDotenv parses a dotenv file: NAME=VALUE lines, optionally after
// `export `; blank lines and lines starting with # are skipped. A value may
// be 'single-quoted' (taken as is), "double-quoted" (\n, \t, \", \\ and \$
// unescaped) or bare (trimmed, and cut at " #"). No interpolation: ${X}
// stays as written. Errors start with flag and name the file, the line and
// the name, never a value. The entries are in file order, repeats included.
func readDotenv(r io.Reader, path, flag string) ([]dotenvEntry, error) {
	var out []dotenvEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		where := path + ":" + strconv.Itoa(n)
		name, raw, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !validEnvName(name) {
			return nil, usageError("%s %s: want NAME=VALUE with NAME of letters, digits and '_'", flag, where)
		}
		value, err := dotenvValue(strings.TrimSpace(raw))
		if err != nil {
			return nil, usageError("%s %s: %s: %w", flag, where, name, err)
		}
		out = append(out, dotenvEntry{name: name, value: value, where: where})
	}
	if err := sc.Err(); err != nil {
		return nil, usageError("%s %s: %w", flag, path, err)
	}
	return out, nil
}

func dotenvValue(raw string) (string, error) {
	switch {
	case strings.HasPrefix(raw, "'"):
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", errors.New("unterminated single quote")
		}
		if rest := strings.TrimSpace(raw[end+2:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", errors.New("text after the closing quote")
		}
		return raw[1 : end+1], nil
	case strings.HasPrefix(raw, `"`):
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c == '"':
				if rest := strings.TrimSpace(raw[i+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
					return "", errors.New("text after the closing quote")
				}
				return b.String(), nil
			case c == '\\' && i+1 < len(raw):
				i++
				switch raw[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$':
					b.WriteByte(raw[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(raw[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("unterminated double quote")
	}
	if i := strings.Index(raw, " #"); i >= 0 {
		raw = strings.TrimSpace(raw[:i])
	}
	return raw, nil
}

// envNameOfKey turns a secret's key into a variable name: upper-cased, '.'
// and '-' as '_', after prefix.
func envNameOfKey(prefix, key string) string {
	return prefix + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(key))
}

// addSecrets adds every key of each PROJECT/SECRET, read with one GET each
// (the keys are not known before). Two keys that map to the same name are
// an error.
func (e *childEnv) addSecrets(ctx context.Context, c *client.Client, specs []string, prefix string) ([]string, error) {
	if prefix != "" && !validEnvName(prefix) {
		return nil, usageError("--prefix %q: want letters, digits and '_', not starting with a digit", prefix)
	}
	var values []string
	for _, spec := range specs {
		project, name, ok := strings.Cut(spec, "/")
		if !ok || sdk.ValidateProject(project) != nil || sdk.ValidateName(name) != nil {
			return nil, usageError("--secret %q: want PROJECT/SECRET", spec)
		}
		s, err := c.Get(ctx, project, name)
		if err != nil {
			return nil, apiError(fmt.Errorf("--secret %s: %w", spec, err))
		}
		byName := map[string]string{}
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n := envNameOfKey(prefix, k)
			if other, dup := byName[n]; dup {
				return nil, usageError("--secret %s: keys %q and %q both become variable %s", spec, other, k, n)
			}
			byName[n] = k
			e.set(envVar{name: n, value: s.Data[k], from: "--secret " + spec})
			values = append(values, s.Data[k])
		}
	}
	return values, nil
}

// resolveRefs replaces every variable whose whole value is a reference with
// the reference's value, in one round trip. It returns the resolved values
// (to mask). A failure names the variables and the reference.
func (e *childEnv) resolveRefs(ctx context.Context, newClient func() (*client.Client, error)) ([]string, error) {
	var refs []string
	for _, n := range e.order {
		v := e.vars[n]
		if !sdk.IsReference(v.value) {
			continue
		}
		if _, err := sdk.ParseReference(v.value); err != nil {
			return nil, usageError("variable %s (from %s): %w", n, v.from, err)
		}
		v.ref = v.value
		refs = append(refs, v.value)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	c, err := newClient()
	if err != nil {
		return nil, err
	}
	got, err := c.Resolve(ctx, refs)
	if err != nil {
		return nil, apiError(fmt.Errorf("%s: %w", e.namesFor(err), err))
	}
	values := make([]string, 0, len(refs))
	for _, n := range e.order {
		if v := e.vars[n]; v.ref != "" {
			v.value = got[v.ref]
			values = append(values, v.value)
		}
	}
	return values, nil
}

// namesFor says which variables an error of the gateway is about: those
// whose reference it quotes, else all of them.
func (e *childEnv) namesFor(err error) string {
	msg := err.Error()
	var hit, all []string
	for _, n := range e.order {
		v := e.vars[n]
		if v.ref == "" {
			continue
		}
		desc := n + "=" + v.ref
		all = append(all, desc)
		if strings.Contains(msg, strconv.Quote(v.ref)) {
			hit = append(hit, desc)
		}
	}
	if len(hit) > 0 {
		return "cannot resolve variable " + strings.Join(hit, ", ")
	}
	return "cannot resolve the references of " + strings.Join(all, ", ")
}

// clientOnce builds the API client when first needed: a command without
// references needs no token. cmd carries the connection flags.
type clientOnce struct {
	cmd *cobra.Command
	c   *client.Client
	err error
}

func (o *clientOnce) get() (*client.Client, error) {
	if o.c == nil && o.err == nil {
		o.c, o.err = newAPIClient(o.cmd)
	}
	return o.c, o.err
}

// envSource makes the child's environment: the process's own and the
// --env-file files (base, references unresolved), then every --secret, then
// the references resolved. --watch makes it again after a change.
type envSource struct {
	base    *childEnv
	secrets []string
	prefix  string
	client  *clientOnce
}

// resolve makes the environment, with one GET per --secret and one POST
// /v1/resolve for every reference, and returns the values to mask.
func (s *envSource) resolve(ctx context.Context) (*childEnv, []string, error) {
	env := s.base.clone()
	var values []string
	if len(s.secrets) > 0 {
		cl, err := s.client.get()
		if err != nil {
			return nil, nil, err
		}
		if values, err = env.addSecrets(ctx, cl, s.secrets, s.prefix); err != nil {
			return nil, nil, err
		}
	}
	resolved, err := env.resolveRefs(ctx, s.client.get)
	if err != nil {
		return nil, nil, err
	}
	return env, append(values, resolved...), nil
}

// targets are the secrets, by project, whose next version can change env:
// those of every --secret and of every reference not pinned to a version
// (a pinned one never changes). env may be resolved or not.
func (s *envSource) targets(env *childEnv) map[string]map[string]bool {
	var refs []string
	for _, n := range env.order {
		v := env.vars[n]
		switch {
		case v.ref != "":
			refs = append(refs, v.ref)
		case sdk.IsReference(v.value):
			refs = append(refs, v.value)
		}
	}
	out := referenceTargets(refs)
	for _, spec := range s.secrets {
		project, name, ok := strings.Cut(spec, "/")
		// A malformed --secret is left to addSecrets, which names it.
		if !ok || sdk.ValidateProject(project) != nil || sdk.ValidateName(name) != nil {
			continue
		}
		if out[project] == nil {
			out[project] = map[string]bool{}
		}
		out[project][name] = true
	}
	return out
}

// changedNames lists, sorted, the variables that b adds, removes or gives
// another value than a: names only, for messages.
func changedNames(a, b *childEnv) []string {
	var out []string
	for n, v := range b.vars {
		if old, ok := a.vars[n]; !ok || old.value != v.value {
			out = append(out, n)
		}
	}
	for n := range a.vars {
		if _, ok := b.vars[n]; !ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
