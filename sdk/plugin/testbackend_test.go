package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretgate/secretgate/sdk"
)

// testBackend is a small in-memory Backend for the protocol tests. Names
// starting with "err-" make every call on them fail with a chosen error, so
// that the error mapping can be checked against the very same error in
// process. Its clock is fixed, so that in-process and plugin results can be
// compared with require.Equal.
type testBackend struct {
	mu         sync.Mutex
	settings   map[string]string
	secrets    map[string][]sdk.Secret // project/name -> versions, oldest first
	lastCtxErr string                  // what a "block" call saw when it ended
}

func newTestBackend() *testBackend {
	return &testBackend{secrets: map[string][]sdk.Secret{}}
}

var epoch = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// errorTriggers are the errors a plugin can return; keys are secret names.
var errorTriggers = map[string]func(project, name string) error{
	"err-not-found":      func(p, n string) error { return sdk.NotFound(p, n) },
	"err-bare-not-found": func(string, string) error { return sdk.ErrNotFound },
	"err-version-gone":   func(p, n string) error { return sdk.VersionNotFound(p, n, 3) },
	"err-exists":         func(p, n string) error { return sdk.AlreadyExists(p, n) },
	"err-mismatch":       func(p, n string) error { return sdk.VersionMismatch(p, n, 3, 4) },
	"err-bare-mismatch":  func(string, string) error { return sdk.ErrVersionMismatch },
	"err-invalid-field":  func(string, string) error { return sdk.Invalid("data.password", "must not be empty") },
	"err-invalid-wrapped": func(string, string) error {
		return fmt.Errorf("checking request: %w", sdk.Invalid("labels.env", "is too long"))
	},
	"err-invalid-plain": func(string, string) error { return fmt.Errorf("bad page token: %w", sdk.ErrInvalid) },
	"err-permission":    func(string, string) error { return fmt.Errorf("vault answered 403: %w", sdk.ErrPermission) },
	"err-unavailable":   func(string, string) error { return fmt.Errorf("dialing vault: %w", sdk.ErrUnavailable) },
	"err-other":         func(string, string) error { return errors.New("disk on fire") },
}

// special handles the names that do not store anything.
func (b *testBackend) special(ctx context.Context, project, name string) error {
	if f, ok := errorTriggers[name]; ok {
		return f(project, name)
	}
	switch name {
	case "block":
		<-ctx.Done()
		b.mu.Lock()
		b.lastCtxErr = ctx.Err().Error()
		b.mu.Unlock()
		return ctx.Err()
	case "panic":
		panic("test backend panics on purpose")
	}
	return nil
}

func (b *testBackend) Configure(_ context.Context, settings map[string]string) error {
	if settings["fail"] != "" {
		return sdk.Invalid("settings.fail", "was asked to fail")
	}
	if msg := settings["say"]; msg != "" {
		// Reaches the host through go-plugin's stderr sync stream.
		fmt.Fprintln(os.Stderr, msg)
	}
	if pidfile := settings["spawn_pidfile"]; pidfile != "" {
		// A grandchild of the host: Kill must take it down too.
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting sleep: %w", err)
		}
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settings = settings
	return nil
}

func (b *testBackend) Capabilities(context.Context) (sdk.Capabilities, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sdk.Capabilities{Backend: b.settings["kind"], Versions: true, MaxVersions: 7, CAS: true, Labels: true}, nil
}

func (b *testBackend) List(ctx context.Context, req sdk.ListRequest) (sdk.ListPage, error) {
	if err := b.special(ctx, req.Project, req.Prefix); err != nil {
		return sdk.ListPage{}, err
	}
	if err := sdk.ValidateList(req); err != nil {
		return sdk.ListPage{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var names []string
	for k := range b.secrets {
		p, n, _ := strings.Cut(k, "/")
		if p == req.Project && strings.HasPrefix(n, req.Prefix) && n > req.PageToken {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var page sdk.ListPage
	for _, n := range names {
		if len(page.Secrets) == sdk.PageSize(req.PageSize) {
			page.NextPageToken = page.Secrets[len(page.Secrets)-1].Name
			break
		}
		vs := b.secrets[req.Project+"/"+n]
		page.Secrets = append(page.Secrets, vs[len(vs)-1].Meta)
	}
	return page, nil
}

func (b *testBackend) get(ref sdk.Ref) (sdk.Secret, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.secrets[ref.Project+"/"+ref.Name]
	if !ok {
		return sdk.Secret{}, sdk.NotFound(ref.Project, ref.Name)
	}
	if ref.Version == 0 {
		return vs[len(vs)-1], nil
	}
	if ref.Version > int64(len(vs)) {
		return sdk.Secret{}, sdk.VersionNotFound(ref.Project, ref.Name, ref.Version)
	}
	return vs[ref.Version-1], nil
}

func (b *testBackend) Describe(ctx context.Context, ref sdk.Ref) (sdk.Meta, error) {
	if err := b.special(ctx, ref.Project, ref.Name); err != nil {
		return sdk.Meta{}, err
	}
	s, err := b.get(sdk.Ref{Project: ref.Project, Name: ref.Name})
	return s.Meta, err
}

func (b *testBackend) Read(ctx context.Context, ref sdk.Ref) (sdk.Secret, error) {
	if ref.Name == "last-ctx-err" {
		b.mu.Lock()
		defer b.mu.Unlock()
		return sdk.Secret{Data: map[string]string{"err": b.lastCtxErr}}, nil
	}
	if ref.Name == "ctx-deadline" {
		// How long the call had left when it arrived, in whole seconds.
		left := "none"
		if dl, ok := ctx.Deadline(); ok {
			left = strconv.Itoa(int(time.Until(dl).Round(time.Second).Seconds()))
		}
		return sdk.Secret{Data: map[string]string{"left": left}}, nil
	}
	if err := b.special(ctx, ref.Project, ref.Name); err != nil {
		return sdk.Secret{}, err
	}
	return b.get(ref)
}

func (b *testBackend) Write(ctx context.Context, req sdk.WriteRequest) (sdk.Meta, error) {
	if err := b.special(ctx, req.Project, req.Name); err != nil {
		return sdk.Meta{}, err
	}
	if err := sdk.ValidateWrite(req); err != nil {
		return sdk.Meta{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := req.Project + "/" + req.Name
	vs := b.secrets[key]
	switch {
	case len(vs) > 0 && req.Mode == sdk.WriteCreate:
		return sdk.Meta{}, sdk.AlreadyExists(req.Project, req.Name)
	case len(vs) == 0 && req.Mode == sdk.WriteReplace:
		return sdk.Meta{}, sdk.NotFound(req.Project, req.Name)
	case req.ExpectedVersion > 0 && req.ExpectedVersion != int64(len(vs)):
		return sdk.Meta{}, sdk.VersionMismatch(req.Project, req.Name, req.ExpectedVersion, int64(len(vs)))
	}
	version := int64(len(vs)) + 1
	meta := sdk.Meta{
		Project:   req.Project,
		Name:      req.Name,
		Keys:      sdk.SortedKeys(req.Data),
		Version:   version,
		Labels:    sdk.CloneData(req.Labels),
		CreatedAt: epoch,
		UpdatedAt: epoch.Add(time.Duration(version) * time.Second),
	}
	if req.Labels == nil && len(vs) > 0 {
		meta.Labels = vs[len(vs)-1].Labels
	}
	b.secrets[key] = append(vs, sdk.Secret{Meta: meta, Data: sdk.CloneData(req.Data)})
	return meta, nil
}

func (b *testBackend) Delete(ctx context.Context, ref sdk.Ref) error {
	if err := b.special(ctx, ref.Project, ref.Name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := ref.Project + "/" + ref.Name
	if _, ok := b.secrets[key]; !ok {
		return sdk.NotFound(ref.Project, ref.Name)
	}
	delete(b.secrets, key)
	return nil
}

func (b *testBackend) Versions(ctx context.Context, ref sdk.Ref) ([]sdk.VersionMeta, error) {
	if err := b.special(ctx, ref.Project, ref.Name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	vs, ok := b.secrets[ref.Project+"/"+ref.Name]
	if !ok {
		return nil, sdk.NotFound(ref.Project, ref.Name)
	}
	out := make([]sdk.VersionMeta, len(vs))
	for i, v := range vs {
		out[i] = sdk.VersionMeta{Version: v.Version, CreatedAt: v.UpdatedAt}
	}
	return out, nil
}

func (b *testBackend) Ping(context.Context) error { return nil }
