package policy

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/isoguard/isoguard/internal/cri"
)

// Behaviour of decisions as a whole.
func decisionsCases(add fixtureAdder) {
	const dec = "decision"
	add(dec, true, "trusted-kubernetes-namespace", win, "a kube-system pod: trusted, allowed, nothing changed, still a decision", nil, func(t testing.TB) Input {
		in := winCreate(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Spec.Process.User.Username = "ContainerAdministrator"
		in.Pod.Tenant, in.Pod.KubeNamespace, in.Pod.Trusted = "kube-system", "kube-system", true
		return in
	})
	add(dec, true, "trusted-containerd-namespace", win, "ctr in the trusted containerd namespace moby", nil, func(t testing.TB) Input {
		in := standalone(winCreate(t), "moby")
		in.Pod.Trusted = true
		in.Options = nil
		return in
	})
	add(dec, true, "start-pins", win, "an untrusted pod's sandbox start: pins with tenant, Hyper-V isolation and Kubernetes identity", nil, winStart)
	add(dec, true, "trusted-start-pins", win, "a trusted pod's start pins process isolation as requested", nil, func(t testing.TB) Input {
		in := winStart(t)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		return in
	})
	add(dec, false, "spoofed-kubernetes-namespace", win, "ctr in namespace k8s.io as a standalone container claiming kube-system through the CRI annotation: its tenant is containerd:k8s.io, untrusted", T("T2"), func(t testing.TB) Input {
		in := standalone(winCreate(t), cri.DefaultNamespace)
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Spec.Process.User.Username = "ContainerAdministrator"
		return in
	})
	add(dec, false, "kube-annotations-outside-cri-namespace", win, "a pod-shaped container in another containerd namespace claiming kube-system: the containerd namespace is its tenant", T("T2"), func(t testing.TB) Input {
		in := winCreate(t)
		in.Namespace = "buildkit"
		in.Spec.Annotations[cri.SandboxNamespace] = "kube-system"
		in.Pod.Namespace, in.Pod.Tenant = "buildkit", "containerd:buildkit"
		in.Pod.KubeNamespace, in.Pod.KubePod, in.Pod.KubePodUID = "", "", ""
		return in
	})
	add(dec, false, "audit-mode", "windows-audit", "mode audit: allowed, every denial and mutation recorded, nothing applied", T("T8"), func(t testing.TB) Input {
		in := withUser(withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`)), "ContainerAdministrator")
		in.Pod.Isolation = IsolationProcess
		return in
	})
	add(dec, false, "audit-mode-start-pins", "windows-audit", "mode audit at start: the pins record the isolation the pod really gets (process)", T("T3"), winStart)
	add(dec, false, "tenant-audit-mode", win, "tenant team-legacy (trusted: false, mode: audit): findings recorded, nothing applied", T("T8"), func(t testing.TB) Input {
		in := withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`))
		in.Spec.Annotations[cri.SandboxNamespace] = "team-legacy"
		in.Pod.Tenant, in.Pod.KubeNamespace, in.Pod.Isolation = "team-legacy", "team-legacy", IsolationProcess
		return in
	})
	add(dec, false, "rule-audit-mode", "windows-rule-audit", "rules in audit mode: their findings and mutations are recorded, not applied; the other rules apply", T("T8", "T5"), func(t testing.TB) Input {
		return withUser(withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`)), "ContainerAdministrator")
	})
	add(dec, false, "several-denials", win, "several rules deny: the error lists every denial", T("T7", "T8", "T9"), func(t testing.TB) Input {
		in := withMounts(winCreate(t), hostMount(`C:\Users\x\.ssh`), specs.Mount{Destination: `\\.\pipe\d`, Source: `\\.\pipe\docker_engine`})
		in.Spec.Annotations["microsoft.com/hostprocess-container"] = "true"
		return in
	})
	add(dec, false, "linux-typical-pod", lin, "a typical Linux CRI container of an untrusted pod: only its runc options are replaced by the sandbox shim's", nil, linuxCreate)
}
