//go:build integration && linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
	"github.com/isoguard/isoguard/internal/enforce"
	"github.com/isoguard/isoguard/internal/proc"
)

// Fault injection through real containerd 2.4: the wrapper's delegate is
// containerd-shim-faulty-v1 (integration/cmd, a TEST PROGRAM: containerd's runc shim with
// faults chosen per container by annotations), and the wrapper itself is signalled at the
// points that matter. Every case ends with the same checks (faultDaemon.assertClean):
// containerd's task and container lists agree, the container can be deleted, runc keeps no
// container of that id, no wrapper, delegate or container process is left, and no dead
// socket in /run/containerd/s (but the runc shim's debug socket, which a runc shim that
// died leaves whoever started it). A failed start or Create must name its cause in the
// error ctr prints. One containerd serves all cases of a test, one after the other.
// The tests: fault_delegate_test.go (the delegate's faults), fault_wrapper_test.go (the
// wrapper signalled, containerd restarted); docs/threat-model.md#faults lists them.

const (
	faultyPkg = "./integration/cmd/containerd-shim-faulty-v1"
	// faultAnnotation prefixes the faulty delegate's fault annotations (its package doc).
	faultAnnotation = "test.isoguard.dev/fault."
	// faultLog is the faulty delegate's record of the faults it reached, in the bundle.
	faultLog = "faulty.log"
	// testKnobs builds the wrapper with its test-only knobs (shim/testknobs.go,
	// shim/internal/relay/testknobs.go): ISOGUARD_TEST_CONNECT_TIMEOUT replaces the 30 s
	// connect timeout, so that a delegate that never answers fails a Create within
	// seconds; ISOGUARD_TEST_DELEGATE_START_TIMEOUT the 2 min bound on the delegate's start.
	testKnobs          = "isoguard_testknobs"
	testConnectTimeout = "3s"
)

// faultDaemon is a private containerd 2.4 whose test runtime is the isoguard shim (built
// with the test knob) and whose delegate is the faulty shim.
type faultDaemon struct {
	*harness.Daemon
	shim   string // containerd-shim-isoguard-v1 (test build)
	faulty string // containerd-shim-faulty-v1
	policy string // node policy file
	n      int    // cases so far: each gets its own sleep argument
}

// startFaultDaemon starts it; env is added to containerd's environment (and so the
// wrapper's).
func startFaultDaemon(t *testing.T, env ...string) *faultDaemon {
	t.Helper()
	w := &faultDaemon{
		shim:   harness.BuildBinaryTags(t, "./cmd/containerd-shim-isoguard-v1", testKnobs),
		faulty: harness.BuildBinary(t, faultyPkg),
	}
	sockets := harness.Sockets()
	dir := t.TempDir()
	w.policy = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(w.policy, []byte("placeholder"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.Daemon = harness.ContainerdWith(t, "2.4", harness.Options{Env: append([]string{
		enforce.ConfigEnv + "=" + w.policy,
		enforce.AuditEnv + "=" + filepath.Join(dir, "audit", "audit.log"),
		"ISOGUARD_TEST_CONNECT_TIMEOUT=" + testConnectTimeout,
	}, env...)})
	if err := os.WriteFile(w.policy, w.policyYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.ImportImage(t, w.Daemon)
	t.Cleanup(func() {
		w.AssertNoShims(t, 10*time.Second)
		harness.AssertNoProcesses(t, 5*time.Second, w.shim, w.faulty)
		harness.AssertNoDeadSockets(t, sockets, 5*time.Second)
	})
	return w
}

func (w *faultDaemon) policyYAML() []byte {
	return []byte(policyYAML(w.Daemon, fmt.Sprintf("delegate:\n  path: %s\n", w.faulty)))
}

func (w *faultDaemon) bundle(id string) string {
	return filepath.Join(w.State, "io.containerd.runtime.v2.task", w.Namespace, id)
}

// faultCase is one container of a case: its id, its own sleep argument (to find its
// process) and its sockets before it started.
type faultCase struct {
	id      string
	sleep   string
	sockets map[string]bool
}

func (w *faultDaemon) newCase(id string) *faultCase {
	w.n++
	return &faultCase{id: id, sleep: fmt.Sprint(4000 + w.n), sockets: harness.Sockets()}
}

// runArgs is `ctr run -d` of the case's container through the wrapper, with the faults as
// annotations, sleeping.
func (w *faultDaemon) runArgs(c *faultCase, faults ...string) []string {
	args := []string{"run", "-d", "--runtime", w.shim}
	for i := 0; i+1 < len(faults); i += 2 {
		args = append(args, "--annotation", faultAnnotation+faults[i]+"="+faults[i+1])
	}
	return append(args, harness.ImageRef, c.id, harness.ImageTool, "sleep", c.sleep)
}

// ctrResult is a ctr command's outcome.
type ctrResult struct {
	out, errOut string
	err         error
	took        time.Duration
}

// ctrAsync runs ctr in the background, bounded by timeout; the result arrives on the
// channel.
func (w *faultDaemon) ctrAsync(t *testing.T, timeout time.Duration, args ...string) <-chan ctrResult {
	t.Helper()
	done := make(chan ctrResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := w.CtrCmd(ctx, args...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		start := time.Now()
		err := cmd.Run()
		done <- ctrResult{so.String(), se.String(), err, time.Since(start)}
	}()
	return done
}

func awaitCtr(t *testing.T, ch <-chan ctrResult, within time.Duration) ctrResult {
	t.Helper()
	select {
	case r := <-ch:
		t.Logf("ctr finished after %v: err %v, stderr %q", r.took.Round(time.Millisecond), r.err, strings.TrimSpace(r.errOut))
		return r
	case <-time.After(within):
		t.Fatalf("ctr did not finish within %v", within)
		return ctrResult{}
	}
}

// expectFailure checks that a ctr command failed with an error naming want (or one of
// the alternatives, each naming the same cause).
func expectFailure(t *testing.T, r ctrResult, want string, alternatives ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("ctr succeeded; want an error naming %q (stdout %q)", want, r.out)
	}
	for _, w := range append([]string{want}, alternatives...) {
		if strings.Contains(r.errOut, w) {
			return
		}
	}
	t.Fatalf("ctr's error does not name the cause %q %q:\n%s", want, alternatives, r.errOut)
}

// listed returns the ids of `ctr task ls` (with their status) and `ctr container ls`.
func (w *faultDaemon) listed(t *testing.T) (tasks map[string]string, containers []string) {
	t.Helper()
	tasks = map[string]string{}
	out := w.MustCtr(t, "task", "ls")
	for _, l := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(l); len(f) == 3 {
			tasks[f[0]] = f[2]
		}
	}
	out = w.MustCtr(t, "container", "ls", "-q")
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			containers = append(containers, l)
		}
	}
	return tasks, containers
}

// assertConsistent: every task containerd lists has its container.
func (w *faultDaemon) assertConsistent(t *testing.T) {
	t.Helper()
	tasks, containers := w.listed(t)
	for id := range tasks {
		if !slices.Contains(containers, id) {
			t.Errorf("task %s is listed without its container (containers: %v)", id, containers)
		}
	}
}

// leftovers lists the processes of a case: any process mentioning the daemon's address
// with -id ID (wrapper, delegate, their start and delete), or the case's container process.
func (w *faultDaemon) leftovers(c *faultCase) []harness.Process {
	var left []harness.Process
	for _, p := range harness.Processes() {
		if (strings.Contains(p.Cmdline, w.Address) && strings.Contains(p.Cmdline+" ", "-id "+c.id+" ")) ||
			p.Cmdline == harness.ImageTool+" sleep "+c.sleep {
			left = append(left, p)
		}
	}
	return left
}

// assertClean is the end of every case whose container never ran or was stopped by the
// fault: once containerd has cleaned up, it lists no task for the container, the container
// is deleted, runc has no container of that id (no created or running container is left),
// no process of the case is left (also by proc.Shims, the wrapper's own search for a
// shim's processes) and no dead socket.
func (w *faultDaemon) assertClean(t *testing.T, c *faultCase) {
	t.Helper()
	waitFor(t, "containerd to list no task "+c.id, 15*time.Second, func() bool {
		tasks, _ := w.listed(t)
		_, ok := tasks[c.id]
		return !ok
	})
	w.assertConsistent(t)
	if _, containers := w.listed(t); slices.Contains(containers, c.id) {
		w.MustCtr(t, "container", "delete", c.id)
	}
	if _, containers := w.listed(t); slices.Contains(containers, c.id) {
		t.Errorf("container %s is still listed after its deletion", c.id)
	}
	waitFor(t, "runc to forget "+c.id, 10*time.Second, func() bool { return !w.runcHas(c.id) })
	deadline := time.Now().Add(10 * time.Second)
	for left := w.leftovers(c); len(left) > 0; left = w.leftovers(c) {
		if time.Now().After(deadline) {
			t.Errorf("processes of %s left behind: %v", c.id, left)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The same by the wrapper's own search, within the same bound: a `delete` containerd
	// runs for its cleanup (the delegate's, in the wrapper's place) may still be exiting.
	for _, bin := range []string{w.shim, w.faulty} {
		for pids := proc.Shims(bin, w.Namespace, c.id, w.Address); len(pids) > 0; pids = proc.Shims(bin, w.Namespace, c.id, w.Address) {
			if time.Now().After(deadline) {
				t.Errorf("%s processes of %s left behind: %v", filepath.Base(bin), c.id, pids)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A runc shim that dies (here: the faulty delegate's injected exits) leaves its debug
	// socket, whoever started it: neither containerd nor the runc shim's delete removes it
	// (TestShimFaultPaths/delegate-dies). It is not the wrapper's to know; every other
	// socket is checked.
	debug := harness.RuncShimDebugSocket(w.Daemon, w.Namespace, c.id)
	if conn, err := net.DialTimeout("unix", debug, 100*time.Millisecond); err == nil {
		conn.Close()
	} else if os.Remove(debug) == nil {
		t.Logf("removed the delegate's debug socket %s", debug)
	}
	harness.AssertNoDeadSockets(t, c.sockets, 10*time.Second)
}

// stopAndDelete ends a running case normally: kill, delete the task and the container.
func (w *faultDaemon) stopAndDelete(t *testing.T, c *faultCase) {
	t.Helper()
	w.MustCtr(t, "task", "kill", "-s", "SIGKILL", c.id)
	deleteTask(t, w.Daemon, c.id)
	w.assertClean(t, c)
}

// faultsReached is the faulty delegate's log of the faults it reached for id.
func (w *faultDaemon) faultsReached(id string) string {
	return readFile(filepath.Join(w.bundle(id), faultLog))
}

// awaitFault waits until the faulty delegate reports it reached the fault "point action".
func (w *faultDaemon) awaitFault(t *testing.T, id, fault string) {
	t.Helper()
	waitFor(t, "the delegate to reach "+fault, 20*time.Second, func() bool {
		return strings.Contains(w.faultsReached(id), fault+" ")
	})
}

// wrapperDaemonPid finds the wrapper's daemon (`serve`) of id.
func (w *faultDaemon) wrapperDaemonPid(id string) int {
	for _, p := range harness.ProcessesMatching(w.shim + " ") {
		if strings.Contains(p.Cmdline+" ", "-id "+id+" ") && strings.HasSuffix(p.Cmdline, " serve") {
			return p.PID
		}
	}
	return 0
}

func taskStatusIn(t *testing.T, w *faultDaemon, id string) string {
	t.Helper()
	tasks, _ := w.listed(t)
	return tasks[id]
}

// runcHas reports whether runc keeps a container id of the daemon's namespace.
func (w *faultDaemon) runcHas(id string) bool {
	_, err := os.Stat(filepath.Join("/run/containerd/runc", w.Namespace, id))
	return err == nil
}
