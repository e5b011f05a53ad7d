//go:build windows

package windows

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/isoguard/isoguard/internal/proc"
)

// TestMain lets this test binary serve as a long-running process with a shim-like command
// line (TestPidGuard), started as `<test binary> -id ID serve`.
func TestMain(m *testing.M) {
	if os.Getenv("ISOGUARD_PIDGUARD_CHILD") == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPidGuard: proc.Matches, which guards every kill of a recorded pid, reads the
// process's command line (NtQueryInformationProcess) and accepts the task's exact `-id`
// only, as on Linux; Terminate ends it, and a pid that no longer exists is already gone.
func TestPidGuard(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-id", "pidguard-1", "serve")
	cmd.Env = append(os.Environ(), "ISOGUARD_PIDGUARD_CHILD=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if !proc.Matches(pid, self, "pidguard-1") {
		t.Errorf("Matches(%d, %s, pidguard-1) = false for the process started with -id pidguard-1", pid, self)
	}
	for _, id := range []string{"pidguard", "pidguard-10", "1", ""} {
		if proc.Matches(pid, self, id) {
			t.Errorf("Matches(%d, %s, %q) = true: only the exact id may match", pid, self, id)
		}
	}
	if proc.Matches(pid, `C:\other\containerd-shim-runhcs-v1.exe`, "pidguard-1") {
		t.Errorf("Matches accepted another image")
	}
	if err := proc.Terminate(pid, 5*time.Second); err != nil {
		t.Fatalf("Terminate(%d): %v", pid, err)
	}
	_ = cmd.Wait()
	if proc.Matches(pid, self, "pidguard-1") {
		t.Errorf("Matches(%d) = true after the process ended", pid)
	}
	if err := proc.Terminate(pid, time.Second); err != nil {
		t.Errorf("Terminate of a pid that is gone: %v, want nil", err)
	}
}
