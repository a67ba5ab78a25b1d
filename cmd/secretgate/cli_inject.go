package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk"
)

func init() { registerCommand(newInjectCmd) }

// placeholderRe finds {{ sg://... }}. Only placeholders whose content
// starts with sg:// are secretgate's: {{ .Name }}, ${VAR} and every other
// template syntax pass through untouched.
var placeholderRe = regexp.MustCompile(`\{\{\s*(sg://[^\s{}]*)\s*\}\}`)

func newInjectCmd() *cobra.Command {
	var (
		in, out, mode string
		watch         injectWatchFlags
	)
	cmd := &cobra.Command{
		Use:   "inject -i TEMPLATE -o OUT [--mode 0600] [--watch [--exec CMD | --signal NAME --pid PID]]",
		Short: "Render a file template whose {{ sg://PROJECT/SECRET/KEY }} placeholders become values",
		Long: `Render TEMPLATE into OUT, replacing every {{ sg://PROJECT/SECRET/KEY }}
placeholder (optionally ?version=N) with the key's value. Only placeholders
that start with sg:// inside {{ }} are replaced, so ${VAR}, {{ .Name }} and
other template syntaxes pass through as written. All references are resolved
in one POST /v1/resolve (secrets.read on each, audited as reads).

OUT is written atomically with --mode (default 0600): a temporary file in the
same directory, synced, then renamed over OUT. A reference that cannot be
resolved (or any other failure) exits non-zero before anything is written:
OUT is neither created nor changed. TEMPLATE may be - for standard input.

--watch: after the first render, follow the secrets of the references not
pinned with ?version=N and, when one gets a new version (or the gateway
says events were missed), resolve again and render again the same way; OUT
is replaced only when its content changed. Then --exec CMD runs through
sh -c (a failure is printed, the watch goes on), or --signal NAME goes to
--pid PID. A reference that no longer resolves keeps the old OUT and says
why. The template is read once. Runs until SIGINT or SIGTERM (exit 0).`,
		Example: `  secretgate inject -i config.yaml.tpl -o config.yaml
  secretgate inject -i app.env.tpl -o /run/app/app.env --mode 0640
  secretgate inject -i nginx.conf.tpl -o /etc/nginx/nginx.conf --watch --exec 'nginx -s reload'
  secretgate inject -i app.yaml.tpl -o app.yaml --watch --signal HUP --pid "$(cat app.pid)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if in == "" || out == "" {
				return usageError("-i TEMPLATE and -o OUT are required")
			}
			perm, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || perm > 0o777 {
				return usageError("--mode %q: want an octal permission such as 0600", mode)
			}
			wopts, err := watch.options(cmd)
			if err != nil {
				return err
			}
			var tpl []byte
			if in == "-" {
				tpl, err = io.ReadAll(cmd.InOrStdin())
			} else {
				tpl, err = os.ReadFile(in)
			}
			if err != nil {
				return usageError("-i: %w", err)
			}
			t, err := parseTemplate(string(tpl), in)
			if err != nil {
				return err
			}
			if wopts != nil {
				return injectWatching(cmd.Context(), &clientOnce{cmd: cmd}, t, out, os.FileMode(perm), *wopts)
			}
			rendered, err := t.render(cmd.Context(), &clientOnce{cmd: cmd})
			if err != nil {
				return err
			}
			return writeAtomic(out, []byte(rendered), os.FileMode(perm))
		},
	}
	cmd.Flags().StringVarP(&in, "input", "i", "", "template file (- for standard input)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write")
	cmd.Flags().StringVar(&mode, "mode", "0600", "permissions of the output file, in octal")
	watch.add(cmd)
	addConnFlags(cmd)
	return cmd
}

// injectTemplate is a parsed template: its text and where its placeholders are.
type injectTemplate struct {
	text, name string
	matches    [][]int // placeholderRe's submatch indexes
	refs       []string
}

// parseTemplate finds the placeholders of text; a malformed one is an
// error naming its line.
func parseTemplate(text, name string) (*injectTemplate, error) {
	t := &injectTemplate{text: text, name: name, matches: placeholderRe.FindAllStringSubmatchIndex(text, -1)}
	for _, m := range t.matches {
		ref := text[m[2]:m[3]]
		if _, err := sdk.ParseReference(ref); err != nil {
			line := 1 + strings.Count(text[:m[0]], "\n")
			return nil, usageError("%s:%d: %w", name, line, err)
		}
		t.refs = append(t.refs, ref)
	}
	return t, nil
}

// render resolves every placeholder in one round trip. A template without
// any needs no client (nor a token).
func (t *injectTemplate) render(ctx context.Context, c *clientOnce) (string, error) {
	if len(t.refs) == 0 {
		return t.text, nil
	}
	cl, err := c.get()
	if err != nil {
		return "", err
	}
	values, err := cl.Resolve(ctx, t.refs)
	if err != nil {
		return "", apiError(fmt.Errorf("%s: cannot resolve: %w", t.name, err))
	}
	var b strings.Builder
	last := 0
	for _, m := range t.matches {
		b.WriteString(t.text[last:m[0]])
		b.WriteString(values[t.text[m[2]:m[3]]])
		last = m[1]
	}
	b.WriteString(t.text[last:])
	return b.String(), nil
}

// writeAtomic replaces path with data: readers see the old file or the
// whole new one, never a part, and a failure leaves path as it was and no
// temporary file behind.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".secretgate-*")
	if err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// Chmod, not the umask-filtered create mode: --mode is what the file gets.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	// The rename is durable once the directory is synced; a failure to
	// sync it does not undo a write that readers already see.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
