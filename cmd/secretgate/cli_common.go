package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// newAPIClient builds a client from SECRETGATE_ADDR, SECRETGATE_TOKEN (or
// SECRETGATE_TOKEN_FILE) and SECRETGATE_CACERT.
func newAPIClient() (*client.Client, error) {
	addr := os.Getenv(envAddr)
	if addr == "" {
		addr = defaultAddr
	}
	token, tokenFile := os.Getenv(envToken), os.Getenv(envTokenFile)
	opts := []client.Option{client.WithUserAgent("secretgate-cli")}
	switch {
	case token != "" && tokenFile != "":
		return nil, usageError("%s and %s are both set: use one", envToken, envTokenFile)
	case tokenFile != "":
		opts = append(opts, client.WithTokenFile(tokenFile))
	case token == "":
		return nil, usageError("%s is not set: export the token that `secretgate server --dev` printed, or one made with `secretgate token new` (or set %s to a file holding it)", envToken, envTokenFile)
	}
	if ca := os.Getenv(envCACert); ca != "" {
		opts = append(opts, client.WithCAFile(ca))
	}
	c, err := client.New(addr, token, opts...)
	if err != nil {
		if tokenFile != "" {
			return nil, usageError("%s/%s: %w", envAddr, envTokenFile, err)
		}
		return nil, usageError("%s/%s: %w", envAddr, envToken, err)
	}
	return c, nil
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
