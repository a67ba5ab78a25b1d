package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func init() { registerCommand(newVersionCmd) }

// version is set by a release build (-ldflags "-X main.version=v1.2.3");
// otherwise the version comes from the build information that `go build`
// of a git checkout embeds (a pseudo-version, "+dirty" when modified).
var version string

// versionInfo is what `secretgate version` reports; -o json prints it as is.
type versionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`                // vcs.revision; "" without VCS information
	Modified   bool   `json:"modified"`              // vcs.modified: built from a changed working tree
	CommitTime string `json:"commit_time,omitempty"` // vcs.time
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

// readVersion reads the running binary's build information.
func readVersion() versionInfo {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return versionOf(bi, version)
	}
	return versionOf(nil, version)
}

// versionOf turns build information (nil when the binary has none) and a
// version set at link time into a versionInfo.
func versionOf(bi *debug.BuildInfo, linked string) versionInfo {
	v := versionInfo{Version: linked, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if v.Version == "" {
			v.Version = "devel"
		}
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	if v.Version == "" {
		v.Version = bi.Main.Version
	}
	if v.Version == "" || v.Version == "(devel)" {
		v.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "vcs.time":
			v.CommitTime = s.Value
		}
	}
	return v
}

// text is the human form, also what --version prints.
func (v versionInfo) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "secretgate %s\n", v.Version)
	switch {
	case v.Commit == "":
		b.WriteString("commit:    unknown (built without version control information)\n")
	case v.Modified:
		fmt.Fprintf(&b, "commit:    %s (with uncommitted changes)\n", v.Commit)
	default:
		fmt.Fprintf(&b, "commit:    %s\n", v.Commit)
	}
	if v.CommitTime != "" {
		fmt.Fprintf(&b, "committed: %s\n", v.CommitTime)
	}
	fmt.Fprintf(&b, "go:        %s %s\n", v.Go, v.Platform)
	return b.String()
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit and the Go version of this binary",
		Long: `Print the version of this binary, the commit it was built from (marked when
the working tree had uncommitted changes) and the Go toolchain, from the build
information Go embeds. The same as 'secretgate --version'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			v := readVersion()
			if output == outJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), v.text())
			return err
		},
	}
	addOutputFlag(cmd, &output, false)
	return cmd
}
