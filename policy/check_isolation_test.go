package policy

import (
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
)

// Golden fixture cases of rule untrusted.isolation (testdata/untrusted.isolation/).
func isolationCases(add fixtureAdder) {
	const iso = "untrusted.isolation"
	add(iso, true, "hyperv-already", win, "options already HYPERVISOR and config.json already Hyper-V: nothing to change", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = hyperVOptions(t)
		in.Spec.Windows.HyperV = &specs.WindowsHyperV{}
		return in
	})
	add(iso, false, "process-options", win, "CRI's process-isolation options on a workload container: rewritten to HYPERVISOR, spec.windows.hyperv set", T("T3"), winCreate)
	add(iso, false, "sandbox-start-process", win, "the pod's sandbox start with process options: the delegate's stdin options are rewritten before the pod exists", T("T3"), winStart)
	add(iso, false, "sandbox-create-process", win, "the sandbox container's Create with process options", T("T3"), winSandboxCreate)
	add(iso, false, "no-options", win, "no runtime options at all: Options{HYPERVISOR} is created", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = nil
		return in
	})
	add(iso, false, "direct-client", win, "ctr run in containerd namespace default: no CRI annotations, untrusted, Hyper-V enforced just the same", T("T2", "T3"), func(t testing.TB) Input {
		in := standalone(winCreate(t), "default")
		in.Options = nil
		in.Spec.Mounts = nil
		return in
	})
	add(iso, false, "unknown-option-fields", win, "options carrying a field hcsshim v0.15 does not define: dropped", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		b := in.Options.Value
		b = protowire.AppendTag(b, 99, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		in.Options = &anypb.Any{TypeUrl: TypeURLRunhcsOptions, Value: b}
		return in
	})
	add(iso, false, "lcow", win, "a Linux spec (LCOW) on a Windows node: denied", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Linux = &specs.Linux{}
		return in
	})
	add(iso, false, "sandbox-platform-linux", win, "options asking for a Linux sandbox platform: denied", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = anyOf(t, TypeURLRunhcsOptions, &runhcsopts.Options{SandboxPlatform: "linux/amd64"})
		return in
	})
	add(iso, false, "utility-vm-path", win, "spec.windows.hyperv.utilityVMPath names a host path: denied", T("T3"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Windows.HyperV = &specs.WindowsHyperV{UtilityVMPath: `C:\attacker\uvm`}
		return in
	})
	add(iso, false, "linux-runc", lin, "CRI's runc options on a workload container of an untrusted pod: replaced by the sandbox shim's options", T("T3"), linuxCreate)
	add(iso, false, "linux-sandbox-start", lin, "an untrusted pod's start: the sandbox runtime's shim becomes the pod's delegate, with its options on stdin", T("T3"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Call, in.ID, in.Role, in.Pod = CallStart, sandboxID, cri.RoleSandbox, nil
		in.Spec.Annotations = linuxAnnotations(cri.RoleSandbox)
		return in
	})
	add(iso, false, "linux-other-binary", lin, "runc options naming another runtime binary: replaced", T("T3"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = runcOptions(t, "/usr/bin/crun")
		return in
	})
	add(iso, false, "linux-no-options", lin, "no options: the sandbox shim's options created", T("T3"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = nil
		return in
	})
	add(iso, false, "linux-standalone-pods-only", "linux-pods-only", "a standalone container (no CRI pod) with a sandbox shim that runs pods only: denied, not sent to a shim that would hang", T("T2", "T3"), func(t testing.TB) Input {
		in := standalone(linuxCreate(t), "tenant-b")
		in.Call, in.Pod, in.Spec.Mounts = CallStart, nil, nil
		return in
	})
	add(iso, false, "linux-no-sandbox", "linux-no-runtime", "no untrusted.sandbox configured: untrusted workloads cannot be isolated, denied", T("T3"), linuxCreate)
}
