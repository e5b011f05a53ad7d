package policy

import (
	"fmt"
	"strings"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/reflect/protoreflect"
)

/*
Untrusted workloads run isolated by a hypervisor (Windows: Hyper-V through runhcs) or a
sandbox runtime (Linux: the runc shim running the policy's sandboxRuntime, e.g. gVisor).

Windows. runhcs re-reads config.json at Create and decides isolation from the Create
options (cmd/containerd-shim-runhcs-v1/service_internal.go createInternal): with
SandboxIsolation=HYPERVISOR it sets spec.windows.hyperv itself; with non-empty options that
say PROCESS (CRI's default) and a Hyper-V spec it fails "invalid runtime sandbox
isolation". So the options are rewritten to HYPERVISOR for the sandbox and every container
(start: the options on the delegate's stdin; create: CreateTaskRequest.Options; no options
at all: new Options{SandboxIsolation: HYPERVISOR}), and config.json is kept consistent by
setting spec.windows.hyperv = {}: if the options were ever lost on the way, runhcs would
then still refuse process isolation rather than fall back to it.

**Restricted Fields:**

options (containerd.runhcs.v1.Options).SandboxIsolation
options.SandboxPlatform
options unknown fields
spec.windows.hyperv, spec.windows.hyperv.utilityVMPath
spec.linux (Windows)
options (containerd.runc.v1.Options).BinaryName (Linux)

**Allowed Values:**

SandboxIsolation: HYPERVISOR (rewritten when anything else)
SandboxPlatform: empty or windows/* (LCOW is not part of the Windows profile: denied)
unknown fields: none (fields this version of hcsshim does not know are dropped)
spec.windows.hyperv: present (set when absent); utilityVMPath: empty (a host path: denied)
spec.linux: absent (Windows profile)
BinaryName: exactly untrusted.sandboxRuntime (rewritten); no sandboxRuntime configured: denied

Options of another type never reach this rule: input.invalid denies them for every tenant
(runhcs would panic on its unchecked type assertion; a runc shim would misread them).
*/

var ruleIsolation = &rule{
	id:      "untrusted.isolation",
	threats: []string{"T3", "T2"},
	calls:   []Call{CallStart, CallCreate},
	action:  "mutation or denial",
	summary: "Windows: runhcs Options.SandboxIsolation=HYPERVISOR and spec.windows.hyperv for the sandbox and every container; Linux: runc Options.BinaryName = sandboxRuntime",
	check:   checkIsolation,
}

func checkIsolation(ev *evaluation) {
	if ev.platform == Linux {
		checkIsolationLinux(ev)
		return
	}
	in := ev.in
	if in.Spec.Linux != nil {
		ev.deny("spec.linux", "Linux containers on Windows (LCOW) are not supported")
		return
	}
	if sp := ev.hcsIn.GetSandboxPlatform(); sp != "" {
		if os, _, _ := strings.Cut(strings.ToLower(sp), "/"); os != "windows" {
			ev.deny("options.SandboxPlatform", "sandbox platform %q is not windows", sp)
			return
		}
	}
	if w := in.Spec.Windows; w != nil && w.HyperV != nil && w.HyperV.UtilityVMPath != "" {
		ev.deny("spec.windows.hyperv.utilityVMPath", "utility VM path %s (a host path) is not allowed", w.HyperV.UtilityVMPath)
	}

	const hv = "HYPERVISOR"
	switch {
	case ev.hcsIn == nil:
		ev.hcsW().SandboxIsolation = runhcsopts.Options_HYPERVISOR
		ev.mutate("options.SandboxIsolation", "(none)", hv, fmt.Sprintf("no runtime options: created with Hyper-V isolation for tenant %q", ev.id.tenant))
	case ev.hcsIn.GetSandboxIsolation() != runhcsopts.Options_HYPERVISOR:
		ev.hcsW().SandboxIsolation = runhcsopts.Options_HYPERVISOR
		ev.mutate("options.SandboxIsolation", ev.hcsIn.GetSandboxIsolation().String(), hv, fmt.Sprintf("tenant %q runs with Hyper-V isolation", ev.id.tenant))
	}
	if n := unknownLen(ev.hcsIn); n > 0 {
		ev.hcsW().ProtoReflect().SetUnknown(nil)
		ev.mutate("options.(unknown fields)", fmt.Sprintf("%d bytes", n), "(none)", "runtime option fields unknown to this policy are dropped")
	}
	if w := in.Spec.Windows; w == nil || w.HyperV == nil {
		ev.windowsW().HyperV = &specs.WindowsHyperV{}
		ev.mutate("spec.windows.hyperv", "(none)", "{}", "config.json must agree with the Hyper-V options (runhcs re-reads it)")
	}
}

func checkIsolationLinux(ev *evaluation) {
	rt := ev.p.sandboxRuntime
	if rt == "" {
		ev.deny("options.BinaryName", "no untrusted.sandboxRuntime is configured, so tenant %q cannot be sandboxed on this node", ev.id.tenant)
		return
	}
	switch {
	case ev.runcIn == nil:
		ev.runcW().BinaryName = rt
		ev.mutate("options.BinaryName", "(none)", rt, fmt.Sprintf("no runtime options: created with the sandbox runtime for tenant %q", ev.id.tenant))
	case ev.runcIn.GetBinaryName() != rt:
		old := ev.runcIn.GetBinaryName()
		if old == "" {
			old = "(none)"
		}
		ev.runcW().BinaryName = rt
		ev.mutate("options.BinaryName", old, rt, fmt.Sprintf("tenant %q runs in the sandbox runtime", ev.id.tenant))
	}
	if n := unknownLen(ev.runcIn); n > 0 {
		ev.runcW().ProtoReflect().SetUnknown(nil)
		ev.mutate("options.(unknown fields)", fmt.Sprintf("%d bytes", n), "(none)", "runtime option fields unknown to this policy are dropped")
	}
}

// unknownLen is the size of the fields of m its generated type does not know.
func unknownLen[M interface {
	comparable
	ProtoReflect() protoreflect.Message
}](m M) int {
	var zero M
	if m == zero {
		return 0
	}
	return len(m.ProtoReflect().GetUnknown())
}
