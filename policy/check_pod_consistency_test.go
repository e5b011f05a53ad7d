package policy

import (
	"testing"

	"github.com/isoguard/isoguard/internal/cri"
)

// Golden fixture cases of rule untrusted.pod-consistency (testdata/untrusted.pod-consistency/).
func podConsistencyCases(add fixtureAdder) {
	const pc = "untrusted.pod-consistency"
	add(pc, true, "same-pod", win, "a workload container of the pinned pod", nil, winCreate)
	add(pc, true, "join", win, "a workload container's start joins its own pod", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Call = CallJoin
		in.Options = nil
		return in
	})
	add(pc, false, "no-pins", win, "a Create with no pins: the wrapper did not start this pod (spoofed sandbox id)", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod = nil
		return in
	})
	add(pc, false, "other-tenant", win, "a container of tenant team-b reaching team-a's pod", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "team-b"
		return in
	})
	add(pc, false, "trusted-tenant-joins-untrusted-pod", win, "a kube-system (trusted) container reaching an untrusted pod: evaluated as untrusted, denied", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		return in
	})
	add(pc, false, "spoofed-sandbox-id", win, "a container naming another sandbox than the pod's", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod.SandboxID = "0000000000000000000000000000000000000000000000000000000000000000"
		return in
	})
	add(pc, false, "isolation-mismatch", win, "the pod was started process-isolated (audit), the container would be Hyper-V: the pod's isolation cannot change", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod.Isolation = IsolationProcess
		return in
	})
	add(pc, false, "pod-uid-mismatch", win, "the container's pod uid differs from the pinned one (it would get another pod's kubelet directory)", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxUID] = otherPodUID
		return in
	})
	add(pc, false, "join-other-namespace", win, "a join from another containerd namespace", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Call = CallJoin
		in.Options = nil
		in.Pod.Namespace = "other"
		return in
	})
	add(pc, false, "exec-without-pins", win, "an Exec with no pins", T("T4"), func(t testing.TB) Input {
		in := winExec("ContainerUser")
		in.Pod = nil
		return in
	})
	add(pc, false, "no-longer-trusted", win, "a pod admitted as trusted whose tenant the policy no longer trusts", T("T4"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Pod.Trusted = true
		return in
	})
}
