package policy

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
)

// This file is the contract between the shim and the policy: what the shim saw (Input) and
// what it must do (Decision). The shim applies a Decision; it never decides.

// Call is the shim call a decision is for.
type Call string

const (
	CallStart  Call = "start"  // a sandbox or standalone container's wrapper starts (options on stdin + config.json)
	CallJoin   Call = "join"   // a workload container's start joins an existing pod's wrapper
	CallCreate Call = "create" // task Create (config.json in the bundle + CreateTaskRequest.Options)
	CallExec   Call = "exec"   // task Exec (the process spec)
	CallUpdate Call = "update" // task Update (resources, annotations)
)

// Platform selects the rule profile.
type Platform string

const (
	// Windows: the delegate is runhcs; isolation = runhcs Options SandboxIsolation=HYPERVISOR.
	Windows Platform = "windows"
	// Linux: the delegate is a runc-compatible shim; isolation = runc Options.BinaryName set
	// to the sandbox runtime the policy names (e.g. gVisor's runsc).
	Linux Platform = "linux"
)

// Role is a container's place in a CRI pod.
type Role string

const (
	RoleStandalone Role = "standalone" // no CRI pod annotations (ctr, other clients)
	RoleSandbox    Role = "sandbox"    // io.kubernetes.cri.container-type=sandbox
	RoleContainer  Role = "container"  // io.kubernetes.cri.container-type=container (joins SandboxID)
)

// Input is everything the shim saw for one call. Pointers may be nil where the call has
// no such part. The policy never reads files: the shim passes the decoded bundle.
type Input struct {
	Call      Call
	Platform  Platform
	Namespace string // containerd namespace
	ID        string // container (task) id
	ExecID    string // exec only
	Role      Role
	SandboxID string // RoleSandbox: its own id; RoleContainer: the pod's

	// Spec is the bundle's config.json (start, join, create). The policy must not modify
	// it: a changed spec is returned in Decision.Spec.
	Spec *specs.Spec
	// Options are the runtime options as received (start: stdin; create:
	// CreateTaskRequest.Options). nil when none.
	Options *anypb.Any
	// Process is the Exec request's process (exec only).
	Process *specs.Process
	// Resources is UpdateTaskRequest.Resources (update only), as containerd encodes it
	// (typeurl of specs.WindowsResources or specs.LinuxResources).
	Resources *anypb.Any
	// UpdateAnnotations are UpdateTaskRequest.Annotations (update only).
	UpdateAnnotations map[string]string

	// Pod holds what was pinned when the pod (or standalone container) was started; nil at
	// start. For create/exec/update of any container it is the owning wrapper's pins.
	Pod *Pins
}

// Pins are fixed at start for the whole pod; every later call must match them.
type Pins struct {
	Tenant    string `json:"tenant"`
	Trusted   bool   `json:"trusted"`
	Isolation string `json:"isolation"` // e.g. "hyperv", "process", "runsc", "runc"
	Namespace string `json:"namespace"` // containerd namespace
	// Kubernetes identity, from the sandbox's CRI annotations (empty for non-CRI clients).
	KubeNamespace string `json:"kubeNamespace,omitempty"`
	KubePod       string `json:"kubePod,omitempty"`
	KubePodUID    string `json:"kubePodUID,omitempty"`
}

// Mode is how a decision is applied.
type Mode string

const (
	// Enforce applies mutations and denials.
	Enforce Mode = "enforce"
	// Audit applies nothing and records exactly what Enforce would have done.
	Audit Mode = "audit"
)

// Finding is one rule's objection.
type Finding struct {
	Rule   string `json:"rule"`   // stable rule ID, e.g. "untrusted.hostpath"
	Field  string `json:"field"`  // what was inspected, e.g. "mounts[3].source"
	Reason string `json:"reason"` // human-readable, names the offender; never a secret value
}

// Mutation is one change a rule makes.
type Mutation struct {
	Rule  string `json:"rule"`
	Field string `json:"field"` // e.g. "options.SandboxIsolation", "process.user.username"
	Old   string `json:"old"`
	New   string `json:"new"`
}

// Decision is the policy's answer for one Input.
type Decision struct {
	Call    Call
	Tenant  string // the tenant the workload belongs to
	Trusted bool
	Mode    Mode
	// Allowed is false when the call must be denied (Mode Enforce and at least one Denial).
	// In Mode Audit it is always true and Denials/Mutations say what enforce would do.
	Allowed   bool
	Denials   []Finding
	Mutations []Mutation
	// Results to apply when Mode is Enforce and Allowed. nil = unchanged.
	Spec    *specs.Spec // to write to config.json
	Options *anypb.Any
	Process *specs.Process
	// Pins to record (start only).
	Pins *Pins
	// Kubernetes identity for the audit record (from CRI annotations, when present).
	KubeNamespace, KubePod, KubeContainer string
}
