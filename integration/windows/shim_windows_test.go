//go:build windows

package windows_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/windows"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	ibundle "github.com/isoguard/isoguard/internal/bundle"
)

// debugOptions is what every start gets on stdin: Debug makes runhcs's serve log at debug
// level into <bundle>\panic.log, where Create's parsed options show what runhcs received.
var debugOptions = &runhcsopts.Options{Debug: true}

// stdinFormats are the two stdin encodings containerd uses for start.
// version is the task API version the wrapper answers with: 2 for containerd before 2.3
// (a bare Any), 3 for containerd 2.3+ (BootstrapParams), which then reuses a pod's wrapper
// for the pod's workload containers.
var stdinFormats = []struct {
	name    string
	stdin   func(t *testing.T, id, ns string) []byte
	version int
}{
	{"any", func(t *testing.T, _, _ string) []byte { return stdinAny(t, debugOptions) }, 2},
	{"bootstrap", func(t *testing.T, id, ns string) []byte { return stdinBootstrap(t, id, ns, debugOptions) }, 3},
}

// started is a wrapper instance a test started and checked.
type started struct {
	id, bundle string
	rec        *ibundle.Record
}

// mustStart runs the wrapper's start for a sandbox or standalone container and checks
// everything containerd and the next wrapper process rely on (test 1).
func (x *h) mustStart(id, bundle string, stdin []byte, sandbox bool) *started {
	x.t.Helper()
	return x.mustStartVersion(id, bundle, stdin, sandbox, 2)
}

// mustStartVersion is mustStart for a start whose answer is task API version `version`:
// 2 as the plain address, 3 as JSON (what containerd's parseStartResponse reads).
func (x *h) mustStartVersion(id, bundle string, stdin []byte, sandbox bool, version int) *started {
	t := x.t
	t.Helper()
	r := x.startWrapper(id, bundle, stdin)
	if r.code != 0 {
		t.Fatalf("wrapper start %s: %s; daemon log:\n%s", id, r, tryRead(filepath.Join(bundle, ibundle.DaemonLog)))
	}
	// containerd reads stdout and stderr combined: exactly the answer, nothing else.
	want := x.wrapperPipe(id)
	if version != 2 {
		want = fmt.Sprintf(`{"version":%d,"address":%q,"protocol":"ttrpc"}`, version, x.wrapperPipe(id))
	}
	if got := string(r.stdout); got != want {
		t.Errorf("start stdout = %q, want exactly %q", got, want)
	}
	if len(r.stderr) != 0 {
		t.Errorf("start stderr = %q, want nothing (containerd reads it with stdout)", r.stderr)
	}
	if string(r.stdout) == x.runhcsPipe(id) {
		t.Errorf("start answered runhcs's own pipe %s: containerd would bypass the wrapper", r.stdout)
	}
	// The restore files name the wrapper (runhcs wrote its own first; the wrapper replaced them).
	if got := readFile(t, filepath.Join(bundle, ibundle.AddressFile)); got != x.wrapperPipe(id) {
		t.Errorf("bundle address file = %q, want the wrapper pipe %q", got, x.wrapperPipe(id))
	}
	var bj struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(bundle, ibundle.BootstrapFile))), &bj); err != nil || bj.Address != x.wrapperPipe(id) || bj.Version != version || bj.Protocol != "ttrpc" {
		t.Errorf("bootstrap.json = %+v (%v), want version %d, ttrpc, the wrapper pipe", bj, err, version)
	}
	rec, err := readRecord(bundle)
	if err != nil {
		t.Fatalf("wrapper record: %v", err)
	}
	switch {
	case rec.ID != id || rec.Namespace != x.ns || rec.Sandbox != sandbox:
		t.Errorf("record id/namespace/sandbox = %s/%s/%v, want %s/%s/%v", rec.ID, rec.Namespace, rec.Sandbox, id, x.ns, sandbox)
	case rec.Address != x.wrapperPipe(id):
		t.Errorf("record address = %q, want %q", rec.Address, x.wrapperPipe(id))
	case rec.Delegate.Address != x.runhcsPipe(id):
		t.Errorf("record delegate address = %q, want runhcs's pipe %q", rec.Delegate.Address, x.runhcsPipe(id))
	case rec.Delegate.Version != 2 || rec.Delegate.StdinFormat != "any":
		t.Errorf("record delegate version/stdin = %d/%q, want 2/any (runhcs v0.14 reads a bare Any only)", rec.Delegate.Version, rec.Delegate.StdinFormat)
	}
	if pid, err := readPidFile(bundle); err != nil || int(pid) != rec.Pid {
		t.Errorf("shim.pid = %d (%v), want the wrapper daemon's pid %d", pid, err, rec.Pid)
	}
	if got := imageName(uint32(rec.Pid)); !strings.EqualFold(got, wrapperExe) {
		t.Errorf("wrapper pid %d runs %q, want a live %s", rec.Pid, got, wrapperExe)
	}
	if got := imageName(uint32(rec.Delegate.Pid)); !strings.EqualFold(got, runhcsExe) {
		t.Errorf("delegate pid %d runs %q, want a live %s", rec.Delegate.Pid, got, runhcsExe)
	}
	return &started{id: id, bundle: bundle, rec: rec}
}

// shutdown sends Shutdown through c and checks that the wrapper and runhcs are gone and
// their pipes no longer answer.
func (x *h) shutdown(c *conn, s *started) {
	t := x.t
	t.Helper()
	ctx, cancel := rpcCtx()
	defer cancel()
	// Like containerd (core/runtime/v2/shim.go), a connection closed while Shutdown's
	// answer is awaited counts as done.
	if _, err := c.task.Shutdown(ctx, &taskv2.ShutdownRequest{ID: s.id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		t.Errorf("Shutdown %s through %s: %v", s.id, c.addr, err)
	}
	c.Close()
	x.assertGone(s)
}

func (x *h) assertGone(s *started) {
	t := x.t
	t.Helper()
	if !waitGone(uint32(s.rec.Pid), goneTimeout) {
		t.Errorf("wrapper daemon %d of %s still running %v after it should have exited", s.rec.Pid, s.id, goneTimeout)
	}
	// A wrapper whose start was denied has no delegate (pid 0 is wine's idle process).
	if s.rec.Delegate.Pid != 0 && !waitGone(uint32(s.rec.Delegate.Pid), goneTimeout) {
		t.Errorf("runhcs serve %d of %s still running %v after it should have exited", s.rec.Delegate.Pid, s.id, goneTimeout)
	}
	for _, addr := range []string{s.rec.Address, s.rec.Delegate.Address} {
		if ok, _ := pipeAnswers(addr); addr != "" && ok {
			t.Errorf("pipe %s still answers after %s ended", addr, s.id)
		}
	}
}

func tryRead(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(data)
}

// sameStatus checks that the error relayed by the wrapper is the delegate's own: same
// ttrpc status code and message.
func sameStatus(t *testing.T, what string, viaWrapper, direct error, wantCode codes.Code) {
	t.Helper()
	if viaWrapper == nil || direct == nil {
		t.Errorf("%s: want errors from both, got wrapper %v, runhcs %v", what, viaWrapper, direct)
		return
	}
	w, d := status.Convert(viaWrapper), status.Convert(direct)
	if w.Code() != d.Code() || w.Message() != d.Message() {
		t.Errorf("%s: wrapper answered %v %q, runhcs directly %v %q: the wrapper must relay runhcs's error intact", what, w.Code(), w.Message(), d.Code(), d.Message())
	}
	if d.Code() != wantCode {
		t.Errorf("%s: runhcs answered %v %q, want %v", what, d.Code(), d.Message(), wantCode)
	}
	t.Logf("%s: both answered %v %q", what, w.Code(), w.Message())
}

// parsedOptions returns the options of every "parsed runhcs runtime options" debug line in
// runhcs's panic.log (createInternal logs the Create options it decoded).
func parsedOptions(t *testing.T, bundle string) []map[string]any {
	t.Helper()
	re := regexp.MustCompile(`msg="parsed runhcs runtime options" options=("(?:[^"\\]|\\.)*")`)
	var out []map[string]any
	for _, m := range re.FindAllStringSubmatch(tryRead(filepath.Join(bundle, "panic.log")), -1) {
		s, err := strconv.Unquote(m[1])
		if err != nil {
			t.Fatalf("panic.log options %s: %v", m[1], err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("panic.log options %s: %v", s, err)
		}
		out = append(out, v)
	}
	return out
}

// TestStartAndProxy: for each stdin format containerd uses, the wrapper's start answers
// only its own pipe and records runhcs's; through that pipe the task API reaches the real
// runhcs, whose answers and errors come back intact; shimdiag is refused; Shutdown ends
// both processes (tests 1, 2, 5).
func TestStartAndProxy(t *testing.T) {
	for _, format := range stdinFormats {
		t.Run(format.name, func(t *testing.T) {
			x := newH(t)
			id := "c-" + format.name
			s := x.mustStartVersion(id, x.bundle(id, nil), format.stdin(t, id, x.ns), false, format.version)

			wc, wConn := dialTTRPC(t, x.wrapperPipe(id))
			defer wc.Close()
			dc, dConn := dialTTRPC(t, x.runhcsPipe(id))
			defer dc.Close()

			// Connect is relayed: containerd sees runhcs's pid (runhcs reports its serve
			// process as both shim and task pid on Windows).
			if wConn.GetShimPid() != dConn.GetShimPid() || wConn.GetTaskPid() != dConn.GetTaskPid() || int(dConn.GetShimPid()) != s.rec.Delegate.Pid {
				t.Errorf("Connect: wrapper %v, runhcs %v, recorded runhcs pid %d", wConn, dConn, s.rec.Delegate.Pid)
			}

			ctx, cancel := rpcCtx()
			defer cancel()

			// State of a task that does not exist: runhcs's NotFound, intact.
			_, werr := wc.task.State(ctx, &taskv2.StateRequest{ID: "no-such-task"})
			_, derr := dc.task.State(ctx, &taskv2.StateRequest{ID: "no-such-task"})
			sameStatus(t, "State(no-such-task)", werr, derr, codes.NotFound)
			if !strings.Contains(status.Convert(werr).Message(), "no-such-task") {
				t.Errorf("State error %q does not name the task", status.Convert(werr).Message())
			}

			// Create with Hyper-V options: runhcs fails (no HCS under wine) and its error
			// comes back intact; its debug log shows the options it decoded.
			create := &taskv2.CreateTaskRequest{
				ID:     id,
				Bundle: s.bundle,
				Options: optionsAny(t, &runhcsopts.Options{
					SandboxIsolation: runhcsopts.Options_HYPERVISOR,
					SandboxImage:     "probe-image",
					VmMemorySizeInMb: 1234,
				}),
			}
			_, werr = wc.task.Create(ctx, create)
			if werr == nil {
				t.Fatalf("Create through the wrapper succeeded under wine; expected runhcs's failure")
			}
			got := parsedOptions(t, s.bundle)
			want := map[string]any{"sandbox_isolation": "HYPERVISOR", "sandbox_image": "probe-image", "vm_memory_size_in_mb": float64(1234)}
			if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
				t.Errorf("runhcs panic.log: parsed Create options %v, want exactly one %v (Debug from start's stdin must reach runhcs too); panic.log:\n%s",
					got, want, tryRead(filepath.Join(s.bundle, "panic.log")))
			}
			// The same request straight to runhcs: the same error (with empty layerFolders
			// runhcs stops at its layer precondition, before it would need HCS).
			_, derr = dc.task.Create(ctx, create)
			sameStatus(t, "Create(HYPERVISOR)", werr, derr, codes.FailedPrecondition)

			// Exec into a task runhcs does not have: its NotFound, intact.
			exec := &taskv2.ExecProcessRequest{
				ID: id, ExecID: "probe-exec",
				Spec: &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: []byte(`{"args":["cmd"],"cwd":"C:\\","user":{"username":"ContainerUser"}}`)},
			}
			_, werr = wc.task.Exec(ctx, exec)
			_, derr = dc.task.Exec(ctx, exec)
			sameStatus(t, "Exec(probe-exec)", werr, derr, codes.NotFound)

			// The policy decided start, Create and Exec, each with an audit record
			// (audit_windows.go under wine: LockFileEx, the directory's ACL).
			outcomes := map[string]any{}
			for _, r := range x.auditRecords() {
				if r["id"] == id {
					outcomes[fmt.Sprint(r["call"])] = r["outcome"]
				}
			}
			for _, call := range []string{"start", "create", "exec"} {
				if o, ok := outcomes[call]; !ok || o == "denied" {
					t.Errorf("audit: %s of %s recorded as %v (all records of %s: %v), want a record that is not a denial", call, id, o, id, outcomes)
				}
			}

			// shimdiag: refused by the wrapper, served by runhcs on its own pipe.
			var resp emptypb.Empty
			err := wc.client.Call(ctx, shimDiagService, "DiagPid", &emptypb.Empty{}, &resp)
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("ShimDiag.DiagPid through the wrapper: %v, want PermissionDenied", err)
			}
			err = wc.client.Call(ctx, shimDiagService, "DiagExecInHost", &emptypb.Empty{}, &resp)
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("ShimDiag.DiagExecInHost through the wrapper: %v, want PermissionDenied", err)
			}
			resp.Reset()
			if err := dc.client.Call(ctx, shimDiagService, "DiagPid", &emptypb.Empty{}, &resp); err != nil {
				t.Errorf("ShimDiag.DiagPid on runhcs's own pipe: %v", err)
			} else if pid := varintField(t, resp.ProtoReflect().GetUnknown(), 1); int(pid) != s.rec.Delegate.Pid {
				t.Errorf("ShimDiag.DiagPid on runhcs's pipe = %d, want runhcs's pid %d", pid, s.rec.Delegate.Pid)
			}

			// Shutdown through the wrapper: runhcs exits, so does the wrapper.
			dc.Close()
			x.shutdown(wc, s)
			if _, err := wc.task.State(ctx, &taskv2.StateRequest{ID: id}); err == nil {
				t.Errorf("State after Shutdown answered; want the connection closed")
			}
		})
	}
}

// varintField reads varint field num from raw protobuf bytes.
func varintField(t *testing.T, b []byte, num protowire.Number) uint64 {
	t.Helper()
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			t.Fatalf("bad protobuf: %v", protowire.ParseError(l))
		}
		b = b[l:]
		if n == num && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				t.Fatalf("bad protobuf: %v", protowire.ParseError(l))
			}
			return v
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			t.Fatalf("bad protobuf: %v", protowire.ParseError(l))
		}
		b = b[l:]
	}
	t.Fatalf("field %d not found", num)
	return 0
}

// TestWorkloadJoin: a workload container of a pod the wrapper started gets the sandbox's
// WRAPPER pipe (never runhcs's) and starts nothing; a workload naming a pod the wrapper did
// not start -- never started, or started by runhcs directly -- is refused; deleting a
// workload leaves the pod running (tests 3, 4, 5).
func TestWorkloadJoin(t *testing.T) {
	x := newH(t)
	const sb = "sb"
	s := x.mustStart(sb, x.bundle(sb, sandboxAnn(sb)), stdinAny(t, debugOptions), true)
	procs := shimProcesses(t)

	c1 := x.bundle("c1", workloadAnn(sb))
	r := x.startWrapper("c1", c1, stdinAny(t, debugOptions))
	if r.code != 0 || string(r.stdout) != x.wrapperPipe(sb) || len(r.stderr) != 0 {
		t.Errorf("workload start: %s; want exit 0 and exactly the sandbox's wrapper pipe %q", r, x.wrapperPipe(sb))
	}
	if string(r.stdout) == x.runhcsPipe(sb) {
		t.Errorf("workload start answered runhcs's pipe: containerd would talk to runhcs directly")
	}
	if got := tryRead(filepath.Join(c1, ibundle.AddressFile)); got != x.wrapperPipe(sb) {
		t.Errorf("workload bundle address = %q, want the sandbox's wrapper pipe", got)
	}
	if _, err := os.Stat(filepath.Join(c1, ibundle.RecordFile)); err == nil {
		t.Errorf("workload bundle has a wrapper record of its own")
	}
	if now := shimProcesses(t); fmt.Sprint(now) != fmt.Sprint(procs) {
		t.Errorf("workload start changed the shim processes: before %v, after %v", procs, now)
	}

	// What the wrapper prevents: runhcs's own start for a workload answers the sandbox's
	// RUNHCS pipe.
	direct := x.bundle("c1-direct", workloadAnn(sb))
	if r := x.startRunhcs("c1-direct", direct, stdinAny(t, debugOptions)); r.code != 0 || string(r.stdout) != x.runhcsPipe(sb) {
		t.Errorf("runhcs start for a workload: %s; expected runhcs's sandbox pipe %q (the bypass the wrapper closes)", r, x.runhcsPipe(sb))
	}

	// A pod that was never started.
	c2 := x.bundle("c2", workloadAnn("never-started"))
	r = x.startWrapper("c2", c2, stdinAny(t, debugOptions))
	if r.code == 0 || len(r.stdout) != 0 || !strings.Contains(string(r.stderr), "did not start") {
		t.Errorf("workload of a pod never started: %s; want a refusal containing \"did not start\" and no answer", r)
	}
	if _, err := os.Stat(filepath.Join(c2, ibundle.AddressFile)); err == nil {
		t.Errorf("refused workload got an address file")
	}

	// A pod started by runhcs directly, without the wrapper: its bundle has runhcs's
	// address and shim.pid but no wrapper record.
	rogue := x.bundle("rogue", sandboxAnn("rogue"))
	if r := x.startRunhcs("rogue", rogue, stdinAny(t, debugOptions)); r.code != 0 {
		t.Fatalf("runhcs start of a sandbox: %s", r)
	}
	c3 := x.bundle("c3", workloadAnn("rogue"))
	r = x.startWrapper("c3", c3, stdinAny(t, debugOptions))
	if r.code == 0 || len(r.stdout) != 0 || !strings.Contains(string(r.stderr), "did not start") {
		t.Errorf("workload of a pod runhcs started directly: %s; want a refusal containing \"did not start\"", r)
	}
	rc, _ := dialTTRPC(t, x.runhcsPipe("rogue"))
	ctx, cancel := rpcCtx()
	defer cancel()
	if _, err := rc.task.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "rogue"}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		t.Errorf("Shutdown of the directly started runhcs: %v", err)
	}
	rc.Close()

	// containerd deletes a workload container's bundle with the shim's delete: the wrapper
	// relays runhcs's answer and leaves the pod alone.
	dr := x.runShim(x.env.wrapper, c1, nil, x.shimArgs("c1", c1, "delete")...)
	checkDeleteResponse(t, "workload delete", dr, time.Now())
	if !alive(uint32(s.rec.Pid)) || !alive(uint32(s.rec.Delegate.Pid)) {
		t.Errorf("deleting workload c1 ended the pod's wrapper (%v) or runhcs (%v)", alive(uint32(s.rec.Pid)), alive(uint32(s.rec.Delegate.Pid)))
	}

	wc, _ := dialTTRPC(t, x.wrapperPipe(sb))
	x.shutdown(wc, s)
}

// checkDeleteResponse decodes a delete's stdout as containerd does: a protobuf
// containerd.task.v2.DeleteResponse. runhcs answers exit status 255 at "now".
func checkDeleteResponse(t *testing.T, what string, r run, ranAt time.Time) *taskv2.DeleteResponse {
	t.Helper()
	if r.code != 0 {
		t.Errorf("%s: %s", what, r)
		return nil
	}
	var resp taskv2.DeleteResponse
	if err := proto.Unmarshal(r.stdout, &resp); err != nil {
		t.Errorf("%s: stdout %x is not a DeleteResponse: %v", what, r.stdout, err)
		return nil
	}
	at := resp.GetExitedAt().AsTime()
	if resp.GetExitStatus() != 255 || resp.GetPid() != 0 || at.Before(ranAt.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("%s: DeleteResponse %v, want runhcs's exit_status 255, no pid, exited_at about %v", what, &resp, ranAt)
	}
	// The answer is runhcs's: its delete prints its trace span on stderr, relayed.
	if !strings.Contains(string(r.stderr), "name=delete") {
		t.Errorf("%s: stderr %q lacks runhcs's delete span (the wrapper relays runhcs's stderr)", what, r.stderr)
	}
	return &resp
}

// TestDelete: the wrapper's delete relays runhcs's DeleteResponse, after a Shutdown and
// while the instance still runs (then it also ends the wrapper and runhcs, which a wrapper
// killed before its Shutdown would leave behind) (tests 4, 5).
func TestDelete(t *testing.T) {
	t.Run("after-shutdown", func(t *testing.T) {
		x := newH(t)
		s := x.mustStart("d1", x.bundle("d1", nil), stdinAny(t, debugOptions), false)
		wc, _ := dialTTRPC(t, x.wrapperPipe("d1"))
		x.shutdown(wc, s)

		t0 := time.Now()
		r := x.runShim(x.env.wrapper, s.bundle, nil, x.shimArgs("d1", s.bundle, "delete")...)
		checkDeleteResponse(t, "wrapper delete", r, t0)
		// runhcs's own delete, for comparison: the same answer.
		r = x.runShim(x.env.runhcs, s.bundle, nil, x.shimArgs("d1", s.bundle, "delete")...)
		checkDeleteResponse(t, "runhcs delete", r, t0)
	})
	t.Run("while-running", func(t *testing.T) {
		x := newH(t)
		s := x.mustStart("d2", x.bundle("d2", nil), stdinAny(t, debugOptions), false)
		t0 := time.Now()
		r := x.runShim(x.env.wrapper, s.bundle, nil, x.shimArgs("d2", s.bundle, "delete")...)
		checkDeleteResponse(t, "wrapper delete", r, t0)
		// runhcs's delete does not end its serve; the wrapper's delete ends both.
		x.assertGone(s)
	})
}

// TestNoPolicy: without a node policy file the wrapper denies (fail closed) without ever
// starting runhcs. As for every denied start (docs/shim.md), start still answers its own
// pipe, and the denial, naming the missing file, answers containerd's Create as
// PermissionDenied (containerd passes a Create's code on, not a start's); the denial is
// audited and Shutdown leaves nothing running.
func TestNoPolicy(t *testing.T) {
	x := newH(t)
	if err := os.Remove(x.policy); err != nil {
		t.Fatal(err)
	}
	id := "np"
	b := x.bundle(id, nil)
	r := x.startWrapper(id, b, stdinAny(t, debugOptions))
	if r.code != 0 || string(r.stdout) != x.wrapperPipe(id) || len(r.stderr) != 0 {
		t.Fatalf("start without a policy file: %s; want exactly the wrapper's pipe (the denial answers Create)", r)
	}
	rec, err := readRecord(b)
	if err != nil || rec.Delegate.Path != "" || rec.Delegate.Pid != 0 || !strings.Contains(rec.Denied, x.policy) {
		t.Fatalf("record %+v (%v): want the denial naming %s and no delegate", rec, err, x.policy)
	}
	// No runhcs runs (dialling its never-created pipe can take a minute under wine).
	for pid, exe := range shimProcesses(t) {
		if _, ok := x.before[pid]; !ok && strings.EqualFold(exe, runhcsExe) {
			t.Errorf("runhcs (pid %d) runs although the policy denied", pid)
		}
	}
	wc, c := dialTTRPC(t, x.wrapperPipe(id))
	defer wc.Close()
	if int(c.GetShimPid()) != rec.Pid {
		t.Errorf("Connect answered shim pid %d, want the wrapper's own %d (no delegate runs)", c.GetShimPid(), rec.Pid)
	}
	ctx, cancel := rpcCtx()
	defer cancel()
	_, err = wc.task.Create(ctx, &taskv2.CreateTaskRequest{ID: id, Bundle: b, Options: optionsAny(t, debugOptions)})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), x.policy) {
		t.Errorf("Create after a denied start: %v; want PermissionDenied naming %s", err, x.policy)
	}
	if got := parsedOptions(t, b); len(got) != 0 {
		t.Errorf("a denied Create reached runhcs: it parsed %v", got)
	}
	denied := false
	for _, rec := range x.auditRecords() {
		if rec["id"] == id && rec["call"] == "start" && rec["outcome"] == "denied" && strings.Contains(fmt.Sprint(rec["error"]), x.policy) {
			denied = true
		}
	}
	if !denied {
		t.Errorf("no audit record of the denied start naming %s: %v", x.policy, x.auditRecords())
	}
	x.shutdown(wc, &started{id: id, bundle: b, rec: rec})
}

// TestDelegateDiscovery: the delegate comes from the node policy file's delegate.path when
// set, else from -publish-binary's folder; with neither, start fails cleanly.
func TestDelegateDiscovery(t *testing.T) {
	t.Run("policy-file", func(t *testing.T) {
		x := newH(t)
		delegate := filepath.Join(x.dir, "delegate", runhcsExe)
		copyFile(t, x.env.runhcs, delegate)
		x.writePolicy(delegate)
		// -publish-binary's folder has a runhcs too: the policy file must win.
		s := x.mustStart("p1", x.bundle("p1", nil), stdinAny(t, debugOptions), false)
		if !strings.EqualFold(s.rec.Delegate.Path, delegate) {
			t.Errorf("delegate = %s, want %s from the policy file", s.rec.Delegate.Path, delegate)
		}
		wc, _ := dialTTRPC(t, x.wrapperPipe("p1"))
		x.shutdown(wc, s)
	})
	t.Run("beside-containerd", func(t *testing.T) {
		x := newH(t)
		s := x.mustStart("p2", x.bundle("p2", nil), stdinAny(t, debugOptions), false)
		if !strings.EqualFold(s.rec.Delegate.Path, x.env.runhcs) {
			t.Errorf("delegate = %s, want %s beside -publish-binary", s.rec.Delegate.Path, x.env.runhcs)
		}
		wc, _ := dialTTRPC(t, x.wrapperPipe("p2"))
		x.shutdown(wc, s)
	})
	t.Run("missing", func(t *testing.T) {
		x := newH(t)
		lone := filepath.Join(x.dir, "lone", containerdExe)
		writeFile(t, lone, "")
		b := x.bundle("p3", nil)
		r := x.runShim(x.env.wrapper, b, stdinAny(t, debugOptions),
			"-namespace", x.ns, "-address", fakeContainerd, "-publish-binary", lone, "-id", "p3", "start")
		if r.code == 0 || len(r.stdout) != 0 || !strings.Contains(string(r.stderr), runhcsExe) || !strings.Contains(string(r.stderr), "not found") {
			t.Errorf("start without a delegate: %s; want a failure naming %s not found", r, runhcsExe)
		}
		if ok, _ := pipeAnswers(x.wrapperPipe("p3")); ok {
			t.Errorf("a wrapper pipe answers after a failed start")
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestPipeSecurity reads the security descriptor of the wrapper's pipe through a client
// handle: a protected DACL granting GENERIC_ALL (mapped: FILE_ALL_ACCESS) to SYSTEM and
// BUILTIN\Administrators and nobody else (shim.PipeSDDL, threats T12) (test 6).
func TestPipeSecurity(t *testing.T) {
	x := newH(t)
	s := x.mustStart("sd", x.bundle("sd", nil), stdinAny(t, debugOptions), false)
	wc, _ := dialTTRPC(t, x.wrapperPipe("sd")) // past wine's first-connection hang
	defer func() { x.shutdown(wc, s) }()

	sd := pipeSecurity(t, x.wrapperPipe("sd"))
	t.Logf("wrapper pipe SD: %s", sd)
	ctl, _, err := sd.Control()
	if err != nil {
		t.Fatal(err)
	}
	if ctl&windows.SE_DACL_PROTECTED == 0 {
		t.Errorf("DACL not protected (control %#x): inheritable ACEs could be added", ctl)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		t.Fatalf("no DACL (%v): a NULL DACL admits everyone", err)
	}
	want := map[string]bool{"S-1-5-18": false, "S-1-5-32-544": false}
	for i := uint32(0); i < uint32(dacl.AceCount); i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			t.Fatal(err)
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart)).String()
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
			t.Errorf("ACE %d: type %d for %s, want only access-allowed ACEs", i, ace.Header.AceType, sid)
		}
		seen, ok := want[sid]
		if !ok {
			t.Errorf("ACE %d grants %#x to %s: only SYSTEM and Administrators may open the pipe", i, ace.Mask, sid)
			continue
		}
		if seen {
			t.Errorf("ACE %d: %s listed twice", i, sid)
		}
		want[sid] = true
		if m := ace.Mask; m != windows.GENERIC_ALL && m != fileAllAccess {
			t.Errorf("ACE %d: %s gets %#x, want GENERIC_ALL or its mapping FILE_ALL_ACCESS", i, sid, m)
		}
	}
	for sid, seen := range want {
		if !seen {
			t.Errorf("no ACE for %s", sid)
		}
	}
}

// pipeSecurity opens a client handle on addr with READ_CONTROL only and returns the owner,
// group and DACL of the pipe.
func pipeSecurity(t *testing.T, addr string) *windows.SECURITY_DESCRIPTOR {
	t.Helper()
	name, err := windows.UTF16PtrFromString(addr)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := windows.CreateFile(name, windows.READ_CONTROL, 0, nil, windows.OPEN_EXISTING, 0, 0)
		if err == windows.ERROR_PIPE_BUSY && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("open %s for READ_CONTROL: %v", addr, err)
		}
		defer windows.CloseHandle(h)
		sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT,
			windows.OWNER_SECURITY_INFORMATION|windows.GROUP_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
		if err != nil {
			t.Fatalf("GetSecurityInfo(%s): %v", addr, err)
		}
		return sd
	}
}

// fileAllAccess is FILE_ALL_ACCESS (winnt.h): what GENERIC_ALL maps to for files and pipes.
const fileAllAccess = windows.STANDARD_RIGHTS_REQUIRED | windows.SYNCHRONIZE | 0x1ff

// TestCreateDecisions: an untrusted Create the policy must deny (a mount of the host's
// user profile) is refused with the rule id and never reaches the real runhcs; a trusted
// tenant's Create is forwarded unchanged (process isolation stays) and runhcs's own error
// comes back intact.
func TestCreateDecisions(t *testing.T) {
	t.Run("untrusted-hostpath-denied", func(t *testing.T) {
		x := newH(t)
		id := "deny"
		s := x.mustStart(id, x.bundle(id, nil), stdinAny(t, debugOptions), false)
		wc, _ := dialTTRPC(t, x.wrapperPipe(id))
		defer wc.Close()
		// The container's spec now mounts the host's user profile (start has rewritten
		// config.json for the untrusted profile; keep that and add the mount).
		var spec map[string]any
		if err := json.Unmarshal([]byte(tryRead(filepath.Join(s.bundle, "config.json"))), &spec); err != nil {
			t.Fatal(err)
		}
		spec["mounts"] = []map[string]any{{"destination": `C:\ssh`, "source": `C:\Users\victim\.ssh`}}
		data, _ := json.Marshal(spec)
		if err := os.WriteFile(filepath.Join(s.bundle, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := rpcCtx()
		defer cancel()
		_, err := wc.task.Create(ctx, &taskv2.CreateTaskRequest{ID: id, Bundle: s.bundle,
			Options: optionsAny(t, &runhcsopts.Options{SandboxIsolation: runhcsopts.Options_HYPERVISOR})})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "untrusted.hostpath") ||
			!strings.Contains(status.Convert(err).Message(), `C:\Users\victim\.ssh`) {
			t.Fatalf("Create with a host profile mount: %v, want PermissionDenied naming untrusted.hostpath and the path", err)
		}
		if got := parsedOptions(t, s.bundle); len(got) != 0 {
			t.Fatalf("a denied Create reached runhcs: it parsed %v", got)
		}
		denied := false
		for _, r := range x.auditRecords() {
			if r["id"] == id && r["call"] == "create" && r["outcome"] == "denied" && strings.Contains(fmt.Sprint(r["rules"]), "untrusted.hostpath") {
				denied = true
			}
		}
		if !denied {
			t.Errorf("no audit record of the denied Create: %v", x.auditRecords())
		}
		x.shutdown(wc, s)
	})
	t.Run("trusted-forwarded-unchanged", func(t *testing.T) {
		x := newH(t)
		doc := "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\ntenants:\n  - containerdNamespace: " + x.ns + "\n"
		if err := os.WriteFile(x.policy, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		id := "trusted"
		s := x.mustStart(id, x.bundle(id, nil), stdinAny(t, debugOptions), false)
		wc, _ := dialTTRPC(t, x.wrapperPipe(id))
		defer wc.Close()
		dc, _ := dialTTRPC(t, x.runhcsPipe(id))
		defer dc.Close()
		ctx, cancel := rpcCtx()
		defer cancel()
		create := &taskv2.CreateTaskRequest{ID: id, Bundle: s.bundle,
			Options: optionsAny(t, &runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS, SandboxImage: "trusted-image"})}
		_, werr := wc.task.Create(ctx, create)
		got := parsedOptions(t, s.bundle)
		if len(got) != 1 || got[0]["sandbox_image"] != "trusted-image" || got[0]["sandbox_isolation"] == "HYPERVISOR" {
			t.Fatalf("runhcs parsed %v, want the trusted tenant's options unchanged (process isolation, trusted-image)", got)
		}
		if strings.Contains(tryRead(filepath.Join(s.bundle, "config.json")), `"hyperv"`) {
			t.Error("config.json of a trusted tenant was given a Hyper-V section")
		}
		_, derr := dc.task.Create(ctx, create)
		sameStatus(t, "trusted Create", werr, derr, codes.FailedPrecondition)
		dc.Close()
		x.shutdown(wc, s)
	})
}
