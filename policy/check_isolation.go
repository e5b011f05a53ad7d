package policy

import (
	"fmt"
	"strings"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	rtopts "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
)

/*
Untrusted workloads run isolated by a hypervisor (Windows: Hyper-V through runhcs) or a
sandbox runtime (Linux: the sandbox runtime's own containerd shim, e.g. gVisor's
containerd-shim-runsc-v1 or Kata's containerd-shim-kata-v2).

Windows. runhcs re-reads config.json at Create and decides isolation from the Create
options (cmd/containerd-shim-runhcs-v1/service_internal.go createInternal): with
SandboxIsolation=HYPERVISOR it sets spec.windows.hyperv itself; with non-empty options that
say PROCESS (CRI's default) and a Hyper-V spec it fails "invalid runtime sandbox
isolation". So the options are rewritten to HYPERVISOR for the sandbox and every container
(start: the options on the delegate's stdin; create: CreateTaskRequest.Options; no options
at all: new Options{SandboxIsolation: HYPERVISOR}), and config.json is kept consistent by
setting spec.windows.hyperv = {}: if the options were ever lost on the way, runhcs would
then still refuse process isolation rather than fall back to it.

Linux. An untrusted pod's start names untrusted.sandbox.shim as the pod's delegate: the
wrapper starts the sandbox runtime's shim instead of the node's, and every container of the
pod reaches that shim only. The runtime options (CRI's runc options, for isoguard's handler
is a runc.v2 one) are replaced at start and at every Create by what such a shim reads, CRI's
runtimeoptions.v1.Options {TypeUrl, ConfigPath} (gVisor: pkg/shim/v1/runsc/container.go
NewContainer; Kata: pkg/containerd-shim-v2/create.go loadRuntimeConfig). runsc behind the
runc shim (Options.BinaryName) is not offered: CRI pods hang that way (the runc shim waits
on runsc's start output, which runsc hands to the sandbox; docs/policy.md).

**Restricted Fields:**

options (containerd.runhcs.v1.Options).SandboxIsolation
options.SandboxPlatform
options unknown fields
spec.windows.hyperv, spec.windows.hyperv.utilityVMPath
spec.linux (Windows)
options (Linux: containerd.runc.v1.Options, replaced), the delegate shim (Linux, start)

**Allowed Values:**

SandboxIsolation: HYPERVISOR (rewritten when anything else)
SandboxPlatform: empty or windows/* (LCOW is not part of the Windows profile: denied)
unknown fields: none (fields this version of hcsshim does not know are dropped)
spec.windows.hyperv: present (set when absent); utilityVMPath: empty (a host path: denied)
spec.linux: absent (Windows profile)
Linux options: runtimeoptions.v1.Options{TypeUrl: untrusted.sandbox.typeUrl, ConfigPath:
untrusted.sandbox.configPath} (replaced); delegate: untrusted.sandbox.shim; no sandbox
configured: denied; a standalone container with untrusted.sandbox.podsOnly: denied

Options of another type never reach this rule: input.invalid denies them for every tenant
(runhcs would panic on its unchecked type assertion; a runc shim would misread them).
*/

var ruleIsolation = &rule{
	id:      "untrusted.isolation",
	threats: []string{"T3", "T2"},
	calls:   []Call{CallStart, CallCreate},
	action:  "mutation or denial",
	summary: "Windows: runhcs Options.SandboxIsolation=HYPERVISOR and spec.windows.hyperv for the sandbox and every container; Linux: the pod runs in untrusted.sandbox.shim, with its runtime options",
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
	sb := ev.p.sandbox
	if sb.Shim == "" {
		ev.deny("untrusted.sandbox", "no untrusted.sandbox.shim is configured, so untrusted pods cannot be sandboxed on this node")
		return
	}
	if sb.PodsOnly && ev.in.Role == cri.RoleStandalone {
		ev.deny("untrusted.sandbox", "the sandbox runtime's shim %s runs CRI pods only (untrusted.sandbox.podsOnly); a standalone container cannot be sandboxed", sb.Shim)
		return
	}
	want := &rtopts.Options{TypeUrl: sb.TypeURL, ConfigPath: sb.ConfigPath}
	ev.sandbox = want
	old := "(none)"
	if in := ev.in.Options; in != nil {
		old = messageName(in.GetTypeUrl())
	}
	ev.mutate("options", old, describeSandboxOptions(want), fmt.Sprintf("tenant %q runs in the sandbox runtime's shim %s, which reads these options", ev.id.tenant, sb.Shim))
	if ev.in.Call == CallStart {
		ev.delegate = &hooks.Delegate{Path: sb.Shim, StdinFormat: sb.StdinFormat}
		ev.mutate("delegate", "(the node's shim)", sb.Shim, fmt.Sprintf("tenant %q runs in the sandbox runtime's shim", ev.id.tenant))
	}
}

// describeSandboxOptions renders the sandbox shim's options for a mutation record.
func describeSandboxOptions(o *rtopts.Options) string {
	return fmt.Sprintf("%s{typeUrl: %q, configPath: %q}", TypeURLRuntimeOptions, o.GetTypeUrl(), o.GetConfigPath())
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
