//go:build integration && linux

package cri

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/integration/harness"
)

// full reports whether the whole CRI tier runs (scripts/test-cri.sh, `make test-cri`): the
// critest runs of containerd 1.7 and the enforce-mode run on top of what `make test` runs.
func full() bool { return os.Getenv("ISOGUARD_CRI_FULL") == "1" }

// critestKnownFailures are, per containerd version, specs of harness.CritestFocus that fail
// on the plain runc handler on this kind of machine, with the reason. A spec listed here
// that passes, or a failure not listed, fails the test.
var critestKnownFailures = map[string]map[string]string{}

// enforceDifferences are the critest specs that pass on the plain runc handler and fail
// through isoguard in enforce mode, because critest's pods are an untrusted tenant's (their
// namespaces are named by no policy), with the rule or mechanism that causes each.
// docs/kubernetes.md lists them (TestDocsListEnforceDifferences).
var enforceDifferences = map[string]string{
	// untrusted.user: the containers run as uid 65534, not as the image's root.
	"[k8s.io] Multiple Containers [Conformance] when running multiple containers in a pod should support container exec": "untrusted.user: the web server cannot bind port 80 as uid 65534 and exits",
	"[k8s.io] Multiple Containers [Conformance] when running multiple containers in a pod should support network":        "untrusted.user: the web server cannot bind port 80 as uid 65534",
	"[k8s.io] Security Context NamespaceOption runtime should support ContainerPID":                                      "untrusted.user: the web server cannot bind port 80 as uid 65534 and exits",
	"[k8s.io] Security Context NamespaceOption runtime should support HostPID":                                           "untrusted.user: the web server cannot bind port 80 as uid 65534 and exits",
	"[k8s.io] Security Context NamespaceOption runtime should support PodPID":                                            "untrusted.user: the web server cannot bind port 80 as uid 65534 and exits",
	"[k8s.io] Security Context bucket runtime should support that ReadOnlyRootfs is false":                               "untrusted.user: uid 65534 may not write to the image's root-owned /",
	"[k8s.io] Security Context bucket runtime should support that ReadOnlyRootfs is true":                                "untrusted.user: uid 65534 gets permission denied before the read-only file system is reached",
	// Denied by a rule.
	"[k8s.io] Security Context NamespaceOption runtime should support HostIpc is true": "untrusted.hostpath: the sandbox bind-mounts the host's /dev/shm (the pod is denied)",
	"[k8s.io] Security Context bucket runtime should support Privileged is true":       "untrusted.devices: a privileged container gets the host's devices (denied)",
	// untrusted.isolation: the pod runs in gVisor, whose kernel and network stack are its own.
	"[k8s.io] Security Context NamespaceOption runtime should support HostIpc is false":                                 "untrusted.isolation: gVisor has no /proc/sysvipc",
	"[k8s.io] Security Context NamespaceOption runtime should support HostNetwork is true":                              "untrusted.isolation: gVisor's own network stack, not the host's, even for a host-network pod",
	"[k8s.io] Security Context bucket runtime should support ReadonlyPaths":                                             "untrusted.isolation: gVisor's /proc does not honour the readonly paths critest checks",
	"[k8s.io] Security Context bucket runtime should support adding capability":                                         "untrusted.isolation: gVisor has no /sys/class/net for brctl",
	"[k8s.io] Streaming runtime should support streaming interfaces runtime should support portforward [Conformance]":   "untrusted.isolation (and untrusted.user): the pod's ports live in gVisor's network stack, which port-forward through the pod's network namespace does not reach",
	"[k8s.io] Streaming runtime should support streaming interfaces runtime should support portforward in host network": "untrusted.isolation: a host-network pod in gVisor does not listen on the host",
}

// TestCritest runs critest's focused subset (harness.CritestFocus, CritestSkip) through the
// CRI plugin: on the plain runc handler (the baseline), then through isoguard with the node
// policy in audit mode, which must pass exactly the baseline's specs (the relay changes
// nothing a CRI client sees); with ISOGUARD_CRI_FULL=1 also in enforce mode, whose every
// difference from the baseline must be a documented one.
func TestCritest(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		if version != "2.4" && !full() {
			t.Skip("containerd 1.7's critest runs with ISOGUARD_CRI_FULL=1 (make test-cri)")
		}
		testCritest(t, version)
	})
}

func testCritest(t *testing.T, version string) {
	n := startIsoNode(t, version, nodeOptions{mode: "audit"})
	base := runCritest(t, n, "runc")
	checkBaseline(t, version, base)

	audited := runCritest(t, n, isoguardHandler)
	if !slices.Equal(audited.Passed, base.Passed) || !slices.Equal(audited.Failed, base.Failed) {
		t.Errorf("isoguard in audit mode: passed %d / failed %d specs; the runc baseline %d / %d. Only through isoguard:\n  passed: %v\n  failed: %v",
			len(audited.Passed), len(audited.Failed), len(base.Passed), len(base.Failed),
			minus(audited.Passed, base.Passed), minus(audited.Failed, base.Failed))
	}
	if !full() {
		return
	}
	n.writePolicy(t, version, "enforce")
	enforced := runCritest(t, n, isoguardHandler)
	lost := minus(base.Passed, enforced.Passed)
	for _, s := range lost {
		if _, ok := enforceDifferences[s]; !ok {
			t.Errorf("enforce mode: %q passes on runc, fails through isoguard, and is not a documented difference:\n     %s", s, enforced.Failures[s])
		}
	}
	for s, why := range enforceDifferences {
		if !slices.Contains(lost, s) {
			t.Errorf("documented difference %q (%s) did not occur", s, why)
		}
	}
	if gained := minus(enforced.Passed, base.Passed); len(gained) > 0 {
		t.Errorf("enforce mode passes specs the baseline fails: %v", gained)
	}
}

// runCritest runs the focused subset on handler and logs the outcome.
func runCritest(t *testing.T, n *isoNode, handler string) *harness.CritestResult {
	t.Helper()
	r := n.Critest(t, harness.CritestOptions{Handler: handler})
	t.Logf("critest on handler %s: %d passed, %d failed, %d skipped in %v", handler, len(r.Passed), len(r.Failed), len(r.Skipped), r.Duration)
	for _, s := range r.Failed {
		t.Logf("FAIL [%s] %s\n     %s", handler, s, r.Failures[s])
	}
	if len(r.Passed) == 0 {
		t.Fatalf("critest on %s passed no spec:\n%s", handler, lastLines(r.Output, 150))
	}
	sort.Strings(r.Passed)
	sort.Strings(r.Failed)
	return r
}

// checkBaseline: the plain runc handler fails exactly the known failures.
func checkBaseline(t *testing.T, version string, r *harness.CritestResult) {
	t.Helper()
	known := critestKnownFailures[version]
	var unexpected, fixed []string
	for _, s := range r.Failed {
		if _, ok := known[s]; !ok {
			unexpected = append(unexpected, s)
		}
	}
	for s := range known {
		if !slices.Contains(r.Failed, s) {
			fixed = append(fixed, s)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("critest on runc: unexpected failures:\n  %s", strings.Join(unexpected, "\n  "))
	}
	if len(fixed) > 0 {
		t.Errorf("critest on runc: known failures that did not fail (update critestKnownFailures):\n  %s", strings.Join(fixed, "\n  "))
	}
	for _, s := range r.Passed {
		t.Logf("PASS %-8v %s", r.SpecTimes[s].Round(10e6), s)
	}
}

// minus is a without b's elements.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestDocsListEnforceDifferences: docs/kubernetes.md lists every documented difference with
// the rule that causes it.
func TestDocsListEnforceDifferences(t *testing.T) {
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(doc), "\n")
	for spec, why := range enforceDifferences {
		tail := spec[strings.LastIndex(spec, "should support ")+len("should support "):]
		rule, _, _ := strings.Cut(why, ":")
		rule, _, _ = strings.Cut(rule, " ")
		found := false
		for _, l := range lines {
			if strings.Contains(l, "should support "+tail+" |") && strings.Contains(l, "`"+rule+"`") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/kubernetes.md has no row for %q with %s", spec, rule)
		}
	}
}
