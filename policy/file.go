// Package policy is isoguard's node policy: the file format and the decisions. It is pure:
// bytes or values in, values out; no I/O, no logging, no ttrpc.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/isoguard/isoguard/shim/hooks"
)

// APIVersion and Kind identify the node policy file format.
const (
	APIVersion = "isoguard.dev/v1alpha1"
	Kind       = "NodePolicy"
)

// File is the node policy file: one per node. It also carries the wrapper's own settings
// (the delegate shim), so an operator has one file to manage. docs/policy.md is the
// reference; every field below is optional but apiVersion and kind.
type File struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Delegate is the shim isoguard runs and relays to: path (absolute; empty = the OS
	// default: Windows containerd-shim-runhcs-v1.exe beside containerd, then PATH; Linux
	// containerd-shim-runc-v2 on PATH) and stdinFormat ("auto", the default, "any" or
	// "bootstrap": how start's runtime options are handed to it).
	Delegate hooks.Delegate `yaml:"delegate"`

	// Platform selects the rule profile: "windows" or "linux". Empty: the OS the wrapper
	// runs on.
	Platform Platform `yaml:"platform"`
	// Mode is "enforce" (default) or "audit" (nothing is applied; decisions record what
	// enforce would have done).
	Mode Mode `yaml:"mode"`
	// CRINamespace is the containerd namespace of containerd's CRI plugin (default
	// "k8s.io"). Only there are the Kubernetes annotations (io.kubernetes.cri.*) believed:
	// elsewhere a workload's tenant is its containerd namespace (threats T2).
	CRINamespace string `yaml:"criNamespace"`
	// Tenants lists the tenants the policy names: each is a Kubernetes namespace or a
	// containerd namespace, trusted unless `trusted: false`. Everything not named is
	// untrusted and gets the untrusted profile in the file's mode.
	Tenants []Tenant `yaml:"tenants"`
	// Untrusted configures the rules applied to untrusted workloads.
	Untrusted Untrusted `yaml:"untrusted"`
	// Rules sets the mode of single rules by ID: "audit" records a rule's findings and
	// mutations without applying them (for a gradual rollout); "enforce" is the default.
	// A rule can never be switched off.
	Rules map[string]Mode `yaml:"rules"`
	// Audit configures the audit trail the shim writes (one JSON record per decision).
	Audit AuditTrail `yaml:"audit"`

	// root is the parsed document, for line numbers in semantic errors (nil for a File
	// built in code).
	root *yaml.Node
}

// AuditTrail configures the audit trail. The policy only carries the settings; the shim writes.
type AuditTrail struct {
	// Path of the audit file. Empty: /var/log/isoguard/audit.log (Linux),
	// %ProgramData%\isoguard\audit\audit.log (Windows). The environment variable
	// ISOGUARD_AUDIT_LOG in containerd's environment overrides it.
	Path string `yaml:"path"`
	// MaxSizeMB rotates the file when it would grow past this size (default 10).
	MaxSizeMB int `yaml:"maxSizeMB"`
	// MaxBackups is how many rotated files are kept (default 5).
	MaxBackups int `yaml:"maxBackups"`
}

// Tenant names one tenant: exactly one of KubernetesNamespace and ContainerdNamespace.
type Tenant struct {
	// KubernetesNamespace is a Kubernetes namespace (the CRI annotation
	// io.kubernetes.cri.sandbox-namespace of pods in the CRI containerd namespace).
	KubernetesNamespace string `yaml:"kubernetesNamespace"`
	// ContainerdNamespace is a containerd namespace, for clients other than the CRI
	// plugin (ctr, nerdctl, buildkit, ...).
	ContainerdNamespace string `yaml:"containerdNamespace"`
	// Trusted defaults to true: a trusted tenant's workloads pass unchanged (the decision
	// is still recorded). `trusted: false` names an untrusted tenant, to give it its own
	// Mode.
	Trusted *bool `yaml:"trusted"`
	// Mode overrides the file's mode for this (untrusted) tenant: e.g. enforce everywhere
	// but audit a team that is being migrated. Only valid with `trusted: false`.
	Mode Mode `yaml:"mode"`
}

// IsTrusted reports whether the tenant entry makes its tenant trusted (the default).
func (t Tenant) IsTrusted() bool { return t.Trusted == nil || *t.Trusted }

// Untrusted configures the untrusted profile.
type Untrusted struct {
	// User is the Windows user untrusted workloads run as (default "ContainerUser"). It
	// must not be administrator-equivalent.
	User string `yaml:"user"`
	// AllowedUsers are further Windows user names an untrusted workload may keep (e.g. a
	// non-admin user its image creates). Every other user is rewritten to User.
	// Administrator-equivalent names are refused here.
	AllowedUsers []string `yaml:"allowedUsers"`
	// LinuxUser is the uid/gid untrusted Linux workloads run as instead of root
	// (default 65534/65534). Neither may be 0.
	LinuxUser LinuxUser `yaml:"linuxUser"`
	// Sandbox (Linux) is where untrusted pods run: a sandbox runtime's own containerd shim
	// (gVisor's containerd-shim-runsc-v1, Kata's containerd-shim-kata-v2), which the wrapper
	// starts as the pod's delegate instead of the node's shim. Unset: untrusted Linux
	// workloads are denied.
	Sandbox Sandbox `yaml:"sandbox"`
	// SandboxRuntime was the runc shim's Options.BinaryName (e.g. runsc behind the runc
	// shim). It is refused: CRI pods hang that way (docs/policy.md); use Sandbox.
	SandboxRuntime string `yaml:"sandboxRuntime"`
	// Mounts restricts what untrusted workloads may mount from the host.
	Mounts Mounts `yaml:"mounts"`
	// Devices restricts device assignment.
	Devices Devices `yaml:"devices"`
	// Annotations restricts runtime-specific annotations.
	Annotations Annotations `yaml:"annotations"`
	// AllowWritableFileShares (Windows) keeps writable host mounts working. By default
	// (false) io.microsoft.disable-unsafe-operations=true is forced on untrusted
	// workloads, and hcsshim then refuses EVERY writable host mount of the pod ("adding
	// writable shares is denied": emptyDir volumes, the kubelet's termination log). true:
	// the other three protections it expands into are forced one by one
	// (io.microsoft.container.wcow.gmsa.disable,
	// io.microsoft.virtualmachine.wcow.virtualSMB.nodirectmap,
	// microsoft.com/disable-hostprocess-container) and writable shares stay allowed.
	AllowWritableFileShares bool `yaml:"allowWritableFileShares"`
	// Limits bounds resources. 0 (the default) = no bound for that resource.
	Limits Limits `yaml:"limits"`
	// AllowedHostPrograms are the host programs an untrusted workload may make the node
	// run (absolute paths, compared exactly): OCI hooks of any kind and binary:// programs
	// of its standard streams. Default: none.
	AllowedHostPrograms []string `yaml:"allowedHostPrograms"`
	// Stdio restricts where an untrusted workload's standard streams go.
	Stdio StdioPaths `yaml:"stdio"`
	// Rootfs restricts where an untrusted workload's root file system comes from.
	Rootfs Rootfs `yaml:"rootfs"`
	// AllowedFields are fields of the field table's "denied" rows an untrusted workload may
	// set anyway, by their config.json path (e.g. windows.credentialSpec for gMSA).
	AllowedFields []string `yaml:"allowedFields"`
}

// StdioPaths restricts standard streams.
type StdioPaths struct {
	// AllowedPaths: Linux: directories the fifos (and file:// targets) must lie below
	// (default: containerd's state directory, /run/containerd); Windows: named pipe
	// prefixes \\.\pipe\<name-prefix> (default \\.\pipe\ctr-, containerd's clients'
	// pipes). Absent: the default; an empty list allows no stream at all.
	AllowedPaths []string `yaml:"allowedPaths"`
}

// Rootfs restricts root file systems.
type Rootfs struct {
	// AllowedSources are the directories snapshot mounts, layer folders and an absolute
	// root.path must lie below. Absent: containerd's default root directory
	// (/var/lib/containerd, C:\ProgramData\containerd\root); set it when containerd's
	// root (or a snapshotter's root_path) is elsewhere.
	AllowedSources []string `yaml:"allowedSources"`
}

// Sandbox names a sandbox runtime's containerd shim and the runtime options it reads: CRI's
// runtimeoptions.v1.Options, what containerd itself sends such a shim (TypeUrl, ConfigPath).
type Sandbox struct {
	// Shim is the absolute path of the sandbox runtime's containerd shim.
	Shim string `yaml:"shim"`
	// ConfigPath is the shim's own configuration file (gVisor: runsc.toml, its runsc
	// flags; Kata: configuration.toml), given to it in the runtime options of every Create.
	ConfigPath string `yaml:"configPath"`
	// TypeURL is the options' TypeUrl field (gVisor: io.containerd.runsc.v1.options).
	TypeURL string `yaml:"typeUrl"`
	// StdinFormat is how the shim's start gets the options ("auto" by default).
	StdinFormat hooks.StdinFormat `yaml:"stdinFormat"`
	// PodsOnly denies untrusted standalone containers (ctr, nerdctl: no CRI pod) instead of
	// sending them to a shim that runs only CRI pods. gVisor's shim hangs in `runsc create`
	// for a container without CRI annotations (the sandbox inherits the pipe the shim reads
	// runsc's output from; docs/gvisor-notes.md).
	PodsOnly bool `yaml:"podsOnly"`
}

// LinuxUser is a uid/gid pair.
type LinuxUser struct {
	UID *uint32 `yaml:"uid"`
	GID *uint32 `yaml:"gid"`
}

// Mounts restricts host mounts.
type Mounts struct {
	// AllowedHostPaths are the host path prefixes untrusted workloads may mount (a path
	// matches a prefix when it equals it or lies below it, element by element). An element
	// may be a placeholder: {podUID} (the pod's uid, io.kubernetes.cri.sandbox-uid),
	// {sandboxID} (the pod's sandbox id) or {containerID} (the container's id); an entry
	// whose placeholder has no value matches nothing. Absent: the platform defaults
	// (docs/policy.md); an empty list allows no host path at all.
	AllowedHostPaths []string `yaml:"allowedHostPaths"`
	// AllowedDisks are the exact sources of disk mounts untrusted workloads may use
	// (Windows: Mount.Type physical-disk, virtual-disk, extensible-virtual-disk; Linux: a
	// filesystem mount of a block device or image). Default: none.
	AllowedDisks []string `yaml:"allowedDisks"`
}

// Devices restricts devices.
type Devices struct {
	// Allowed devices. Windows: "IDType://ID" as in the CRI device host_path (e.g.
	// "class://5B45201D-F2F2-4F3B-85BB-30FF1F953599"; "class/ID" is accepted too);
	// Linux: device paths (e.g. /dev/fuse). Default: none.
	Allowed []string `yaml:"allowed"`
}

// Annotations restricts runtime-specific annotations: those with a controlled prefix
// (io.microsoft., microsoft.com/, dev.gvisor.).
type Annotations struct {
	// Allowed are the controlled annotation keys untrusted workloads may set; an entry
	// ending in "*" is a prefix.
	Allowed []string `yaml:"allowed"`
	// OnDisallowed is "strip" (default: remove the annotation and record a mutation) or
	// "deny".
	OnDisallowed string `yaml:"onDisallowed"`
}

// Limits bounds resources of untrusted workloads; 0 = no bound.
type Limits struct {
	// UVMProcessorCount caps the utility VM's vCPUs (Windows): annotation
	// io.microsoft.virtualmachine.computetopology.processor.count and runhcs
	// Options.VmProcessorCount are clamped to it.
	UVMProcessorCount uint32 `yaml:"uvmProcessorCount"`
	// UVMMemoryMB caps the utility VM's memory (Windows): annotation
	// io.microsoft.virtualmachine.computetopology.memory.sizeinmb and runhcs
	// Options.VmMemorySizeInMb are clamped to it; an Update of the pod's sandbox task
	// (which resizes the VM) may not exceed it.
	UVMMemoryMB uint64 `yaml:"uvmMemoryMB"`
	// MemoryMB caps the memory limit an Update may set (Windows Memory.Limit, Linux
	// Memory.Limit; on Linux an unlimited value is refused).
	MemoryMB uint64 `yaml:"memoryMB"`
	// CPUCount caps the CPUs an Update may set (Windows CPU.Count; Linux CPU.Quota /
	// CPU.Period).
	CPUCount uint64 `yaml:"cpuCount"`
	// CPUMaximum caps Windows CPU.Maximum in an Update (1-10000, 10000 = 100%).
	CPUMaximum uint64 `yaml:"cpuMaximum"`
	// CPUShares caps CPU.Shares in an Update (Windows 0-10000; Linux cgroup shares).
	CPUShares uint64 `yaml:"cpuShares"`
	// Pids caps Linux Pids.Limit in an Update (an unlimited value is refused).
	Pids int64 `yaml:"pids"`
}

// ErrInvalid is wrapped by every error about the file's content.
var ErrInvalid = errors.New("invalid node policy")

// Parse decodes a node policy file strictly: unknown keys, wrong types, duplicate keys, a
// second document and a wrong apiVersion/kind are errors that name the line or field, and
// so is every semantic error that can be found without knowing the node's OS (Compile
// checks the rest). All semantic errors are reported together, one per line.
func Parse(data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrInvalid)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// The same bytes as a node tree name the field of each "line N: ..." error.
			var root yaml.Node
			if yaml.Unmarshal(data, &root) == nil {
				return nil, typeErrors(&root, te)
			}
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalid)
	}
	// The same bytes once more as a node tree: semantic errors name their line.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	f.root = &root
	if err := f.validate(f.Platform); err != nil {
		return nil, err
	}
	return &f, nil
}
