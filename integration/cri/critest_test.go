//go:build integration && linux

package cri

import (
	"sort"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/integration/harness"
)

// critestKnownFailures are, per containerd version, specs of harness.CritestFocus that fail
// on the plain runc handler on this kind of machine, with the reason. A spec listed here
// that passes, or a failure not listed, fails the test.
var critestKnownFailures = map[string]map[string]string{}

// TestCritestRunc runs the focused critest subset (harness.CritestFocus, CritestSkip)
// against the CRI plugin of containerd 2.4 and 1.7 with the plain runc handler, and lists
// what passed.
func TestCritestRunc(t *testing.T) { forEachVersion(t, testCritestRunc) }

func testCritestRunc(t *testing.T, version string) {
	critestKnownFailures := critestKnownFailures[version]
	c := harness.CRIContainerd(t, version, harness.CRIOptions{})
	r := c.Critest(t, harness.CritestOptions{})
	t.Logf("critest focus %q skip %q: %d passed, %d failed, %d skipped in %v",
		harness.CritestFocus, harness.CritestSkip, len(r.Passed), len(r.Failed), len(r.Skipped), r.Duration)
	for _, s := range r.Passed {
		t.Logf("PASS %-8v %s", r.SpecTimes[s].Round(10e6), s)
	}
	for _, s := range r.Failed {
		t.Logf("FAIL %s\n     %s", s, r.Failures[s])
	}
	if len(r.Passed) == 0 {
		t.Fatalf("critest passed no spec:\n%s", r.Output)
	}
	var unexpected, fixed []string
	failed := map[string]bool{}
	for _, s := range r.Failed {
		failed[s] = true
		if _, ok := critestKnownFailures[s]; !ok {
			unexpected = append(unexpected, s)
		}
	}
	for s := range critestKnownFailures {
		if !failed[s] {
			fixed = append(fixed, s)
		}
	}
	sort.Strings(fixed)
	if len(unexpected) > 0 {
		t.Errorf("critest: unexpected failures:\n  %s", strings.Join(unexpected, "\n  "))
	}
	if len(fixed) > 0 {
		t.Errorf("critest: known failures that did not fail (update critestKnownFailures):\n  %s", strings.Join(fixed, "\n  "))
	}
	if t.Failed() {
		t.Logf("critest output (tail):\n%s", lastLines(r.Output, 150))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
