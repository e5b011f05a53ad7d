package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/policy"
)

// TestPs: records of a live wrapper (a process whose command line runs the recorded binary
// for the recorded id) and of a dead one, as the table and as JSON.
func TestPs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("a live wrapper stand-in needs /proc")
	}
	state := t.TempDir()
	ns := filepath.Join(state, taskStateDir, "k8s.io")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip(err)
	}
	// A process that runs `sh` with -id sb-live, as a wrapper daemon runs its binary.
	live := exec.Command(sh, "-c", "sleep 60", "sh", "-id", "sb-live")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })
	write := func(id string, pid int, pins policy.Pins) {
		dir := filepath.Join(ns, id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(pins)
		rec := &bundle.Record{ID: id, Namespace: "k8s.io", Sandbox: true, Pid: pid, Binary: sh,
			Delegate: bundle.Delegate{Path: "/usr/local/bin/containerd-shim-runsc-v1", Pid: 7}, Pins: raw}
		if err := bundle.WriteRecord(dir, rec); err != nil {
			t.Fatal(err)
		}
	}
	write("sb-live", live.Process.Pid, policy.Pins{Tenant: "team-a", Isolation: "/usr/local/bin/containerd-shim-runsc-v1", KubeNamespace: "team-a", KubePod: "web", User: "65534:65534"})
	write("sb-dead", 999999, policy.Pins{Tenant: "kube-system", Trusted: true, Isolation: policy.IsolationRunc, KubeNamespace: "kube-system", KubePod: "dns"})
	// A joined container's bundle holds no record and is not listed.
	if err := os.MkdirAll(filepath.Join(ns, "c1"), 0o700); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI("ps", "--state", state)
	if code != exitOK || errs != "" {
		t.Fatalf("ps: %d %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "team-a/web") || !strings.Contains(lines[1], "containerd-shim-runsc-v1") || !strings.Contains(lines[1], "65534:65534") || strings.Contains(out, "sb-dead") {
		t.Fatalf("ps lists only the live wrapper:\n%s", out)
	}
	code, out, _ = runCLI("ps", "--state", state, "--all", "--json")
	var rows []wrapperRow
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 {
		t.Fatalf("ps --all --json: %d\n%s", code, out)
	}
	byID := map[string]wrapperRow{rows[0].ID: rows[0], rows[1].ID: rows[1]}
	if l := byID["sb-live"]; !l.Live || l.Trusted || l.User != "65534:65534" || l.DelegatePid != 7 {
		t.Errorf("live row %+v", l)
	}
	if d := byID["sb-dead"]; d.Live || !d.Trusted || d.Isolation != policy.IsolationRunc || d.KubePod != "dns" {
		t.Errorf("dead row %+v", d)
	}
	// No state directory at all: nothing to list, not an error.
	if code, out, _ := runCLI("ps", "--state", filepath.Join(state, "none"), "--json"); code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("no state: %d %q", code, out)
	}
}
