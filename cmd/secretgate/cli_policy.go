package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/secretgate/secretgate/gateway"
	"github.com/secretgate/secretgate/policy"
)

func init() { registerCommand(newPolicyCmd) }

const envConfig = "SECRETGATE_CONFIG"

// policyFile is the part of secretgate.yaml that the policy needs. The rest
// of the file (backends, projects, ...) is the server's business and is
// ignored here, so this command works on any valid configuration.
type policyFile struct {
	Subjects []gateway.SubjectConfig `yaml:"subjects"`
	Bindings []gateway.BindingConfig `yaml:"bindings"`
}

// loadPolicy reads the subjects and bindings of a configuration file and
// builds the Policy the server would build from them.
func loadPolicy(path string) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError("config: %w", err)
	}
	return parsePolicy(b, path)
}

func parsePolicy(b []byte, path string) (*policy.Policy, error) {
	var f policyFile
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, usageError("config %s: %w", path, err)
	}
	p, err := gateway.NewPolicy(&gateway.Config{Subjects: f.Subjects, Bindings: f.Bindings})
	if err != nil {
		return nil, usageError("config %s: %w", path, err)
	}
	return p, nil
}

func defaultConfigPath() string {
	if p := os.Getenv(envConfig); p != "" {
		return p
	}
	return "secretgate.yaml"
}

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Inspect the permission model: roles and who may do what",
	}
	cmd.AddCommand(newPolicyExplainCmd(), newPolicyRolesCmd())
	return cmd
}

func newPolicyExplainCmd() *cobra.Command {
	var config, subject, project, action, secret, output string
	cmd := &cobra.Command{
		Use:   "explain --subject S --project P --action A [--secret N]",
		Short: "Say which binding allows an action, or why none does",
		Long: `Load the subjects and bindings of a configuration file (--config, default
$SECRETGATE_CONFIG, else ./secretgate.yaml) and explain the decision for one
subject, project, action and, optionally, secret name. Without --secret the
question is about the whole project (for secrets.list: may the subject list
at all; the listing then shows only the names its bindings cover).

Actions: ` + strings.Join(policy.Actions(), ", ") + `.
Exit code 0 when allowed, 3 when denied, 2 for a bad config or arguments.`,
		Example: `  secretgate policy explain --config secretgate.yaml --subject alice --project payments --action secrets.read --secret stripe-key`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if !policy.IsAction(action) {
				return usageError("--action: unknown action %q (want one of %s)", action, strings.Join(policy.Actions(), ", "))
			}
			p, err := loadPolicy(config)
			if err != nil {
				return err
			}
			e := p.Explain(subject, project, action, secret)
			w := cmd.OutOrStdout()
			if output == outJSON {
				err = printJSON(w, e)
			} else {
				_, err = io.WriteString(w, e.String())
			}
			if err != nil {
				return err
			}
			if !e.Allowed {
				return &exitError{code: exitDenied, err: fmt.Errorf("denied: %s", e.Reason)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", defaultConfigPath(), "configuration file (subjects and bindings are read)")
	cmd.Flags().StringVar(&subject, "subject", "", "subject name")
	cmd.Flags().StringVar(&project, "project", "", "project name")
	cmd.Flags().StringVar(&action, "action", "", "action: "+strings.Join(policy.Actions(), ", "))
	cmd.Flags().StringVar(&secret, "secret", "", "secret name (omit for a project-level question)")
	addOutputFlag(cmd, &output, false)
	for _, f := range []string{"subject", "project", "action"} {
		_ = cmd.MarkFlagRequired(f) // the flags exist: cannot fail
	}
	return cmd
}

func newPolicyRolesCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "roles",
		Short: "Print the built-in roles and the actions each grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == outJSON {
				roles := map[string][]string{}
				for _, r := range policy.Roles() {
					roles[r] = policy.RoleActions(r)
				}
				return printJSON(w, map[string]any{"roles": roles})
			}
			tw := newTable(w)
			fmt.Fprint(tw, "ROLE")
			for _, a := range policy.Actions() {
				fmt.Fprint(tw, "\t"+a)
			}
			fmt.Fprintln(tw)
			for _, r := range policy.Roles() {
				fmt.Fprint(tw, r)
				for _, a := range policy.Actions() {
					mark := "-"
					if policy.RoleAllows(r, a) {
						mark = "yes"
					}
					fmt.Fprint(tw, "\t"+mark)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &output, false)
	return cmd
}
