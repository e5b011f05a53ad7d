package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// containerd's CRI configuration for the isoguard runtime handler.
//
// Key names are those of containerd's own config structs (checked against the sources and,
// in integration/config_test.go, by the real containerd binaries' `config dump`):
//   - containerd 1.7: pkg/cri/config/config.go, plugin "io.containerd.grpc.v1.cri", config
//     file version 2: PluginConfig.SandboxImage (sandbox_image), ContainerdConfig
//     (default_runtime_name, runtimes), Runtime (runtime_type, runtime_path,
//     pod_annotations, container_annotations, options).
//   - containerd 2.x: internal/cri/config/config.go, plugins "io.containerd.cri.v1.runtime"
//     (containerd.default_runtime_name, containerd.runtimes, Runtime.sandboxer) and
//     "io.containerd.cri.v1.images" (pinned_images.sandbox), config file version 3 (2.4
//     reads it too, migrating it to its version 4 with a warning).
//   - options: field names of hcsshim's runhcs Options
//     (cmd/containerd-shim-runhcs-v1/options), which CRI builds from this table only
//     because runtime_type is "io.containerd.runhcs.v1" (getRuntimeOptionsType); any other
//     runtime type would send runtimeoptions.v1.Options, which runhcs cannot read.

// RuntimeTypeRunhcs is the runtime type of the Windows handler. containerd runs
// runtime_path (the isoguard shim) instead of containerd-shim-runhcs-v1.exe, but keeps the
// type's options.
const RuntimeTypeRunhcs = "io.containerd.runhcs.v1"

// RuntimeTypeRunc is the runtime type of the Linux handler: CRI then sends runc's options,
// which the node's delegate (containerd's runc shim) reads for trusted pods; isoguard
// replaces them for untrusted pods, which run in the sandbox runtime's shim.
const RuntimeTypeRunc = "io.containerd.runc.v2"

// BuiltinLinuxHandlers are the runtime handlers containerd's CRI plugin defines on Linux by
// default (1.7 pkg/cri/config/config_unix.go, 2.x internal/cri/config/config_unix.go).
var BuiltinLinuxHandlers = []string{"runc"}

// DefaultLinuxShimPath is where the shim is installed on a Linux node.
const DefaultLinuxShimPath = "/usr/local/bin/containerd-shim-isoguard-v1"

// BuiltinWindowsHandlers are the runtime handlers containerd's CRI plugin defines on
// Windows by default (1.7 pkg/cri/config/config_windows.go, 2.x
// internal/cri/config/config_windows.go). containerd 2.x keeps them whatever config.toml
// says (it decodes the file over its defaults); --replace-builtin points them at isoguard.
var BuiltinWindowsHandlers = []string{"runhcs-wcow-process", "runhcs-wcow-hypervisor"}

// Isolation values of --isolation.
const (
	IsolationHyperV  = "hyperv"
	IsolationProcess = "process"
)

// containerdConfig is what `isoguard config containerd` prints.
type containerdConfig struct {
	// OS is the node's: "windows" (runhcs options) or "linux" (runc options).
	OS string
	// Version is "1.7" or "2": containerd's generation, not the config file's version.
	Version         string
	Handler         string
	ShimPath        string
	Default         bool
	SandboxImage    string
	Isolation       string
	SandboxPlatform string
	ReplaceBuiltin  bool
	// VMMemoryMB and VMProcessors size each pod's utility VM (runhcs VmMemorySizeInMb,
	// VmProcessorCount); 0 leaves runhcs's defaults, 1024 MB and 2 processors.
	VMMemoryMB   int
	VMProcessors int
	// SystemdCgroup (Linux) is runc's SystemdCgroup option for trusted pods.
	SystemdCgroup bool
	// set names the flags given on the command line.
	set map[string]bool
}

// builtinHandlers are containerd's built-in handlers of the node's OS.
func (c containerdConfig) builtinHandlers() []string {
	if c.OS == "linux" {
		return BuiltinLinuxHandlers
	}
	return BuiltinWindowsHandlers
}

// containerdVersion accepts 1.7, 1.7.N, 2, 2.N, 2.N.M and 2.x.
var containerdVersion = regexp.MustCompile(`^(1\.7(\.[0-9]+)?|2(\.([0-9]+|x)(\.[0-9]+)?)?)$`)

// normalizeContainerdVersion maps --version to "1.7" or "2".
func normalizeContainerdVersion(v string) (string, error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if v == "" {
		return "", errors.New("required: 1.7 (containerd 1.7, config version 2) or 2 (containerd 2.x, config version 3)")
	}
	if !containerdVersion.MatchString(v) {
		hint := ""
		if strings.HasPrefix(v, "1.") {
			hint = "; containerd before 1.7 is not supported"
		}
		return "", fmt.Errorf("%q is not a supported containerd version: use 1.7 (config version 2) or 2 (containerd 2.x, config version 3)%s", v, hint)
	}
	if strings.HasPrefix(v, "1.") {
		return "1.7", nil
	}
	return "2", nil
}

// validateShimPath: containerd requires runtime_path to be absolute ("Path must be abs",
// Runtime.Path): a drive-letter path (C:\...) on Windows, a /-rooted one on Linux.
var windowsAbsPath = regexp.MustCompile(`^[A-Za-z]:[\\/]`)

func validateShimPath(os, p string) error {
	if err := checkPrintable(p); err != nil {
		return err
	}
	if os == "linux" {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			return fmt.Errorf("%q is not a clean absolute path (e.g. %s); containerd requires runtime_path to be absolute", p, DefaultLinuxShimPath)
		}
		return nil
	}
	if !windowsAbsPath.MatchString(p) {
		return fmt.Errorf("%q is not an absolute Windows path (e.g. %s); containerd requires runtime_path to be absolute", p, DefaultShimPath)
	}
	return nil
}

var sandboxPlatform = regexp.MustCompile(`^windows/(amd64|arm64)$`)

func (c *containerdConfig) validate() (flagName string, err error) {
	switch c.OS {
	case "windows", "linux":
	default:
		return "os", fmt.Errorf("%q: want windows or linux (the node's OS)", c.OS)
	}
	v, err := normalizeContainerdVersion(c.Version)
	if err != nil {
		return "version", err
	}
	c.Version = v
	if err := validateHandler(c.Handler); err != nil {
		return "handler", err
	}
	if c.OS == "linux" && !c.set["shim-path"] {
		c.ShimPath = DefaultLinuxShimPath
	}
	if err := validateShimPath(c.OS, c.ShimPath); err != nil {
		return "shim-path", err
	}
	if c.SandboxImage != "" {
		if err := checkPrintable(c.SandboxImage); err != nil {
			return "sandbox-image", err
		}
		if strings.ContainsAny(c.SandboxImage, " \t") {
			return "sandbox-image", fmt.Errorf("%q is not an image reference", c.SandboxImage)
		}
	}
	if c.OS == "linux" {
		for _, f := range []string{"isolation", "sandbox-platform", "vm-memory-mb", "vm-processors"} {
			if c.set[f] {
				return f, errors.New("is a Windows setting (runhcs options); on Linux, untrusted pods run in the sandbox runtime the node policy names (untrusted.sandbox)")
			}
		}
		return c.validateBuiltin()
	}
	if c.set["systemd-cgroup"] {
		return "systemd-cgroup", errors.New("is a Linux setting (runc options)")
	}
	switch c.Isolation {
	case IsolationHyperV, IsolationProcess:
	default:
		return "isolation", fmt.Errorf("%q: want %s (every pod of this handler gets a utility VM, the default) or %s (trusted pods keep process isolation; isoguard still forces Hyper-V for untrusted ones)", c.Isolation, IsolationHyperV, IsolationProcess)
	}
	if !sandboxPlatform.MatchString(c.SandboxPlatform) {
		return "sandbox-platform", fmt.Errorf("%q: want windows/amd64 or windows/arm64 (isoguard enforces Windows containers only)", c.SandboxPlatform)
	}
	if c.VMMemoryMB < 0 || c.VMMemoryMB > 1<<20 || (c.VMMemoryMB > 0 && c.VMMemoryMB < 256) {
		return "vm-memory-mb", fmt.Errorf("%d: want 0 (runhcs's default, 1024) or 256 to 1048576", c.VMMemoryMB)
	}
	if c.VMProcessors < 0 || c.VMProcessors > 1024 {
		return "vm-processors", fmt.Errorf("%d: want 0 (runhcs's default, 2) or 1 to 1024", c.VMProcessors)
	}
	return c.validateBuiltin()
}

func (c *containerdConfig) validateBuiltin() (string, error) {
	if c.ReplaceBuiltin {
		for _, b := range c.builtinHandlers() {
			if c.Handler == b {
				return "handler", fmt.Errorf("%q is a built-in handler name; with --replace-builtin the handler needs a name of its own", c.Handler)
			}
		}
	}
	return "", nil
}

func runConfigContainerd(args []string, stdout, stderr io.Writer) int {
	fs := newCommand("isoguard config containerd", "--version 1.7|2 [--os windows|linux] [flags]\n\nPrints the CRI runtime handler for isoguard as TOML, to merge into containerd's config.toml\n(containerd 1.7) or to drop into its conf.d (containerd 2.x); docs/containerd-config.md.", stderr)
	c := containerdConfig{}
	fs.StringVar(&c.OS, "os", "windows", "the node's OS: windows (runhcs options; Hyper-V for untrusted pods) or linux (runc options; untrusted pods in the policy's sandbox runtime)")
	fs.StringVar(&c.Version, "version", "", "containerd version: 1.7 (config version 2) or 2 (containerd 2.x, config version 3) (required)")
	fs.StringVar(&c.Handler, "handler", DefaultHandler, "runtime handler name (the RuntimeClass's handler)")
	fs.StringVar(&c.ShimPath, "shim-path", DefaultShimPath, "absolute path of the isoguard shim on the node (runtime_path); Linux default: "+DefaultLinuxShimPath)
	fs.BoolVar(&c.Default, "default", false, "also make the handler containerd's default runtime (default_runtime_name): pods without runtimeClassName run through isoguard")
	fs.StringVar(&c.SandboxImage, "sandbox-image", "", "pause image for pod sandboxes (1.7: sandbox_image; 2.x: pinned_images.sandbox); default: containerd's")
	fs.StringVar(&c.Isolation, "isolation", IsolationHyperV, "runhcs SandboxIsolation of the handler: hyperv (every pod, trusted or not, gets a utility VM) or process (trusted pods keep process isolation; untrusted ones are still rewritten to Hyper-V by rule untrusted.isolation)")
	fs.StringVar(&c.SandboxPlatform, "sandbox-platform", DefaultSandboxPlatform, "runhcs SandboxPlatform: windows/amd64 or windows/arm64")
	fs.IntVar(&c.VMMemoryMB, "vm-memory-mb", 0, "memory of each pod's utility VM in MB (runhcs VmMemorySizeInMb); 0: runhcs's default, 1024. All containers of a pod share it")
	fs.IntVar(&c.VMProcessors, "vm-processors", 0, "processors of each pod's utility VM (runhcs VmProcessorCount); 0: runhcs's default, 2")
	fs.BoolVar(&c.ReplaceBuiltin, "replace-builtin", false, "also point containerd's built-in handlers (Windows: "+strings.Join(BuiltinWindowsHandlers, ", ")+"; Linux: "+strings.Join(BuiltinLinuxHandlers, ", ")+") at isoguard, with the same settings; containerd 2.x keeps them otherwise")
	fs.BoolVar(&c.SystemdCgroup, "systemd-cgroup", false, "Linux: runc's SystemdCgroup option, for nodes whose kubelet uses the systemd cgroup driver")
	if code, done := fs.parse(args, stdout); done {
		return code
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if flagName, err := c.validate(); err != nil {
		return usageError(stderr, "isoguard config containerd", flagName, err)
	}
	fmt.Fprint(stdout, c.TOML())
	return exitOK
}

// commandLine is the flags that reproduce c, for the header comment.
func (c containerdConfig) commandLine() string {
	parts := []string{"isoguard config containerd", "--version " + c.Version, "--handler " + c.Handler}
	if c.OS == "linux" {
		parts = append(parts, "--os linux")
	}
	if c.ShimPath != DefaultShimPath && c.ShimPath != DefaultLinuxShimPath {
		parts = append(parts, "--shim-path "+shellQuote(c.ShimPath))
	}
	if c.Default {
		parts = append(parts, "--default")
	}
	if c.SandboxImage != "" {
		parts = append(parts, "--sandbox-image "+c.SandboxImage)
	}
	if c.OS == "windows" && c.Isolation != IsolationHyperV {
		parts = append(parts, "--isolation "+c.Isolation)
	}
	if c.OS == "windows" && c.SandboxPlatform != DefaultSandboxPlatform {
		parts = append(parts, "--sandbox-platform "+c.SandboxPlatform)
	}
	if c.SystemdCgroup {
		parts = append(parts, "--systemd-cgroup")
	}
	if c.VMMemoryMB != 0 {
		parts = append(parts, fmt.Sprintf("--vm-memory-mb %d", c.VMMemoryMB))
	}
	if c.VMProcessors != 0 {
		parts = append(parts, fmt.Sprintf("--vm-processors %d", c.VMProcessors))
	}
	if c.ReplaceBuiltin {
		parts = append(parts, "--replace-builtin")
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for PowerShell (and POSIX shells) when it needs quoting.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"$`&|;<>()[]{}*?#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
