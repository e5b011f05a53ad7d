package policy

import (
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
)

// input.invalid (T13): denied for every tenant, in audit mode too.
func invalidInputCases(add fixtureAdder) {
	const bad = RuleInvalidInput
	add(bad, false, "create-without-spec", win, "a Create whose config.json could not be read", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec = nil
		return in
	})
	add(bad, false, "runtimeoptions-type", win, "CRI's runtimeoptions.v1.Options (runtime_type other than runhcs): runhcs would panic on it", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{0x0a, 0x03, 'a', 'b', 'c'}}
		return in
	})
	add(bad, false, "runc-options-on-windows", win, "runc options on a Windows node", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = runcOptions(t, "runsc")
		return in
	})
	add(bad, false, "runhcs-options-on-linux", lin, "runhcs options on a Linux node", T("T13"), func(t testing.TB) Input {
		in := linuxCreate(t)
		in.Options = hyperVOptions(t)
		return in
	})
	add(bad, false, "undecodable-options", win, "runhcs options whose bytes are not a message", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Options = &anypb.Any{TypeUrl: TypeURLRunhcsOptions, Value: []byte{0x0a, 0xff, 0xff}}
		return in
	})
	add(bad, false, "trusted-tenant-bad-options", win, "a trusted tenant's foreign options are denied too (runhcs would misread them)", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Pod.Tenant, in.Pod.KubeNamespace, in.Pod.Trusted = "kube-system", "kube-system", true
		in.Options = &anypb.Any{TypeUrl: "runtimeoptions.v1.Options"}
		return in
	})
	add(bad, false, "exec-without-process", win, "an Exec without a process", T("T13"), func(t testing.TB) Input {
		in := winExec("")
		in.Process = nil
		return in
	})
	add(bad, false, "pins-at-start", win, "pins handed to a start", T("T13"), func(t testing.TB) Input {
		in := winStart(t)
		in.Pod = podPins(Windows)
		return in
	})
	add(bad, false, "role-mismatch", win, "the shim says sandbox, the spec's CRI annotations say container", T("T13", "T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Role = cri.RoleSandbox
		return in
	})
	add(bad, false, "half-cri-annotations", win, "container-type without sandbox-id", T("T13", "T4"), func(t testing.TB) Input {
		in := winCreate(t)
		delete(in.Spec.Annotations, cri.SandboxID)
		return in
	})
	add(bad, false, "platform-mismatch", win, "a Linux call evaluated by the Windows policy", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Platform = Linux
		return in
	})
	add(bad, false, "unknown-call", win, "a call the policy does not know", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Call = "checkpoint"
		return in
	})
	add(bad, false, "audit-mode-still-denies", "windows-audit", "malformed input denies in audit mode as well", T("T13"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec = nil
		return in
	})
}
