//go:build integration && linux

// Package integration holds the tests that run real containerd daemons.
// Run: go test -tags integration -count=1 -v ./integration/...
package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
)

// TestHarnessRunc proves the harness against plain runc (no isoguard): for each containerd
// version, run the test image with the default runtime, exec into a running container as
// root and as the image's user "tenant", then check no shim or container process is left.
func TestHarnessRunc(t *testing.T) {
	for _, version := range harness.Versions() {
		t.Run(version, func(t *testing.T) {
			start := time.Now()
			c := harness.Containerd(t, version)
			t.Logf("containerd %s up in %v (boot %v)", version, time.Since(start).Round(time.Millisecond), c.StartupTime())
			harness.ImportImage(t, c)

			id := "hello-" + strings.ReplaceAll(version, ".", "")
			runStart := time.Now()
			out := c.MustCtr(t, "run", "--rm", harness.ImageRef, id, harness.ImageTool, "hello")
			t.Logf("ctr run --rm took %v", time.Since(runStart).Round(time.Millisecond))
			if got := strings.TrimSpace(out); got != "hello from isoguard" {
				t.Fatalf("ctr run --rm %s hello: got %q, want %q", id, got, "hello from isoguard")
			}

			// A non-zero exit status of the workload must come back through ctr run.
			if _, _, err := c.Ctr(t, "run", "--rm", harness.ImageRef, id+"-exit", harness.ImageTool, "exit", "3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
				t.Errorf("ctr run of `tool exit 3`: err = %v, want exit status 3", err)
			}

			bg := "sleeper-" + strings.ReplaceAll(version, ".", "")
			sleep := fmt.Sprintf("%d", 3000+time.Now().Nanosecond()%1000) // unique: find the process below
			c.MustCtr(t, "run", "-d", harness.ImageRef, bg, harness.ImageTool, "sleep", sleep)
			// ctr run -d returns once runc has started the task; runc init may not have exec'd yet.
			var ps []harness.Process
			for deadline := time.Now().Add(5 * time.Second); len(ps) == 0 && time.Now().Before(deadline); {
				if ps = harness.ProcessesMatching(harness.ImageTool + " sleep " + sleep); len(ps) == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if len(ps) != 1 {
				t.Errorf("container process of %s: found %v, want exactly one", bg, ps)
			}

			execStart := time.Now()
			out = c.MustCtr(t, "task", "exec", "--exec-id", "x", bg, harness.ImageTool, "id")
			t.Logf("ctr task exec took %v", time.Since(execStart).Round(time.Millisecond))
			if got := strings.TrimSpace(out); got != "uid=0 gid=0" {
				t.Errorf("exec id as root: got %q, want %q", got, "uid=0 gid=0")
			}
			out = c.MustCtr(t, "task", "exec", "--exec-id", "y", "--user", "tenant", bg, harness.ImageTool, "id")
			if got, want := strings.TrimSpace(out), fmt.Sprintf("uid=%d gid=%d", harness.ImageTenantUID, harness.ImageTenantGID); got != want {
				t.Errorf("exec id as tenant: got %q, want %q", got, want)
			}

			c.MustCtr(t, "task", "kill", "-s", "SIGKILL", bg)
			deleteTask(t, c, bg)
			c.MustCtr(t, "container", "delete", bg)

			c.AssertNoShims(t, 10*time.Second)
			harness.AssertNoProcesses(t, 5*time.Second, harness.ImageTool+" sleep "+sleep)
			if socks := harness.SocketsUnder(c.State); len(socks) > 0 {
				t.Errorf("sockets left under the state dir: %v", socks)
			}
		})
	}
}

// deleteTask retries `ctr task delete` until the killed task has exited.
func deleteTask(t *testing.T, c *harness.Daemon, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errOut, err := c.Ctr(t, "task", "delete", id)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctr task delete %s: %v: %s", id, err, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHarnessRestartAndCleanup checks Restart (the shim and its container survive a
// containerd restart) and the cleanup registered by Containerd: a test that ends with a
// running container leaves no daemon, shim, container process, mount or directory behind.
func TestHarnessRestartAndCleanup(t *testing.T) {
	for _, version := range harness.Versions() {
		t.Run(version, func(t *testing.T) {
			var c *harness.Daemon
			sleep := fmt.Sprintf("%d", 5000+time.Now().Nanosecond()%1000)
			t.Run("leave-running", func(t *testing.T) {
				c = harness.Containerd(t, version)
				harness.ImportImage(t, c)
				c.MustCtr(t, "run", "-d", harness.ImageRef, "survivor", harness.ImageTool, "sleep", sleep)
				pid := c.Pid()
				start := time.Now()
				c.Restart(t)
				t.Logf("restart took %v (pid %d -> %d)", time.Since(start).Round(time.Millisecond), pid, c.Pid())
				if c.Pid() == pid || !c.Running() {
					t.Fatalf("containerd not restarted: pid %d -> %d, running %v", pid, c.Pid(), c.Running())
				}
				out := c.MustCtr(t, "task", "exec", "--exec-id", "after-restart", "survivor", harness.ImageTool, "cat", "/etc/hostname")
				if got := strings.TrimSpace(out); got != "isoguard-test" {
					t.Errorf("exec after restart: got %q, want %q", got, "isoguard-test")
				}
			})
			if c == nil {
				t.Fatal("no daemon started")
			}
			harness.AssertNoProcesses(t, 5*time.Second, c.Dir+"/", harness.ImageTool+" sleep "+sleep)
			if socks := harness.SocketsUnder(c.Dir); len(socks) > 0 {
				t.Errorf("sockets left: %v", socks)
			}
			if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), c.Dir) {
				t.Errorf("mounts left under %s", c.Dir)
			}
			if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
				t.Errorf("%s not removed: %v", c.Dir, err)
			}
		})
	}
}
