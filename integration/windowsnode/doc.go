// Package windowsnode holds functional tests for a real Windows node: Windows Server
// 2019/2022/2025 with the Hyper-V role, containerd 1.7 or 2.x, runhcs, crictl, and isoguard
// installed as a runtime handler (deploy/windows/install.ps1). They drive containerd's CRI
// with crictl, as the kubelet would, and look at the result through the Host Compute
// Service and inside the containers:
//
//   - an untrusted pod runs in a utility VM (Hyper-V isolation);
//   - its container runs as ContainerUser although the pod asks for ContainerAdministrator,
//     and so does an exec into it;
//   - a hostPath mount of the host's user profile is denied by rule untrusted.hostpath
//     (and the denial is in the audit trail);
//   - a pod of a trusted namespace keeps process isolation and the user it asks for (only
//     when the handler leaves SandboxIsolation at PROCESS: install -Isolation process);
//   - the shim's ETW provider GUID is the documented one.
//
// The test files build only with GOOS=windows and the tag functional. On the node, as an
// Administrator, from the repository root:
//
//	go test -tags functional ./integration/windowsnode/ -v -count=1 -timeout 30m
//
// Environment (all optional):
//
//	ISOGUARD_TEST_CRICTL              crictl binary (default: crictl on PATH)
//	CONTAINER_RUNTIME_ENDPOINT        CRI endpoint (default npipe:////./pipe/containerd-containerd)
//	ISOGUARD_TEST_HANDLER             isoguard's runtime handler (default isoguard)
//	ISOGUARD_TEST_IMAGE               a nanoserver image of the host's build (default picked
//	                                  from the host build: ltsc2019, ltsc2022 or ltsc2025)
//	ISOGUARD_TEST_UNTRUSTED_NAMESPACE a namespace the node policy does not trust
//	                                  (default isoguard-e2e-tenant)
//	ISOGUARD_TEST_TRUSTED_NAMESPACE   a namespace it trusts (default kube-system)
//	ISOGUARD_TEST_AUDIT_LOG           the audit trail (default %ProgramData%\isoguard\audit\audit.log)
//
// Run them on a node without other workloads (cordoned and drained, or not joined to a
// cluster): the pods they create are unknown to the kubelet. Every pod is removed at the end.
package windowsnode
