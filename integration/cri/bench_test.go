//go:build integration && linux

package cri

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
)

// TestBenchmarkCRIPodStart measures a pod's start through the CRI (crictl runp, create and
// start of one container, as kubelet starts a pod) through isoguard and through the handler
// isoguard delegates to, alternating, in one run on one containerd 2.4.2:
//   - a trusted pod: isoguard (delegate: the runc shim) vs the plain runc handler;
//   - an untrusted pod: isoguard (delegate: gVisor's shim) vs gVisor's shim as a handler.
//
// It runs with ISOGUARD_BENCH=1 (`make bench`) and appends a Markdown table to
// ISOGUARD_BENCH_OUT; docs/benchmarks.md has the method and the results.
func TestBenchmarkCRIPodStart(t *testing.T) {
	if os.Getenv("ISOGUARD_BENCH") != "1" {
		t.Skip("set ISOGUARD_BENCH=1 (make bench)")
	}
	rounds := 15
	if v, err := strconv.Atoi(os.Getenv("ISOGUARD_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	n := startIsoNode(t, "2.4", nodeOptions{extraHandlers: func(n *isoNode) []harness.RuntimeHandler {
		return []harness.RuntimeHandler{n.runscHandler()}
	}})
	var report strings.Builder
	fmt.Fprintf(&report, "| pod start (runp + create + start), median of %d | direct | through isoguard | ratio | target |\n|---|---|---|---|---|\n", rounds)
	for _, c := range []struct {
		what, ns, direct string
		target           string
	}{
		{"trusted pod: runc shim", trustedNS, "runc", "<= 1.03"},
		{"untrusted pod: gVisor's shim", untrustedNS, "runsc", "(measured)"},
	} {
		var direct, wrapped []time.Duration
		for i := range rounds {
			for _, viaIsoguard := range []bool{i%2 == 0, i%2 != 0} {
				handler := c.direct
				if viaIsoguard {
					handler = isoguardHandler
				}
				d := podStart(t, n, c.ns, handler)
				if viaIsoguard {
					wrapped = append(wrapped, d)
				} else {
					direct = append(direct, d)
				}
			}
		}
		md, mw := medianOf(direct), medianOf(wrapped)
		fmt.Fprintf(&report, "| %s | %.1f ms | %.1f ms | %.3f | %s |\n", c.what, ms(md), ms(mw), float64(mw)/float64(md), c.target)
		t.Logf("%s: direct %v, isoguard %v", c.what, direct, wrapped)
	}
	t.Log("\n" + report.String())
	if out := os.Getenv("ISOGUARD_BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprint(f, report.String())
	}
}

// podStart times one pod's start through the CRI (runp, create, start: what kubelet waits
// for), then removes the pod (not timed).
func podStart(t *testing.T, n *isoNode, ns, handler string) time.Duration {
	t.Helper()
	pcfg, _ := n.WritePodConfig(t, harness.PodConfig{Name: "bench", Namespace: ns})
	ccfg := n.WriteContainerConfig(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", sleeper},
		Extra: map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 0, "pid": 1, "ipc": 0}}}}})
	start := time.Now()
	pod := strings.TrimSpace(n.MustCrictl(t, "runp", "--runtime", handler, pcfg))
	ctr := strings.TrimSpace(n.MustCrictl(t, "create", "--no-pull", pod, ccfg, pcfg))
	n.MustCrictl(t, "start", ctr)
	took := time.Since(start)
	n.MustCrictl(t, "stopp", pod)
	n.MustCrictl(t, "rmp", pod)
	return took
}

func medianOf(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
