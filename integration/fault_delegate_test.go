//go:build integration && linux

package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
)

// testStartTimeout is TestFaultDelegate's bound on the delegate's start (test knob).
const testStartTimeout = "5s"

// TestFaultDelegate: each fault of the delegate, through real containerd 2.4. containerd
// reports an error naming the cause, ends consistent, and nothing is left.
func TestFaultDelegate(t *testing.T) {
	w := startFaultDaemon(t, "ISOGUARD_TEST_DELEGATE_START_TIMEOUT="+testStartTimeout)

	// Defect 1: a failed first handshake must not end a healthy wrapper (the daemon runs on
	// one P, where the connection's close callback ran before the failed attempt was given
	// up, and the wrapper took it for its delegate's end).
	t.Run("close-first-connection", func(t *testing.T) {
		c := w.newCase("f-accept")
		w.MustCtr(t, w.runArgs(c, "accept", "close-first")...)
		if got := w.faultsReached(c.id); !strings.Contains(got, "accept close-first") {
			t.Fatalf("the delegate did not close the first connection: %q", got)
		}
		out := w.MustCtr(t, "task", "exec", "--exec-id", "e1", c.id, harness.ImageTool, "hello")
		if strings.TrimSpace(out) != "hello from isoguard" {
			t.Fatalf("exec after the first connection was closed: %q", out)
		}
		if got := taskStatusIn(t, w, c.id); got != "RUNNING" {
			t.Fatalf("task %s is %q, want RUNNING", c.id, got)
		}
		w.stopAndDelete(t, c)
	})

	t.Run("start-exits", func(t *testing.T) {
		c := w.newCase("f-start-exit")
		r := awaitCtr(t, w.ctrAsync(t, time.Minute, w.runArgs(c, "start", "exit")...), time.Minute)
		expectFailure(t, r, "injected fault start=exit")
		w.assertClean(t, c)
	})

	t.Run("start-exits-after-spawning-its-daemon", func(t *testing.T) {
		c := w.newCase("f-start-spawn")
		r := awaitCtr(t, w.ctrAsync(t, time.Minute, w.runArgs(c, "start", "exit-after-spawn")...), time.Minute)
		expectFailure(t, r, "injected fault start=exit-after-spawn")
		w.assertClean(t, c)
	})

	// The delegate's start spawns its daemon and then does not answer within its bound
	// (the test build's 5 s; 2 min in a release): the wrapper kills it, cleans up the
	// daemon it spawned (whose pid nobody told) and says why.
	t.Run("start-slower-than-its-timeout", func(t *testing.T) {
		c := w.newCase("f-start-slow")
		res := w.ctrAsync(t, time.Minute, w.runArgs(c, "start", "delay:60s")...)
		w.awaitFault(t, c.id, "start delay:60s")
		r := awaitCtr(t, res, time.Minute)
		expectFailure(t, r, "start failed: did not answer within "+testStartTimeout)
		if r.took > 30*time.Second {
			t.Errorf("the failed start took %v", r.took)
		}
		w.assertClean(t, c)
	})

	// The delegate's daemon exits as soon as it runs, after its start answered: the
	// wrapper cannot connect, and containerd's Create says so.
	t.Run("daemon-exits-after-start", func(t *testing.T) {
		c := w.newCase("f-serve-exit")
		r := awaitCtr(t, w.ctrAsync(t, time.Minute, w.runArgs(c, "serve", "exit")...), time.Minute)
		expectFailure(t, r, "did not answer Connect within "+testConnectTimeout)
		// Nothing listens (not: something listens and does not answer, connect-hangs).
		expectFailure(t, r, "connection refused", "no such file or directory")
		w.assertClean(t, c)
	})

	for _, a := range []string{"exit", "exit-after"} {
		t.Run("create-"+a, func(t *testing.T) {
			c := w.newCase("f-create-" + a)
			r := awaitCtr(t, w.ctrAsync(t, time.Minute, w.runArgs(c, "Create", a)...), time.Minute)
			expectFailure(t, r, "Create: delegate shim connection closed")
			w.assertClean(t, c)
		})
	}

	t.Run("exec-exit", func(t *testing.T) {
		c := w.newCase("f-exec-exit")
		w.MustCtr(t, w.runArgs(c, "Exec", "exit")...)
		_, errOut, err := w.Ctr(t, "task", "exec", "--exec-id", "e1", c.id, harness.ImageTool, "hello")
		expectFailure(t, ctrResult{errOut: errOut, err: err}, "Exec: delegate shim connection closed")
		w.assertClean(t, c)
	})

	// Slower than one connect attempt (2 s): the wrapper tries again and succeeds.
	t.Run("connect-slower-than-an-attempt", func(t *testing.T) {
		c := w.newCase("f-connect-slow")
		r := awaitCtr(t, w.ctrAsync(t, time.Minute, w.runArgs(c, "Connect", "delay-once:2500ms")...), time.Minute)
		if r.err != nil {
			t.Fatalf("run with a first handshake slower than an attempt: %v: %s", r.err, r.errOut)
		}
		if r.took < 2*time.Second {
			t.Errorf("run took %v: the slow first handshake was not waited for", r.took)
		}
		if got := w.faultsReached(c.id); !strings.Contains(got, "Connect delay-once") {
			t.Fatalf("the delegate's first Connect was not delayed: %q", got)
		}
		w.stopAndDelete(t, c)
	})

	// Slower than the whole connect timeout (the test build's 3 s; 30 s in a release).
	t.Run("connect-hangs", func(t *testing.T) {
		c := w.newCase("f-connect-hang")
		r := awaitCtr(t, w.ctrAsync(t, time.Minute, w.runArgs(c, "Connect", "hang")...), time.Minute)
		expectFailure(t, r, "did not answer Connect within "+testConnectTimeout+": context deadline exceeded")
		w.assertClean(t, c)
	})

	// A Create that never answers: the client gives up (ctr's own deadline), containerd
	// cleans the task up through the wrapper.
	t.Run("create-hangs", func(t *testing.T) {
		c := w.newCase("f-create-hang")
		r := awaitCtr(t, w.ctrAsync(t, time.Minute, append([]string{"--timeout", "3s"}, w.runArgs(c, "Create", "hang")...)...), time.Minute)
		expectFailure(t, r, "context deadline exceeded")
		w.assertClean(t, c)
	})
}
