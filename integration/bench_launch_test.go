//go:build integration && linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
	"github.com/isoguard/isoguard/internal/bundle"
)

// TestBenchmarkLaunch measures what one launch of the wrapper binary costs on each path
// containerd takes without a delegate involved, against an empty static Go program built
// the same way, alternating in one run (docs/benchmarks.md):
//   - `-v`: package initialisation and nothing else, what every launch pays;
//   - `delete` of a bundle whose start was denied: a whole path the wrapper answers alone
//     (reads its record, prints a DeleteResponse).
//
// It runs with ISOGUARD_BENCH=1 (`make bench`) and appends a Markdown table to
// ISOGUARD_BENCH_OUT.
func TestBenchmarkLaunch(t *testing.T) {
	if os.Getenv("ISOGUARD_BENCH") != "1" {
		t.Skip("set ISOGUARD_BENCH=1 (make bench)")
	}
	rounds := envInt("ISOGUARD_BENCH_LAUNCHES", 60)
	shim := harness.BuildBinary(t, "./cmd/containerd-shim-isoguard-v1")
	empty := buildEmptyProgram(t)

	// A bundle as a denied start leaves it: the record with the denial, no delegate.
	b := t.TempDir()
	rec := &bundle.Record{ID: "bench", Namespace: "bench", Address: "unix://" + filepath.Join(b, "w.sock"), Denied: "denied for the benchmark"}
	if err := bundle.WriteRecord(b, rec); err != nil {
		t.Fatal(err)
	}
	paths := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"empty static Go program", func() *exec.Cmd { return exec.Command(empty) }},
		{"wrapper `-v`", func() *exec.Cmd { return exec.Command(shim, "-v") }},
		{"wrapper `delete` (denied start)", func() *exec.Cmd {
			c := exec.Command(shim, "-namespace", "bench", "-id", "bench", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-bundle", b, "delete")
			c.Dir = b
			return c
		}},
	}
	times := make([][]time.Duration, len(paths))
	for i := range rounds {
		for k := range paths {
			j := (k + i) % len(paths) // rotate the order every round
			c := paths[j].cmd()
			start := time.Now()
			out, err := c.CombinedOutput()
			el := time.Since(start)
			if err != nil {
				t.Fatalf("%s: %v (%s)", paths[j].name, err, out)
			}
			times[j] = append(times[j], el)
		}
	}
	base := median(times[0])
	var report strings.Builder
	fmt.Fprintf(&report, "| launch (wall, median of %d, rotating order) | time | vs empty Go | target |\n|---|---|---|---|\n", rounds)
	for j, p := range paths {
		target := "<= 1.3"
		if j == 0 {
			target = "(baseline)"
		}
		m := median(times[j])
		fmt.Fprintf(&report, "| %s | %s | %.2f | %s |\n", p.name, ms(m), float64(m)/float64(base), target)
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

// buildEmptyProgram builds `func main() {}` as the wrapper is built (static, stripped).
func buildEmptyProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module empty\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "empty")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the empty program: %v\n%s", err, out)
	}
	return bin
}
