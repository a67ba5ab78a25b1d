package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/sdk"
	"github.com/secretgate/secretgate/sdk/client"
)

// Exit codes of the client commands, so that scripts can tell failures
// apart without parsing messages.
const (
	exitFailure         = 1 // anything else (internal errors, I/O)
	exitUsage           = 2 // bad arguments, invalid_argument, payload_too_large, missing configuration
	exitDenied          = 3 // unauthenticated, permission_denied; `policy explain` said no
	exitNotFound        = 4 // not_found
	exitAlreadyExists   = 5 // already_exists
	exitVersionMismatch = 6 // version_mismatch (If-Match)
	exitUnavailable     = 7 // backend_unavailable, or the gateway cannot be reached
	exitMigrating       = 8 // migration_in_progress: the project takes no writes until its migration ends
)

// Environment of the client commands, like VAULT_ADDR and VAULT_TOKEN.
const (
	envAddr  = "SECRETGATE_ADDR"
	envToken = "SECRETGATE_TOKEN"
	// envTokenFile names a file holding the token, read again whenever it
	// changes (a rotated Kubernetes projected token, a renewed CI token).
	envTokenFile = "SECRETGATE_TOKEN_FILE"
	envCACert    = "SECRETGATE_CACERT"
	envProject   = "SECRETGATE_PROJECT"

	defaultAddr    = "http://127.0.0.1:8270"
	defaultProject = "default"
)

// usageError makes a command fail with exitUsage.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// apiError gives an error from the client the exit code of its kind.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	code := exitFailure
	switch {
	case errors.Is(err, sdk.ErrInvalid), errors.Is(err, client.ErrPayloadTooLarge):
		code = exitUsage
	case errors.Is(err, client.ErrUnauthenticated), errors.Is(err, client.ErrPermissionDenied):
		code = exitDenied
	case errors.Is(err, sdk.ErrNotFound):
		code = exitNotFound
	case errors.Is(err, sdk.ErrAlreadyExists):
		code = exitAlreadyExists
	case errors.Is(err, sdk.ErrVersionMismatch):
		code = exitVersionMismatch
	case errors.Is(err, sdk.ErrUnavailable):
		code = exitUnavailable
	case errors.Is(err, client.ErrMigrationInProgress):
		code = exitMigrating
	}
	return &exitError{code: code, err: err}
}

// Connection flags of the client commands. Each wins over its environment
// variable, so that one command can aim at another gateway or identity
// without touching the shell's exports.
const (
	flagAddr      = "addr"
	flagToken     = "token"
	flagTokenFile = "token-file"
)

// addConnFlags adds --addr, --token and --token-file to cmd and, as
// persistent flags, to all its subcommands.
func addConnFlags(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.String(flagAddr, "", "gateway address (default $"+envAddr+", else "+defaultAddr+")")
	fs.String(flagToken, "", "bearer token (default $"+envToken+"); other users of this machine can read it in process listings: prefer $"+envToken+" or --token-file")
	fs.String(flagTokenFile, "", "file holding the bearer token, read again when it changes (default $"+envTokenFile+")")
}

// Annotations of the root command that record where the connection
// settings came from, for the hint printed with an error (see errorText).
const (
	annotAddr      = "secretgate.addr"
	annotAddrFrom  = "secretgate.addr-from"
	annotTokenFrom = "secretgate.token-from"
)

// connection is what a client command connects with, and where each
// setting came from (a flag, a variable or the default), for messages.
type connection struct {
	addr, addrFrom   string
	token, tokenFile string
	tokenFrom        string
	caFile           string
	addrNote         string // set when a path was dropped from addr
}

// changedFlag returns the value of flag name when it was given on the
// command line of cmd (local or inherited).
func changedFlag(cmd *cobra.Command, name string) (string, bool) {
	if cmd == nil {
		return "", false
	}
	f := cmd.Flag(name)
	if f == nil || !f.Changed {
		return "", false
	}
	return f.Value.String(), true
}

// connectionOf reads the flags of cmd, then the environment.
func connectionOf(cmd *cobra.Command) (connection, error) {
	var c connection
	switch v, ok := changedFlag(cmd, flagAddr); {
	case ok:
		c.addr, c.addrFrom = v, "--"+flagAddr
	case os.Getenv(envAddr) != "":
		c.addr, c.addrFrom = os.Getenv(envAddr), envAddr
	default:
		c.addr, c.addrFrom = defaultAddr, "the default"
	}
	if c.addr == "" {
		return c, usageError("--%s is empty", flagAddr)
	}
	base, dropped, err := apiBase(c.addr)
	if err != nil {
		return c, usageError("%s: %w", c.addrFrom, err)
	}
	if dropped != "" {
		c.addrNote = fmt.Sprintf("%s %s: %s is not part of the API's address (the web UI's path, or an API path, which the CLI adds itself); using %s", c.addrFrom, c.addr, dropped, base)
		c.addr = base
	}

	flagTok, hasTok := changedFlag(cmd, flagToken)
	flagFile, hasFile := changedFlag(cmd, flagTokenFile)
	switch {
	case hasTok && hasFile:
		return c, usageError("--%s and --%s exclude each other: use one", flagToken, flagTokenFile)
	case hasTok:
		if flagTok == "" {
			return c, usageError("--%s is empty", flagToken)
		}
		c.token, c.tokenFrom = flagTok, "--"+flagToken
	case hasFile:
		if flagFile == "" {
			return c, usageError("--%s is empty", flagTokenFile)
		}
		c.tokenFile, c.tokenFrom = flagFile, "--"+flagTokenFile
	default:
		token, tokenFile := os.Getenv(envToken), os.Getenv(envTokenFile)
		switch {
		case token != "" && tokenFile != "":
			return c, usageError("%s and %s are both set: use one", envToken, envTokenFile)
		case tokenFile != "":
			c.tokenFile, c.tokenFrom = tokenFile, envTokenFile
		case token != "":
			c.token, c.tokenFrom = token, envToken
		default:
			return c, usageError("%s is not set: export the token that `secretgate server --dev` printed, or one made with `secretgate token new` (or set %s to a file holding it, or give --%s)", envToken, envTokenFile, flagTokenFile)
		}
	}
	c.caFile = os.Getenv(envCACert)
	return c, nil
}

// apiBase is addr without the part of its path that cannot belong to the
// API's base: the client appends /v1/... itself, so the web UI's /ui/ (the
// address the dev banner prints) or an API path pasted from a curl line
// would turn every request into a 404 of the web UI, or a doubled path.
// Only those are dropped, from the first "ui" or "v1" segment on; what
// precedes them is kept, for a gateway that a proxy serves under a
// sub-path. The query and fragment go too. dropped is what was removed, for
// the note on stderr; empty when nothing that mattered was.
func apiBase(addr string) (base, dropped string, err error) {
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw // a bare host:port means http, as in the client
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("scheme %q is neither http nor https", u.Scheme)
	}
	if u.Host == "" {
		return "", "", errors.New("no host")
	}
	kept := u.Path
	segs := strings.Split(u.Path, "/") // "/a/ui/x" is "", "a", "ui", "x"
	for i, seg := range segs {
		if i > 0 && (seg == "ui" || seg == "v1") {
			kept = strings.Join(segs[:i], "/")
			break
		}
	}
	dropped = strings.TrimPrefix(u.Path, kept)
	if u.RawQuery != "" {
		dropped += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		dropped += "#" + u.EscapedFragment()
	}
	if dropped == "" {
		return addr, "", nil
	}
	u.Path, u.RawPath = kept, ""
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	return u.String(), dropped, nil
}

// newAPIClient builds a client from the connection flags of cmd (--addr,
// --token, --token-file), else SECRETGATE_ADDR, SECRETGATE_TOKEN (or
// SECRETGATE_TOKEN_FILE), and SECRETGATE_CACERT. Where the address and the
// token came from is kept on the root command, for the hint of an error.
func newAPIClient(cmd *cobra.Command) (*client.Client, error) {
	c, err := connectionOf(cmd)
	if err != nil {
		return nil, err
	}
	if c.addrNote != "" {
		fmt.Fprintln(errOut(cmd), "secretgate: note:", c.addrNote)
	}
	if cmd != nil {
		root := cmd.Root()
		if root.Annotations == nil {
			root.Annotations = map[string]string{}
		}
		root.Annotations[annotAddr] = c.addr
		root.Annotations[annotAddrFrom] = c.addrFrom
		root.Annotations[annotTokenFrom] = c.tokenFrom
	}
	opts := []client.Option{client.WithUserAgent("secretgate-cli")}
	if c.tokenFile != "" {
		opts = append(opts, client.WithTokenFile(c.tokenFile))
	}
	if c.caFile != "" {
		opts = append(opts, client.WithCAFile(c.caFile))
	}
	cl, err := client.New(c.addr, c.token, opts...)
	if err != nil {
		return nil, usageError("%s/%s: %w", c.addrFrom, c.tokenFrom, err)
	}
	return cl, nil
}

// errOut is where a command's notes go: its stderr, else the process's.
func errOut(cmd *cobra.Command) io.Writer {
	if cmd == nil {
		return os.Stderr
	}
	return cmd.ErrOrStderr()
}

func projectFromEnv() string {
	if p := os.Getenv(envProject); p != "" {
		return p
	}
	return defaultProject
}

// Output formats of -o.
const (
	outTable = "table"
	outJSON  = "json"
)

// addOutputFlag adds -o/--output to cmd.
func addOutputFlag(cmd *cobra.Command, out *string, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVarP(out, "output", "o", outTable, "output format: table or json")
}

func checkOutput(out string) error {
	if out != outTable && out != outJSON {
		return usageError("--output: %q is neither table nor json", out)
	}
	return nil
}

// printJSON writes v as indented JSON, the API's shapes for machines.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// cell makes a value safe for one table cell: control characters (a newline
// in a PEM key, say) would break the layout, so such values are quoted.
func cell(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == '\t' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// parsePairs parses `key=value`, `key=@file` and `key=-` (stdin, at most
// once) arguments, like `vault kv put`. Errors name the key or the argument's
// position, never a value. Files and stdin are taken byte for byte.
func parsePairs(args []string, stdin io.Reader, what string) (map[string]string, error) {
	data := map[string]string{}
	usedStdin := false
	for i, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok || k == "" {
			// The argument is not repeated: it may be a value typed without its key.
			return nil, usageError("%s argument %d: want key=value, key=@file or key=-", what, i+1)
		}
		if _, dup := data[k]; dup {
			return nil, usageError("%s: key %q given twice", what, k)
		}
		switch {
		case v == "-":
			if usedStdin {
				return nil, usageError("%s: key %q: only one key may read standard input", what, k)
			}
			usedStdin = true
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("%s: key %q: read standard input: %w", what, k, err)
			}
			v = string(b)
		case strings.HasPrefix(v, "@"):
			b, err := os.ReadFile(v[1:])
			if err != nil {
				return nil, usageError("%s: key %q: %w", what, k, err)
			}
			v = string(b)
		}
		data[k] = v
	}
	for k, v := range data {
		if !utf8.ValidString(v) {
			return nil, usageError("%s: key %q: value is not valid UTF-8 (secretgate stores text)", what, k)
		}
	}
	return data, nil
}

// parseLabels parses repeated --label k=v flags; nil when none were given.
func parseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	labels := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, usageError("--label %q: want key=value", f)
		}
		if _, dup := labels[k]; dup {
			return nil, usageError("--label: key %q given twice", k)
		}
		labels[k] = v
	}
	return labels, nil
}
