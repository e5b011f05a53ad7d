// Package cri holds the CRI tier: tests that drive a private containerd's CRI plugin the way
// kubelet does, with crictl and critest (sigs.k8s.io/cri-tools v1.37.0), through a runtime
// handler. They need root, `bash scripts/deps.sh linux` (containerd 2.4.2 and 1.7.35, runc,
// crictl, critest, CNI plugins, busybox-static) and the build tag:
//
//	go test -tags integration -count=1 -v ./integration/cri/    (or: bash scripts/test-cri.sh)
//
// Each test starts its own daemon with harness.CRIContainerd, which documents what a daemon
// gets (runtime handlers, private CNI network, the locally built images) and what its cleanup
// asserts: nothing of the test's pods may be left (processes, shims, mounts, sockets,
// network namespaces, runc state, cgroups, CNI allocations).
//
// Another runtime handler (the isoguard shim, a gVisor shim) is one more
// harness.RuntimeHandler in CRIOptions.Handlers, selected per pod with PodConfig.Handler or
// for every pod with CRIOptions.DefaultRuntime; TestCRIRuntimeHandlers shows it, and
// CRIDaemon.Critest runs critest's focused subset (harness.CritestFocus) on any handler.
package cri
