//go:build integration && linux

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/isoguard/isoguard/integration/harness"
	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/internal/enforce"
)

const ()

// wrapperDaemon is a private containerd whose runtime for the tests is the isoguard shim
// (ctr --runtime <absolute path>, or the Go client's WithRuntime), with a node policy file
// passed through containerd's environment (containerd passes its environment to shims).
type wrapperDaemon struct {
	*harness.Daemon
	shim   string // absolute path of containerd-shim-isoguard-v1
	policy string // node policy file
	audit  string // audit log
}

// policyYAML is a node policy that trusts the test namespace (the wrapper then changes
// nothing: the shim-core tests check it is invisible) plus extra YAML (e.g. a delegate
// section).
func policyYAML(d *harness.Daemon, extra string) string {
	return fmt.Sprintf(`apiVersion: isoguard.dev/v1alpha1
kind: NodePolicy
tenants:
  - containerdNamespace: %s
%s`, d.Namespace, extra)
}

// startWrapperDaemon starts containerd of version with the isoguard shim as test runtime.
// extraPolicy is appended to the policy (e.g. "delegate:\n  path: ...").
func startWrapperDaemon(t *testing.T, version, extraPolicy string) *wrapperDaemon {
	t.Helper()
	w := &wrapperDaemon{shim: harness.BuildBinary(t, "./cmd/containerd-shim-isoguard-v1")}
	sockets := harness.Sockets()
	dir := t.TempDir()
	w.policy = filepath.Join(dir, "policy.yaml")
	w.audit = filepath.Join(dir, "audit", "audit.log")
	// The daemon's namespace is only known once it exists; the file is read per call.
	if err := os.WriteFile(w.policy, []byte("placeholder"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.Daemon = harness.ContainerdWith(t, version, harness.Options{Env: []string{
		enforce.ConfigEnv + "=" + w.policy,
		enforce.AuditEnv + "=" + w.audit,
	}})
	if err := os.WriteFile(w.policy, []byte(policyYAML(w.Daemon, extraPolicy)), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.ImportImage(t, w.Daemon)
	t.Cleanup(func() {
		w.AssertNoShims(t, 10*time.Second)
		harness.AssertNoProcesses(t, 5*time.Second, w.shim)
		harness.AssertNoDeadSockets(t, sockets, 5*time.Second)
	})
	return w
}

func (w *wrapperDaemon) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return w.Ctr(t, append([]string{"run", "--runtime", w.shim}, args...)...)
}

// bundle is the task bundle of id in the daemon's default namespace.
func (w *wrapperDaemon) bundle(id string) string {
	return filepath.Join(w.State, "io.containerd.runtime.v2.task", w.Namespace, id)
}

// record reads the wrapper's record of id, waiting until it names the delegate's pid (the
// wrapper records it once its first handshake with the delegate succeeded, in the
// background).
func (w *wrapperDaemon) record(t *testing.T, id string) bundle.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st bundle.Record
		data, err := os.ReadFile(filepath.Join(w.bundle(id), bundle.RecordFile))
		if err != nil {
			t.Fatalf("isoguard record of %s: %v", id, err)
		}
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		if st.Delegate.Pid != 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("isoguard record of %s names no delegate pid after 10 s: %+v", id, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func taskStatus(t *testing.T, w *wrapperDaemon, id string) string {
	t.Helper()
	out, _, err := w.Ctr(t, "task", "ls")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

// TestShimRunExecKillDelete: the wrapper is invisible on the ordinary paths, on every
// containerd version (1.6/1.7: bare Any on stdin; 2.4: BootstrapParams).
func TestShimRunExecKillDelete(t *testing.T) {
	for _, version := range harness.Versions() {
		t.Run(version, func(t *testing.T) {
			w := startWrapperDaemon(t, version, "")
			out, errOut, err := w.run(t, "--rm", harness.ImageRef, "hello", harness.ImageTool, "hello")
			if err != nil || strings.TrimSpace(out) != "hello from isoguard" {
				t.Fatalf("run --rm through isoguard: %q %q %v", out, errOut, err)
			}
			if _, _, err := w.run(t, "--rm", harness.ImageRef, "exit3", harness.ImageTool, "exit", "3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("exit status through isoguard: %v", err)
			}

			w.MustCtr(t, "run", "-d", "--runtime", w.shim, harness.ImageRef, "bg", harness.ImageTool, "sleep", "300")
			st := w.record(t, "bg")
			if st.Address == st.Delegate.Address || !strings.HasPrefix(st.Address, "unix://") {
				t.Fatalf("wrapper address %q vs delegate %q", st.Address, st.Delegate.Address)
			}
			if !alive(st.Pid) || !alive(st.Delegate.Pid) {
				t.Fatalf("wrapper pid %d alive=%v, delegate pid %d alive=%v", st.Pid, alive(st.Pid), st.Delegate.Pid, alive(st.Delegate.Pid))
			}
			// containerd restores from these: they must name the wrapper, never the delegate.
			addr, _ := os.ReadFile(filepath.Join(w.bundle("bg"), bundle.AddressFile))
			if string(addr) != st.Address {
				t.Fatalf("bundle address %q, want the wrapper's %q", addr, st.Address)
			}
			if got := taskStatus(t, w, "bg"); got != "RUNNING" {
				t.Fatalf("task status %q", got)
			}
			out = w.MustCtr(t, "task", "exec", "--exec-id", "e1", "bg", harness.ImageTool, "id")
			if strings.TrimSpace(out) != "uid=0 gid=0" {
				t.Fatalf("exec: %q", out)
			}
			out = w.MustCtr(t, "task", "ps", "bg")
			if !strings.Contains(out, "PID") {
				t.Fatalf("task ps: %q", out)
			}
			w.MustCtr(t, "task", "kill", "-s", "SIGKILL", "bg")
			deleteTask(t, w.Daemon, "bg")
			w.MustCtr(t, "container", "delete", "bg")
			waitFor(t, "wrapper and delegate to exit", 10*time.Second, func() bool { return !alive(st.Pid) && !alive(st.Delegate.Pid) })
			if _, err := os.Stat(strings.TrimPrefix(st.Address, "unix://")); !os.IsNotExist(err) {
				t.Errorf("wrapper socket left behind: %v", err)
			}
		})
	}
}

// TestShimPodTwoContainersOneWrapper creates a pod's sandbox and a workload container with
// the CRI annotations through the containerd Go client: both run behind ONE wrapper and
// ONE delegate, and a container naming a pod isoguard did not start is refused.
func TestShimPodTwoContainersOneWrapper(t *testing.T) {
	for _, version := range harness.Versions() {
		t.Run(version, func(t *testing.T) {
			w := startWrapperDaemon(t, version, "")
			ctx := namespaces.WithNamespace(context.Background(), w.Namespace)
			client, err := containerd.New(w.Address, containerd.WithDefaultNamespace(w.Namespace))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			img, err := client.GetImage(ctx, harness.ImageRef)
			if err != nil {
				t.Fatal(err)
			}
			newTask := func(id string, ann map[string]string, args ...string) (containerd.Container, containerd.Task, string, error) {
				c, err := client.NewContainer(ctx, id,
					containerd.WithImage(img),
					containerd.WithNewSnapshot(id+"-snap", img),
					containerd.WithRuntime(w.shim, nil),
					containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(args...), oci.WithAnnotations(ann)))
				if err != nil {
					t.Fatal(err)
				}
				// The shim writes the output to a file (cio.LogFile): the Go client's FIFO
				// streams lost short-lived output here even with plain runc.
				out := filepath.Join(t.TempDir(), id+".log")
				task, err := c.NewTask(ctx, cio.LogFile(out))
				return c, task, out, err
			}
			cleanup := func(c containerd.Container, task containerd.Task) {
				if task != nil {
					st, err := task.Wait(ctx)
					if err == nil {
						_ = task.Kill(ctx, syscall.SIGKILL)
						select {
						case <-st:
						case <-time.After(10 * time.Second):
							t.Errorf("task %s did not exit after SIGKILL", c.ID())
						}
					}
					if _, err := task.Delete(ctx); err != nil {
						t.Errorf("delete task %s: %v", c.ID(), err)
					}
				}
				if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
					t.Errorf("delete container %s: %v", c.ID(), err)
				}
			}

			sbC, sbT, _, err := newTask("pod1", map[string]string{cri.ContainerType: "sandbox", cri.SandboxID: "pod1"}, harness.ImageTool, "sleep", "300")
			if err != nil {
				t.Fatalf("sandbox task: %v", err)
			}
			if err := sbT.Start(ctx); err != nil {
				t.Fatal(err)
			}
			wlC, wlT, wlOut, err := newTask("pod1-app", map[string]string{cri.ContainerType: "container", cri.SandboxID: "pod1"}, harness.ImageTool, "hello")
			if err != nil {
				t.Fatalf("workload task: %v", err)
			}
			exitCh, err := wlT.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := wlT.Start(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case st := <-exitCh:
				if st.ExitCode() != 0 {
					t.Fatalf("workload exit %d", st.ExitCode())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("workload did not exit")
			}
			// One wrapper, one delegate for the pod: the workload joined the sandbox's wrapper.
			st := w.record(t, "pod1")
			if !st.Sandbox {
				t.Fatal("pod1 not recorded as a sandbox")
			}
			if _, err := os.Stat(filepath.Join(w.bundle("pod1-app"), bundle.RecordFile)); !os.IsNotExist(err) {
				t.Fatal("the workload container got a wrapper of its own")
			}
			if addr, _ := os.ReadFile(filepath.Join(w.bundle("pod1-app"), bundle.AddressFile)); string(addr) != st.Address {
				t.Fatalf("workload's address file %q, want the pod wrapper %q", addr, st.Address)
			}
			// Delete waits for the output to be copied.
			if _, err := wlT.Delete(ctx); err != nil {
				t.Fatalf("delete workload task: %v", err)
			}
			wlT = nil
			if got := strings.TrimSpace(readFile(wlOut)); got != "hello from isoguard" {
				t.Fatalf("workload output %q", got)
			}
			if n := len(harness.ProcessesMatching(w.shim + " ")); n != 1 {
				t.Fatalf("%d wrapper processes, want 1: %v", n, harness.ProcessesMatching(w.shim))
			}
			var delegates []harness.Process
			for _, p := range harness.ProcessesMatching("containerd-shim-runc-v2 ") {
				if strings.Contains(p.Cmdline, w.Address) {
					delegates = append(delegates, p)
				}
			}
			if len(delegates) != 1 {
				t.Fatalf("%d delegate processes, want 1: %v", len(delegates), delegates)
			}
			// Exec in the sandbox container goes through the same wrapper.
			spec, err := sbC.Spec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pspec := *spec.Process
			pspec.Args = []string{harness.ImageTool, "id"}
			execOut := filepath.Join(t.TempDir(), "exec.log")
			ps, err := sbT.Exec(ctx, "x1", &pspec, cio.LogFile(execOut))
			if err != nil {
				t.Fatal(err)
			}
			psExit, err := ps.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ps.Start(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-psExit:
			case <-time.After(10 * time.Second):
				t.Fatal("exec did not finish")
			}
			if _, err := ps.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(readFile(execOut)); got != "uid=0 gid=0" {
				t.Fatalf("exec in the sandbox: %q", got)
			}

			// A container claiming a pod isoguard did not start is refused, readably.
			spC, _, _, err := newTask("spoof", map[string]string{cri.ContainerType: "container", cri.SandboxID: "no-such-pod"}, harness.ImageTool, "hello")
			if err == nil || !strings.Contains(err.Error(), "which isoguard did not start") {
				t.Fatalf("spoofed sandbox id: got %v", err)
			}
			cleanup(spC, nil)

			cleanup(wlC, wlT)
			cleanup(sbC, sbT)
			waitFor(t, "pod wrapper to exit", 15*time.Second, func() bool { return !alive(st.Pid) && !alive(st.Delegate.Pid) })
		})
	}
}

// TestShimFaultPaths: the delegate dies -> the wrapper exits and containerd cleans up; the
// wrapper is killed -> containerd's delete through the wrapper cleans the delegate; containerd
// restarts -> running containers stay manageable through the wrapper.
func TestShimFaultPaths(t *testing.T) {
	for _, version := range harness.Versions() {
		t.Run(version+"/delegate-dies", func(t *testing.T) {
			w := startWrapperDaemon(t, version, "")
			w.MustCtr(t, "run", "-d", "--runtime", w.shim, harness.ImageRef, "d1", harness.ImageTool, "sleep", "300")
			st := w.record(t, "d1")
			if err := syscall.Kill(st.Delegate.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "wrapper to exit after its delegate died", 10*time.Second, func() bool { return !alive(st.Pid) })
			waitFor(t, "containerd to clean up the task", 15*time.Second, func() bool { return taskStatus(t, w, "d1") != "RUNNING" })
			_, _, _ = w.Ctr(t, "task", "delete", "d1")
			w.MustCtr(t, "container", "delete", "d1")
			// The wrapper's delete removed the killed delegate's socket (containerd leaves it
			// when the runc shim is used directly and killed). The runc shim's debug socket is
			// left in both cases -- neither containerd nor the shim's delete removes it -- so it
			// is removed here, and the cleanup's leak check covers everything else.
			waitFor(t, "the killed delegate's socket to be removed", 10*time.Second, func() bool {
				_, err := os.Stat(strings.TrimPrefix(st.Delegate.Address, "unix://"))
				return os.IsNotExist(err)
			})
			os.Remove(harness.RuncShimDebugSocket(w.Daemon, w.Namespace, "d1"))
		})
		t.Run(version+"/wrapper-killed", func(t *testing.T) {
			w := startWrapperDaemon(t, version, "")
			w.MustCtr(t, "run", "-d", "--runtime", w.shim, harness.ImageRef, "k1", harness.ImageTool, "sleep", "301")
			st := w.record(t, "k1")
			if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "delete to end the delegate", 15*time.Second, func() bool { return !alive(st.Delegate.Pid) })
			harness.AssertNoProcesses(t, 10*time.Second, harness.ImageTool+" sleep 301")
			waitFor(t, "the task to be gone", 10*time.Second, func() bool { return taskStatus(t, w, "k1") != "RUNNING" })
			_, _, _ = w.Ctr(t, "task", "delete", "k1")
			w.MustCtr(t, "container", "delete", "k1")
		})
		t.Run(version+"/containerd-restart", func(t *testing.T) {
			w := startWrapperDaemon(t, version, "")
			w.MustCtr(t, "run", "-d", "--runtime", w.shim, harness.ImageRef, "r1", harness.ImageTool, "sleep", "302")
			st := w.record(t, "r1")
			w.Restart(t)
			if got := taskStatus(t, w, "r1"); got != "RUNNING" {
				t.Fatalf("after restart: status %q", got)
			}
			if !alive(st.Pid) {
				t.Fatal("the wrapper did not survive a containerd restart")
			}
			out := w.MustCtr(t, "task", "exec", "--exec-id", "after", "r1", harness.ImageTool, "hello")
			if strings.TrimSpace(out) != "hello from isoguard" {
				t.Fatalf("exec after restart: %q", out)
			}
			w.MustCtr(t, "task", "kill", "-s", "SIGKILL", "r1")
			deleteTask(t, w.Daemon, "r1")
			w.MustCtr(t, "container", "delete", "r1")
			waitFor(t, "wrapper and delegate to exit", 10*time.Second, func() bool { return !alive(st.Pid) && !alive(st.Delegate.Pid) })
		})
	}
}

// TestShimStdinAcrossGenerations: containerd and delegate of different generations, so the
// wrapper must convert start's stdin -- both directions, on real shims.
func TestShimStdinAcrossGenerations(t *testing.T) {
	runc24 := filepath.Join(harness.Cache(), "containerd-v2.4.2", "bin", "containerd-shim-runc-v2")
	for _, tc := range []struct {
		name, version, delegate, format string
	}{
		// containerd 2.4 sends BootstrapParams; the 1.6 runc shim only reads a bare Any.
		{"containerd-2.4-to-runc-shim-1.6", "2.4", "/usr/bin/containerd-shim-runc-v2", "any"},
		// containerd 1.6 sends a bare Any; the 2.4 runc shim only accepts BootstrapParams.
		{"containerd-1.6-to-runc-shim-2.4", "1.6", runc24, "bootstrap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startWrapperDaemon(t, tc.version, fmt.Sprintf("delegate:\n  path: %s\n  stdinFormat: %s\n", tc.delegate, tc.format))
			out, errOut, err := w.run(t, "--rm", harness.ImageRef, "x1", harness.ImageTool, "hello")
			if err != nil || strings.TrimSpace(out) != "hello from isoguard" {
				t.Fatalf("run: %q %q %v", out, errOut, err)
			}
		})
	}
}

// TestShimMissingDelegate: start fails with a clear error naming the delegate; nothing left.
func TestShimMissingDelegate(t *testing.T) {
	w := startWrapperDaemon(t, "2.4", "delegate:\n  path: /nonexistent/containerd-shim-runc-v2\n")
	_, errOut, err := w.run(t, "--rm", harness.ImageRef, "m1", harness.ImageTool, "hello")
	if err == nil || !strings.Contains(errOut, "/nonexistent/containerd-shim-runc-v2") {
		t.Fatalf("run with a missing delegate: err %v, stderr %q", err, errOut)
	}
	_, _, _ = w.Ctr(t, "container", "delete", "m1")
}
