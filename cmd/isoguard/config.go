package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// `isoguard config` prints configuration for the isoguard runtime handler: containerd's
// runtime handler (TOML) and the Kubernetes RuntimeClass (YAML). It reads nothing and
// changes nothing on the node; docs/containerd-config.md explains every key it prints.

// Defaults of `isoguard config`.
const (
	// DefaultHandler is the CRI runtime handler name, which the RuntimeClass names too.
	DefaultHandler = "isoguard"
	// DefaultShimPath is where deploy/windows/install.ps1 installs the shim.
	DefaultShimPath = `C:\Program Files\isoguard\containerd-shim-isoguard-v1.exe`
	// DefaultSandboxPlatform is runhcs Options.SandboxPlatform: Windows containers on
	// amd64 (runhcs then refuses a Linux (LCOW) spec on this handler).
	DefaultSandboxPlatform = "windows/amd64"
	// DefaultOverheadCPU and DefaultOverheadMemory are the RuntimeClass's
	// overhead.podFixed: what a pod's utility VM costs beyond its containers' requests
	// (docs/install-windows.md, "RuntimeClass", says how they were chosen).
	DefaultOverheadCPU    = "500m"
	DefaultOverheadMemory = "512Mi"
	// DefaultLinuxOverheadCPU and DefaultLinuxOverheadMemory are what an untrusted pod's
	// gVisor sandbox costs (~190 MB RSS for a one-container pod, docs/gvisor-notes.md).
	DefaultLinuxOverheadCPU    = "250m"
	DefaultLinuxOverheadMemory = "256Mi"
)

const configUsage = `Usage:
  isoguard config containerd --version 1.7|2 [--handler NAME] [--shim-path PATH] [--default]
                             [--sandbox-image IMAGE] [--isolation hyperv|process]
                             [--sandbox-platform OS/ARCH] [--vm-memory-mb MB] [--vm-processors N]
                             [--replace-builtin]
  isoguard config runtimeclass [--handler NAME] [--name NAME]
                             [--overhead-cpu QUANTITY] [--overhead-memory QUANTITY] [--no-overhead]

Prints configuration for the isoguard runtime handler on stdout; reads and changes nothing.
  containerd    the CRI runtime handler as TOML for containerd 1.7 (config version 2) or
                containerd 2.x (config version 3)
  runtimeclass  the Kubernetes RuntimeClass (node.k8s.io/v1) for that handler

Run 'isoguard config SUBCOMMAND --help' for the flags; docs/containerd-config.md explains
every key. Exit 0 ok, 2 usage error.
`

func runConfig(args []string, stdout, stderr io.Writer) int {
	return group("isoguard config", configUsage, map[string]func([]string, io.Writer, io.Writer) int{
		"containerd":   runConfigContainerd,
		"runtimeclass": runConfigRuntimeClass,
	}, args, stdout, stderr)
}

// dnsLabel is an RFC 1123 label, what Kubernetes requires of a RuntimeClass handler
// (and of a RuntimeClass name, a DNS subdomain, restricted here to one label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validateHandler checks a runtime handler name: an RFC 1123 label of at most 63
// characters, as the RuntimeClass API requires (node/v1 RuntimeClass.Handler), which is
// also a bare key in TOML.
func validateHandler(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 63 || !dnsLabel.MatchString(s) {
		return fmt.Errorf("%q is not a lowercase RFC 1123 label (a-z, 0-9 and '-', at most 63 characters, starting and ending with a letter or digit), as a RuntimeClass handler must be", s)
	}
	return nil
}

// checkPrintable refuses control characters, which no path, image reference or name
// needs and which would only make the output confusing.
func checkPrintable(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

// tomlString quotes s for TOML: a literal string ('...', no escapes: Windows paths read
// as they are) when s allows one, else a basic string with escapes.
func tomlString(s string) string {
	if !strings.ContainsAny(s, "'\n\r") && checkPrintable(s) == nil {
		return "'" + s + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// yamlString quotes s as a YAML double-quoted scalar, so that no value (e.g. a handler
// named "123", a quantity "1e3" or "y") is read as a number or a boolean.
func yamlString(s string) string { return strconv.Quote(s) }
