package policy

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
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
	// Linux: trusted pods run in the node's shim (runc's); untrusted pods in the sandbox
	// runtime's own shim the policy names (e.g. gVisor's containerd-shim-runsc-v1).
	Linux Platform = "linux"
)

// Role is a container's place in a CRI pod: cri.RoleStandalone, cri.RoleSandbox or
// cri.RoleContainer (internal/cri reads it from the spec's annotations).
type Role = cri.Role

// Input is everything the shim saw for one call. Pointers may be nil where the call has
// no such part. The policy never reads files: the shim passes the decoded bundle.
type Input struct {
	Call      Call
	Platform  Platform // the node's OS; "" = the policy's platform (a different one is denied)
	Namespace string   // containerd namespace
	ID        string   // container (task) id
	ExecID    string   // exec only
	// Role is required for start, join and create (and must agree with the spec's CRI
	// annotations); for exec and update it may be empty (then the pins alone are checked).
	Role      Role
	SandboxID string // a sandbox: its own id; a workload container: the pod's

	// Spec is the bundle's config.json (start, join, create; required there). The policy
	// does not modify it: a changed spec is returned in Decision.Spec. Exec and update
	// ignore it (their tenant comes from the pins).
	Spec *specs.Spec
	// Options are the runtime options as received (start: stdin; create:
	// CreateTaskRequest.Options). nil when none.
	Options *anypb.Any
	// Process is the Exec request's process (exec only).
	Process *specs.Process
	// Rootfs are CreateTaskRequest.Rootfs (create only): the mounts of the container's root
	// file system, as the snapshotter made them.
	Rootfs []hooks.Mount
	// Stdio is where the task's (create) or the exec's (exec) standard streams go.
	Stdio hooks.Stdio
	// Checkpoint and ParentCheckpoint are CreateTaskRequest's (create only): a restore from
	// host directories.
	Checkpoint, ParentCheckpoint string
	// Resources is UpdateTaskRequest.Resources (update only), as containerd encodes it
	// (typeurl of specs.WindowsResources or specs.LinuxResources).
	Resources *anypb.Any
	// UpdateAnnotations are UpdateTaskRequest.Annotations (update only).
	UpdateAnnotations map[string]string

	// Pod holds what was pinned when the pod (or standalone container) was started; nil at
	// start (non-nil there is invalid input). For join/create/exec/update of any container
	// it is the owning wrapper's pins; nil there is denied (fail closed).
	Pod *Pins
}

// Pins are fixed at start for the whole pod; every later call must match them.
type Pins struct {
	Tenant    string `json:"tenant"`
	Trusted   bool   `json:"trusted"`
	Isolation string `json:"isolation"` // IsolationHyperV, IsolationProcess, IsolationRunc, a runc BinaryName, or the sandbox shim's path
	Namespace string `json:"namespace"` // containerd namespace
	// SandboxID is the id of the container that started the wrapper: the pod's sandbox
	// or the standalone container itself. A container that joins must name it.
	SandboxID string `json:"sandboxID,omitempty"`
	// Kubernetes identity, from the sandbox's CRI annotations (empty for non-CRI clients).
	KubeNamespace string `json:"kubeNamespace,omitempty"`
	KubePod       string `json:"kubePod,omitempty"`
	KubePodUID    string `json:"kubePodUID,omitempty"`
	// User is the user the policy forces on the pod's processes (Windows: a user name;
	// Linux: "uid:gid"); empty when none is forced (a trusted tenant, or audit mode).
	User string `json:"user,omitempty"`
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
	// Audit is true when the finding is only recorded, not enforced: the decision's Mode is
	// Audit, or the rule runs in audit mode (File.Rules). Such a finding never denies.
	Audit bool `json:"audit,omitempty"`
}

// Mutation is one change a rule makes.
type Mutation struct {
	Rule  string `json:"rule"`
	Field string `json:"field"` // e.g. "options.SandboxIsolation", "process.user.username"
	// Old and New are the values before and after. Values that could be secrets (annotation
	// values other than numbers and booleans) are never shown: they read "(redacted)".
	// "(none)" stands for an absent value.
	Old string `json:"old"`
	New string `json:"new"`
	// Reason says why, in the same style as Finding.Reason.
	Reason string `json:"reason,omitempty"`
	// Audit is true when the change is only recorded, not applied (see Finding.Audit).
	Audit bool `json:"audit,omitempty"`
}

// Decision is the policy's answer for one Input.
type Decision struct {
	Call    Call
	Tenant  string // the tenant the workload belongs to
	Trusted bool
	Mode    Mode
	// Allowed is false when the call must be denied: at least one enforced Denial
	// (Audit false). In Mode Audit it is true and Denials/Mutations (all Audit) say what
	// enforce would do, except for rules internal.error and input.invalid, which always
	// deny. Error() renders the denial.
	Allowed   bool
	Denials   []Finding
	Mutations []Mutation
	// Results to apply when Mode is Enforce and Allowed (never for a trusted tenant).
	// nil = unchanged. They may share unchanged parts with the Input: treat both as
	// read-only.
	Spec    *specs.Spec // to write to config.json
	Options *anypb.Any  // start: what the delegate gets on stdin; create: CreateTaskRequest.Options
	Process *specs.Process
	// Delegate is the shim the pod must run in (start only; nil = the node's delegate):
	// on Linux, an untrusted pod's sandbox runtime shim.
	Delegate *hooks.Delegate
	// Pins to record (start only, when Allowed).
	Pins *Pins
	// Kubernetes identity for the audit record (from CRI annotations, when present).
	KubeNamespace, KubePod, KubeContainer string
}

// Isolation values recorded in Pins.Isolation.
const (
	// IsolationHyperV: runhcs Options.SandboxIsolation=HYPERVISOR (or no options and a
	// spec with windows.hyperv set).
	IsolationHyperV = "hyperv"
	// IsolationProcess: runhcs process isolation (Windows Server containers).
	IsolationProcess = "process"
	// IsolationRunc: the runc shim's default runtime (runc Options.BinaryName empty). On
	// Linux any other isolation value is a path: the sandbox runtime's shim (untrusted
	// pods), or a BinaryName a trusted pod's options name.
	IsolationRunc = "runc"
)

// Rule IDs that are not rules of the registry: they are never configurable and always
// deny, in audit mode too (threats T13: never "allow because the check crashed").
const (
	// RuleInternalError: Evaluate recovered from a panic.
	RuleInternalError = "internal.error"
	// RuleInvalidInput: the Input is malformed (missing spec/process, undecodable or
	// foreign runtime options, a platform mismatch, pins at start, ...).
	RuleInvalidInput = "input.invalid"
)

// ErrDenied is matched (errors.Is) by every error Decision.Error returns.
var ErrDenied = errors.New("denied by policy")

// DeniedError is a denial: every enforced finding of one decision.
type DeniedError struct {
	Tenant  string
	Denials []Finding // enforced findings only (Audit false)
}

// Error lists every denial and names the tenant once, e.g.
// `denied by rule untrusted.hostpath: mount C:\Users\x\.ssh is not allowed (tenant "default")`;
// several denials are joined by "; ". The program's name is added where the error leaves
// the wrapper (`isoguard: ` in a ttrpc status).
func (e *DeniedError) Error() string {
	var b strings.Builder
	for i, f := range e.Denials {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("denied by rule ")
		b.WriteString(f.Rule)
		b.WriteString(": ")
		b.WriteString(f.Reason)
	}
	if len(e.Denials) == 0 {
		b.WriteString("denied by policy")
	}
	if e.Tenant != "" {
		fmt.Fprintf(&b, " (tenant %q)", e.Tenant)
	}
	return b.String()
}

// Is reports whether target is ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Error returns nil when the call may proceed (Allowed), else a *DeniedError listing every
// enforced denial. The shim wraps it with errdefs.ErrPermissionDenied. Reasons never hold
// secret values (env values, annotation values), so the message is safe to return to the
// caller and to log.
func (d *Decision) Error() error {
	if d.Allowed {
		return nil
	}
	e := &DeniedError{Tenant: d.Tenant}
	for _, f := range d.Denials {
		if !f.Audit {
			e.Denials = append(e.Denials, f)
		}
	}
	return e
}

// Changed reports whether the decision carries results to apply (Spec, Options, Process or
// Delegate).
func (d *Decision) Changed() bool {
	return d.Spec != nil || d.Options != nil || d.Process != nil || d.Delegate != nil
}
