//go:build !windows

package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestShims finds a running process by its shim command line, and no other.
func TestShims(t *testing.T) {
	// A copy of sh named like a shim, whose command line carries the shim flags as its
	// positional arguments; the trailing ":" keeps sh itself running.
	data, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	bin := filepath.Join(t.TempDir(), "containerd-shim-test-v1")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", "sleep 30; :", "-namespace", "ns1", "-id", "t1", "-address", "/run/test/c.sock")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(Shims(bin, "ns1", "t1", "/run/test/c.sock"), pid) {
		if time.Now().After(deadline) {
			t.Fatalf("Shims did not find pid %d", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, other := range [][4]string{
		{bin, "ns1", "t2", "/run/test/c.sock"},
		{bin, "ns2", "t1", "/run/test/c.sock"},
		{bin, "ns1", "t1", "/run/other.sock"},
		{"/usr/bin/containerd-shim-runc-v2", "ns1", "t1", "/run/test/c.sock"},
	} {
		if slices.Contains(Shims(other[0], other[1], other[2], other[3]), pid) {
			t.Errorf("Shims%q matched pid %d", other, pid)
		}
	}
}
