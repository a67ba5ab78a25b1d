package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretgate/secretgate/policy"
)

func init() { registerCommand(newTokenCmd) }

// tokenPrefix marks secretgate tokens, so that secret scanners and people
// can recognise one.
const tokenPrefix = "sg_"

// newToken returns "sg_" and 32 bytes of crypto/rand in unpadded base64url.
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: random: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func tokenHashHex(token string) string {
	h := policy.HashToken(token)
	return hex.EncodeToString(h[:])
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make bearer tokens and their hashes for the configuration",
	}
	cmd.AddCommand(newTokenNewCmd(), newTokenHashCmd())
	return cmd
}

// printToken prints the hash of token, and the token itself when show is
// set (a fresh one; never one the user typed in).
func printToken(cmd *cobra.Command, output, token string, show bool, subject string) error {
	sum := tokenHashHex(token)
	w := cmd.OutOrStdout()
	if output == outJSON {
		v := map[string]string{"token_sha256": sum}
		if show {
			v["token"] = token
		}
		return printJSON(w, v)
	}
	if show {
		fmt.Fprintf(w, "token: %s\n", token)
	}
	fmt.Fprintf(w, "token_sha256: %s\n", sum)
	// The hint goes to stderr so that stdout stays two parseable lines.
	fmt.Fprintf(cmd.ErrOrStderr(), "\nThe server stores only the hash. Add to the config:\n  subjects:\n    - name: %s\n      token_sha256: %s\n", subject, sum)
	return nil
}

func newTokenNewCmd() *cobra.Command {
	var output, subject string
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Print a fresh random token and the token_sha256 line for the config",
		Long: `Print a fresh bearer token (sg_ followed by 32 random bytes in base64url) and
its SHA-256, the token_sha256 line to paste under the subject in the
configuration. Hand the token to its holder; the server never stores it.`,
		Example: `  secretgate token new --subject ci
  secretgate token new -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			tok, err := newToken()
			if err != nil {
				return err
			}
			return printToken(cmd, output, tok, true, subject)
		},
	}
	addOutputFlag(cmd, &output, false)
	cmd.Flags().StringVar(&subject, "subject", "NAME", "subject name to show in the config snippet")
	return cmd
}

func newTokenHashCmd() *cobra.Command {
	var output, subject string
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Read a token on standard input and print its token_sha256",
		Long: `Read an existing token on standard input (never as an argument, which
would leave it in shell history and ps) and print its token_sha256. One
trailing newline is ignored.`,
		Example: `  printf %s "$SECRETGATE_TOKEN" | secretgate token hash`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
			if err != nil {
				return fmt.Errorf("token hash: read standard input: %w", err)
			}
			tok := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if tok == "" {
				return usageError("token hash: standard input is empty")
			}
			return printToken(cmd, output, tok, false, subject)
		},
	}
	addOutputFlag(cmd, &output, false)
	cmd.Flags().StringVar(&subject, "subject", "NAME", "subject name to show in the config snippet")
	return cmd
}
