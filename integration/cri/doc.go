// Package cri holds the CRI tier: tests that drive a private containerd's CRI plugin the way
// kubelet does, with crictl and critest (sigs.k8s.io/cri-tools), through a runtime handler.
// They need root, `bash scripts/deps.sh linux` (containerd, crictl, critest, CNI plugins,
// busybox-static) and the build tag:
//
//	go test -tags integration -count=1 -v ./integration/cri/
//
// The harness (integration/harness, CRIContainerd) documents what each daemon gets and what
// the cleanup asserts.
package cri
