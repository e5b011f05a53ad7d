//go:build integration && linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	"github.com/Microsoft/hcsshim/pkg/annotations"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/integration/harness"
	"github.com/isoguard/isoguard/integration/standin"
	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/internal/enforce"
)

// The runhcs stand-in tests: real containerd (2.4, 1.7) runs the isoguard wrapper, whose
// delegate is integration/standin/containerd-shim-runhcs-v1 -- a Linux program named like
// hcsshim's runhcs (so the wrapper applies the WINDOWS profile) that records what it
// receives. They assert what reaches "runhcs" for untrusted and trusted workloads, that
// denied workloads never reach it, and what the audit trail says.
//
// Specs are Windows specs (no linux section): `ctr run` on Linux always builds a Linux spec
// (oci.WithDefaultUnixDevices adds spec.linux, plus proc/sysfs/... mounts), which the
// Windows profile rightly denies (untrusted.isolation: LCOW; untrusted.hostpath: mount
// types runhcs does not mount). So ctr runs them with --config FILE, and the Go client
// with containerd.WithSpec.

const (
	// secretValue is put in every container's environment: it must never reach the audit log.
	secretValue = "hunter2-s3cr3t"
	// The Kubernetes namespaces the pod tests use: untrusted (not named in the policy) and
	// trusted (named).
	kubeUntrusted = "tenant-a"
	kubeTrusted   = "kube-system"

	userAdmin = "ContainerAdministrator"
	userLow   = "ContainerUser"

	typeRunhcsOptions = "containerd.runhcs.v1.Options"
)

// standinDaemon is a private containerd whose test runtime is the isoguard wrapper, with a
// `platform: windows` node policy whose delegate is the runhcs stand-in.
type standinDaemon struct {
	*wrapperDaemon
	standin   string // the stand-in binary
	records   string // $STANDIN_RECORD
	criNS     string // the policy's criNamespace (Kubernetes annotations are believed there only)
	trustedNS string // a trusted containerd namespace
}

func startStandinDaemon(t *testing.T, version string) *standinDaemon {
	t.Helper()
	sd := &standinDaemon{wrapperDaemon: &wrapperDaemon{shim: harness.BuildBinary(t, "./cmd/containerd-shim-isoguard-v1")}}
	sd.standin = harness.BuildBinary(t, "./integration/standin/containerd-shim-runhcs-v1")
	dir := t.TempDir()
	sd.policy = filepath.Join(dir, "policy.yaml")
	sd.audit = filepath.Join(dir, "audit", "audit.log")
	sd.records = filepath.Join(dir, "standin.jsonl")
	if err := os.WriteFile(sd.policy, []byte("placeholder"), 0o600); err != nil {
		t.Fatal(err)
	}
	sd.Daemon = harness.ContainerdWith(t, version, harness.Options{Env: []string{
		enforce.ConfigEnv + "=" + sd.policy,
		enforce.AuditEnv + "=" + sd.audit,
		standin.RecordEnv + "=" + sd.records,
	}})
	sd.criNS = sd.Namespace + "-k8s"
	sd.trustedNS = sd.Namespace + "-trusted"
	sd.writePolicy(t, "")
	harness.ImportImage(t, sd.Daemon, sd.Namespace, sd.criNS, sd.trustedNS)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(sd.records)
			_, a := sd.auditLog(t)
			t.Logf("stand-in records (%s):\n%s\naudit log:\n%s", sd.records, b, a)
		}
		sd.AssertNoShims(t, 10*time.Second)
		harness.AssertNoProcesses(t, 5*time.Second, sd.shim, sd.standin)
	})
	return sd
}

// writePolicy writes the node policy: Windows profile, the stand-in as delegate, the
// daemon's default namespace untrusted, trustedNS and kube-system trusted.
func (sd *standinDaemon) writePolicy(t *testing.T, stdinFormat string) {
	t.Helper()
	p := fmt.Sprintf(`apiVersion: isoguard.dev/v1alpha1
kind: NodePolicy
platform: windows
criNamespace: %s
delegate:
  path: %s
`, sd.criNS, sd.standin)
	if stdinFormat != "" {
		p += "  stdinFormat: " + stdinFormat + "\n"
	}
	p += fmt.Sprintf(`tenants:
  - containerdNamespace: %s
  - kubernetesNamespace: %s
# The Windows profile on a Linux containerd: its snapshots are overlay mounts and its
# stdio fifos, which the Windows rules of untrusted.rootfs and untrusted.stdio refuse.
# They only audit here; their Windows behaviour is the fixtures' (policy/testdata) and the
# wine tier's, whose requests carry no rootfs or stdio.
rules:
  untrusted.rootfs: audit
  untrusted.stdio: audit
`, sd.trustedNS, kubeTrusted)
	// Atomically: wrappers re-read the file whenever it changes.
	if err := os.WriteFile(sd.policy+".tmp", []byte(p), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sd.policy+".tmp", sd.policy); err != nil {
		t.Fatal(err)
	}
}

// cleanupContainer removes container id of namespace ns at the end of the test if it is
// still there (the test failed half-way), so one failure does not leave a running pod to
// the next subtest. A test that ran to its end removed it already: then nothing happens.
func (sd *standinDaemon) cleanupContainer(t *testing.T, ns, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 30*time.Second)
		defer cancel()
		client, err := containerd.New(sd.Address, containerd.WithDefaultNamespace(ns))
		if err != nil {
			return
		}
		defer client.Close()
		c, err := client.LoadContainer(ctx, id)
		if err != nil {
			return
		}
		t.Logf("cleanup: removing %s/%s", ns, id)
		if task, err := c.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
				t.Logf("cleanup: delete task %s: %v", id, err)
			}
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			t.Logf("cleanup: delete container %s: %v", id, err)
		}
	})
}

// assertNoLeftovers: after a subtest every wrapper and stand-in process has exited.
func (sd *standinDaemon) assertNoLeftovers(t *testing.T) {
	t.Helper()
	harness.AssertNoProcesses(t, 15*time.Second, sd.shim, sd.standin)
}

// winSpec is a Windows OCI spec as containerd's Windows spec generator and CRI produce it
// (no linux section), with a secret in the environment.
func winSpec(args []string, user string, ann map[string]string, mounts ...specs.Mount) *oci.Spec {
	return &oci.Spec{
		Version: specs.Version,
		Root:    &specs.Root{},
		Process: &specs.Process{
			Args: args,
			Cwd:  `C:\`,
			Env:  []string{`PATH=C:\Windows\system32;C:\Windows`, "SECRET_TOKEN=" + secretValue},
			User: specs.User{Username: user},
		},
		Windows:     &specs.Windows{},
		Annotations: ann,
		Mounts:      mounts,
	}
}

// ctrRunRm runs `ctr run --rm` of spec as container id through the wrapper.
func (sd *standinDaemon) ctrRunRm(t *testing.T, id string, spec *oci.Spec) (string, string, error) {
	t.Helper()
	sd.cleanupContainer(t, sd.Namespace, id)
	return sd.Ctr(t, "run", "--rm", "--runtime", sd.shim, "--config", specFile(t, spec), id)
}

// specFile writes s for `ctr run --config`.
func specFile(t *testing.T, s *oci.Spec) string {
	t.Helper()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- what the stand-in recorded ----

func (sd *standinDaemon) recorded(t *testing.T, ns, id string) []standin.Record {
	t.Helper()
	all, err := standin.Read(sd.records)
	if err != nil {
		t.Fatal(err)
	}
	var out []standin.Record
	for _, r := range all {
		if r.Namespace == ns && r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

func calls(rs []standin.Record, call string) []standin.Record {
	var out []standin.Record
	for _, r := range rs {
		if r.Call == call {
			out = append(out, r)
		}
	}
	return out
}

// only returns the single record of call among rs, which must have succeeded.
func only(t *testing.T, rs []standin.Record, call string) standin.Record {
	t.Helper()
	got := calls(rs, call)
	if len(got) != 1 {
		t.Fatalf("the stand-in recorded %d %s calls, want 1: %s", len(got), call, dump(rs))
	}
	if got[0].Error != "" {
		t.Fatalf("the stand-in failed %s: %s", call, got[0].Error)
	}
	return got[0]
}

func dump(rs []standin.Record) string {
	var b strings.Builder
	for _, r := range rs {
		line, _ := json.Marshal(r)
		b.WriteString("\n  ")
		b.Write(line)
	}
	return b.String()
}

func runhcsOptions(t *testing.T, r standin.Record) *runhcsopts.Options {
	t.Helper()
	if r.OptionsTypeURL != typeRunhcsOptions {
		t.Fatalf("%s %s: options of type %q reached the stand-in, want %s", r.Call, r.ID, r.OptionsTypeURL, typeRunhcsOptions)
	}
	o, err := r.RunhcsOptions()
	if err != nil || o == nil {
		t.Fatalf("%s %s: runhcs options: %v (%v)", r.Call, r.ID, o, err)
	}
	return o
}

func recordSpec(t *testing.T, r standin.Record) *specs.Spec {
	t.Helper()
	s, err := r.OCISpec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantHyperV: the Create the stand-in got is Hyper-V isolated in every way runhcs looks:
// HYPERVISOR options, windows.hyperv in the config.json it re-read, ContainerUser.
func wantHyperV(t *testing.T, r standin.Record) *runhcsopts.Options {
	t.Helper()
	o := runhcsOptions(t, r)
	if o.GetSandboxIsolation() != runhcsopts.Options_HYPERVISOR {
		t.Errorf("Create %s reached runhcs with SandboxIsolation=%s, want HYPERVISOR", r.ID, o.GetSandboxIsolation())
	}
	s := recordSpec(t, r)
	if s.Windows == nil || s.Windows.HyperV == nil {
		t.Errorf("Create %s: config.json re-read by runhcs has no windows.hyperv: %s", r.ID, r.Spec)
	}
	if s.Process == nil || s.Process.User.Username != userLow {
		t.Errorf("Create %s: config.json runs as %q, want %s", r.ID, s.Process.User.Username, userLow)
	}
	if s.Annotations[annotations.DisableUnsafeOperations] != "true" {
		t.Errorf("Create %s: %s = %q, want \"true\"", r.ID, annotations.DisableUnsafeOperations, s.Annotations[annotations.DisableUnsafeOperations])
	}
	if r.Isolation != "hypervisor" {
		t.Errorf("Create %s: runhcs would run it with %q isolation", r.ID, r.Isolation)
	}
	return o
}

// ---- the audit trail ----

func (sd *standinDaemon) auditLog(t *testing.T) ([]audit.Record, string) {
	t.Helper()
	var raw []byte
	files, _ := filepath.Glob(sd.audit + ".*")
	for _, f := range append(files, sd.audit) {
		if strings.HasSuffix(f, ".lock") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	var recs []audit.Record
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs, string(raw)
}

// decision returns the single audit record of (ns, id, execID, call).
func (sd *standinDaemon) decision(t *testing.T, ns, id, execID, call string) audit.Record {
	t.Helper()
	recs, _ := sd.auditLog(t)
	var got []audit.Record
	for _, r := range recs {
		if r.Namespace == ns && r.ID == id && r.ExecID == execID && r.Call == call {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d audit records for %s %s/%s exec %q, want 1: %+v", len(got), call, ns, id, execID, got)
	}
	return got[0]
}

func wantDecision(t *testing.T, r audit.Record, outcome string, trusted bool, rules ...string) {
	t.Helper()
	if r.Outcome != outcome || r.Trusted != trusted {
		t.Errorf("audit %s %s: outcome %q trusted %v, want %q trusted %v (%+v)", r.Call, r.ID, r.Outcome, r.Trusted, outcome, trusted, r)
	}
	for _, rule := range rules {
		if !slices.Contains(r.Rules, rule) {
			t.Errorf("audit %s %s: rules %v lack %s", r.Call, r.ID, r.Rules, rule)
		}
	}
	if len(rules) == 0 && len(r.Rules) > 0 {
		t.Errorf("audit %s %s: rules %v, want none", r.Call, r.ID, r.Rules)
	}
}

// ---- the Go client ----

type clientEnv struct {
	t      *testing.T
	sd     *standinDaemon
	client *containerd.Client
	ctx    context.Context
	ns     string
}

func (sd *standinDaemon) client(t *testing.T, ns string) *clientEnv {
	t.Helper()
	c, err := containerd.New(sd.Address, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &clientEnv{t: t, sd: sd, client: c, ctx: namespaces.WithNamespace(context.Background(), ns), ns: ns}
}

// newTask creates container id from spec (with the test image's snapshot as rootfs, so the
// stand-in sees rootfs mounts) and its task; runtimeOpts are the container's runtime options.
func (ce *clientEnv) newTask(id string, spec *oci.Spec, runtimeOpts any) (containerd.Container, containerd.Task, error) {
	t := ce.t
	t.Helper()
	img, err := ce.client.GetImage(ce.ctx, harness.ImageRef)
	if err != nil {
		t.Fatal(err)
	}
	ce.sd.cleanupContainer(t, ce.ns, id)
	c, err := ce.client.NewContainer(ce.ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id+"-snap", img),
		containerd.WithRuntime(ce.sd.shim, runtimeOpts),
		containerd.WithSpec(spec))
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.NewTask(ce.ctx, cio.NullIO)
	if err != nil {
		ce.removeContainer(c)
		return nil, nil, err
	}
	return c, task, nil
}

// startTask starts task and checks it runs.
func (ce *clientEnv) startTask(task containerd.Task) {
	t := ce.t
	t.Helper()
	if err := task.Start(ce.ctx); err != nil {
		t.Fatalf("start %s: %v", task.ID(), err)
	}
	st, err := task.Status(ce.ctx)
	if err != nil || st.Status != containerd.Running {
		t.Fatalf("task %s status %v (%v), want running", task.ID(), st.Status, err)
	}
}

// status is the status of task id ("" when it cannot be read).
func (ce *clientEnv) status(id string) containerd.ProcessStatus {
	c, err := ce.client.LoadContainer(ce.ctx, id)
	if err != nil {
		return ""
	}
	task, err := c.Task(ce.ctx, nil)
	if err != nil {
		return ""
	}
	st, err := task.Status(ce.ctx)
	if err != nil {
		return ""
	}
	return st.Status
}

// exec runs an exec of args as user in task and waits for it.
func (ce *clientEnv) exec(task containerd.Task, execID, user string, args ...string) {
	t := ce.t
	t.Helper()
	ps := &specs.Process{Args: args, Cwd: `C:\`, User: specs.User{Username: user}, Env: []string{"SECRET_TOKEN=" + secretValue}}
	p, err := task.Exec(ce.ctx, execID, ps, cio.NullIO)
	if err != nil {
		t.Fatalf("exec %s in %s: %v", execID, task.ID(), err)
	}
	exitCh, err := p.Wait(ce.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ce.ctx); err != nil {
		t.Fatalf("start exec %s: %v", execID, err)
	}
	select {
	case st := <-exitCh:
		if st.ExitCode() != 0 {
			t.Errorf("exec %s exited %d", execID, st.ExitCode())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("exec %s did not exit", execID)
	}
	if _, err := p.Delete(ce.ctx); err != nil {
		t.Errorf("delete exec %s: %v", execID, err)
	}
}

// stop kills and deletes task and its container.
func (ce *clientEnv) stop(c containerd.Container, task containerd.Task) {
	t := ce.t
	t.Helper()
	exitCh, err := task.Wait(ce.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ce.ctx, syscall.SIGKILL); err != nil {
		t.Errorf("kill %s: %v", task.ID(), err)
	}
	select {
	case st := <-exitCh:
		if st.ExitCode() != 128+uint32(syscall.SIGKILL) {
			t.Errorf("task %s exit status %d after SIGKILL", task.ID(), st.ExitCode())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("task %s did not exit after SIGKILL", task.ID())
	}
	if _, err := task.Delete(ce.ctx); err != nil {
		t.Errorf("delete task %s: %v", task.ID(), err)
	}
	ce.removeContainer(c)
}

func (ce *clientEnv) removeContainer(c containerd.Container) {
	if err := c.Delete(ce.ctx, containerd.WithSnapshotCleanup); err != nil {
		ce.t.Errorf("delete container %s: %v", c.ID(), err)
	}
}

// TestStandinRunhcs drives the Windows profile through real containerd and the runhcs
// stand-in, per containerd version.
func TestStandinRunhcs(t *testing.T) {
	for _, version := range []string{"2.4", "1.7"} {
		t.Run(version, func(t *testing.T) {
			began := time.Now()
			sd := startStandinDaemon(t, version)
			t.Logf("containerd %s with the stand-in ready in %v", version, time.Since(began).Round(time.Millisecond))
			for _, tc := range []struct {
				name string
				fn   func(*testing.T, *standinDaemon)
			}{
				{"ctr-untrusted-standalone", standinCtrStandalone},
				{"ctr-exec-stored-user", standinCtrExec},
				{"client-process-options-upgraded", standinClientOptions},
				{"pod", standinPod},
				{"kubernetes-annotations-outside-cri-namespace", standinKubeOutsideCRI},
				{"trusted", standinTrusted},
				{"hostpath-denied", standinHostPath},
				{"hostprocess-denied", standinHostProcess},
				{"runc-options-denied", standinRuncOptions},
				{"stdin-bootstrap-refused-by-runhcs", standinBootstrapStdin},
			} {
				t.Run(tc.name, func(t *testing.T) {
					began := time.Now()
					// Runs last: after the subtest's own cleanups, also when it failed.
					t.Cleanup(func() {
						sd.assertNoLeftovers(t)
						t.Logf("%s took %v", tc.name, time.Since(began).Round(time.Millisecond))
					})
					tc.fn(t, sd)
				})
			}
			// No decision ever records an environment value.
			recs, raw := sd.auditLog(t)
			if len(recs) == 0 {
				t.Fatal("empty audit log")
			}
			if strings.Contains(raw, secretValue) {
				t.Errorf("the audit log contains the secret environment value %q", secretValue)
			}
			// ... while the stand-in did receive it (so it was there to leak).
			if b, _ := os.ReadFile(sd.records); !bytes.Contains(b, []byte(secretValue)) {
				t.Errorf("the secret never reached the stand-in; the audit check proves nothing")
			}
		})
	}
}

// standinCtrStandalone: `ctr run --rm` of an untrusted standalone container with no
// runtime options: runhcs's start gets HYPERVISOR options on stdin (a bare Any) and its
// Create gets HYPERVISOR options and a config.json with windows.hyperv and ContainerUser.
func standinCtrStandalone(t *testing.T, sd *standinDaemon) {
	id := "s1"
	if out, errOut, err := sd.ctrRunRm(t, id, winSpec([]string{harness.ImageTool, "hello"}, "", nil)); err != nil {
		t.Fatalf("ctr run --rm: %v\n%s%s", err, out, errOut)
	}
	rs := sd.recorded(t, sd.Namespace, id)
	start := only(t, rs, standin.CallStart)
	if start.StdinFormat != "any" {
		t.Errorf("runhcs's start got stdin %q, want a bare Any", start.StdinFormat)
	}
	if o := runhcsOptions(t, start); o.GetSandboxIsolation() != runhcsopts.Options_HYPERVISOR {
		t.Errorf("runhcs's start got SandboxIsolation=%s, want HYPERVISOR", o.GetSandboxIsolation())
	}
	only(t, rs, standin.CallServe)
	create := only(t, rs, standin.CallCreate)
	wantHyperV(t, create)
	if s := recordSpec(t, create); !slices.Equal(s.Process.Args, []string{harness.ImageTool, "hello"}) {
		t.Errorf("Create %s: args %q changed", id, s.Process.Args)
	}
	only(t, rs, standin.CallStartTask)
	only(t, rs, standin.CallDelete)

	wantDecision(t, sd.decision(t, sd.Namespace, id, "", "start"), audit.OutcomeMutated, false, "untrusted.isolation", "untrusted.user", "untrusted.annotations")
	wantDecision(t, sd.decision(t, sd.Namespace, id, "", "create"), audit.OutcomeMutated, false, "untrusted.isolation")
}

// standinCtrExec: `ctr run -d` + `ctr task exec` + kill + delete. The container spec
// containerd stores names ContainerAdministrator; the wrapper rewrote config.json at start,
// but ctr (like CRI) builds the exec from the STORED spec, so the Exec request asks for
// ContainerAdministrator -- and runhcs must get ContainerUser.
func standinCtrExec(t *testing.T, sd *standinDaemon) {
	id := "x1"
	cfg := specFile(t, winSpec([]string{harness.ImageTool, "sleep", "300"}, userAdmin, nil))
	sd.cleanupContainer(t, sd.Namespace, id)
	sd.MustCtr(t, "run", "-d", "--runtime", sd.shim, "--config", cfg, id)
	if got := taskStatus(t, sd.wrapperDaemon, id); got != "RUNNING" {
		t.Fatalf("task status %q", got)
	}
	// containerd talks to the wrapper; the wrapper to the stand-in's own socket.
	st := sd.record(t, id)
	if st.Delegate.Path != sd.standin || st.Delegate.Address == st.Address || !strings.HasPrefix(st.Delegate.Address, "unix:///run/containerd/s/") {
		t.Errorf("wrapper %q, delegate %q at %q", st.Address, st.Delegate.Path, st.Delegate.Address)
	}
	if addr := readFile(filepath.Join(sd.bundle(id), bundle.AddressFile)); addr != st.Address {
		t.Errorf("bundle address %q, want the wrapper's %q", addr, st.Address)
	}
	if !alive(st.Delegate.Pid) {
		t.Errorf("stand-in serve (pid %d) not running", st.Delegate.Pid)
	}
	sd.MustCtr(t, "task", "exec", "--exec-id", "e1", id, harness.ImageTool, "hello")
	if out := sd.MustCtr(t, "task", "ps", id); !strings.Contains(out, "2000000001") {
		t.Errorf("ctr task ps: %q lacks the stand-in's fake init pid", out)
	}
	sd.MustCtr(t, "task", "kill", "-s", "SIGKILL", id)
	deleteTask(t, sd.Daemon, id)
	sd.MustCtr(t, "container", "delete", id)
	waitFor(t, "wrapper and stand-in to exit", 10*time.Second, func() bool { return !alive(st.Pid) && !alive(st.Delegate.Pid) })
	for _, a := range []string{st.Address, st.Delegate.Address} {
		if _, err := os.Stat(strings.TrimPrefix(a, "unix://")); !os.IsNotExist(err) {
			t.Errorf("socket %s left behind: %v", a, err)
		}
	}

	rs := sd.recorded(t, sd.Namespace, id)
	wantHyperV(t, only(t, rs, standin.CallCreate))
	exec := only(t, rs, standin.CallExec)
	p, err := exec.OCIProcess()
	if err != nil {
		t.Fatal(err)
	}
	if p.User.Username != userLow || !slices.Equal(p.Args, []string{harness.ImageTool, "hello"}) {
		t.Errorf("Exec e1 reached runhcs as %q running %q, want %s", p.User.Username, p.Args, userLow)
	}
	if k := only(t, rs, standin.CallKill); k.Signal != uint32(syscall.SIGKILL) {
		t.Errorf("Kill signal %d", k.Signal)
	}
	d := sd.decision(t, sd.Namespace, id, "e1", "exec")
	wantDecision(t, d, audit.OutcomeMutated, false, "untrusted.exec-user")
	if !hasMutation(d, "process.user.username", userAdmin, userLow) {
		t.Errorf("exec decision does not record %s -> %s: %+v", userAdmin, userLow, d.Mutations)
	}
}

func hasMutation(r audit.Record, field, old, new string) bool {
	for _, m := range r.Mutations {
		if m.Field == field && m.Old == old && m.New == new && !m.Audit {
			return true
		}
	}
	return false
}

// standinClientOptions: the Go client sends runhcs Options {PROCESS, windows/amd64, ...}
// for an untrusted container: HYPERVISOR reaches runhcs (start and Create), every other
// field as sent, with the image's rootfs; an Exec as ContainerAdministrator arrives as
// ContainerUser; an Update and a Stats call are relayed.
func standinClientOptions(t *testing.T, sd *standinDaemon) {
	id := "c1"
	ce := sd.client(t, sd.Namespace)
	sent := &runhcsopts.Options{
		SandboxIsolation:                runhcsopts.Options_PROCESS,
		SandboxPlatform:                 "windows/amd64",
		DefaultContainerScratchSizeInGb: 21,
		LogLevel:                        "debug",
	}
	c, task, err := ce.newTask(id, winSpec([]string{harness.ImageTool, "sleep", "300"}, userAdmin, nil), sent)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	ce.startTask(task)
	ce.exec(task, "e1", userAdmin, harness.ImageTool, "hello")
	limit := uint64(256 << 20)
	if err := task.Update(ce.ctx, containerd.WithResources(&specs.WindowsResources{Memory: &specs.WindowsMemoryResources{Limit: &limit}})); err != nil {
		t.Errorf("update: %v", err)
	}
	if _, err := task.Metrics(ce.ctx); err != nil {
		t.Errorf("metrics: %v", err)
	}
	ce.stop(c, task)

	rs := sd.recorded(t, sd.Namespace, id)
	only(t, rs, standin.CallStats)
	preserved := func(what string, o *runhcsopts.Options) {
		t.Helper()
		if o.GetSandboxPlatform() != sent.SandboxPlatform || o.GetDefaultContainerScratchSizeInGb() != sent.DefaultContainerScratchSizeInGb || o.GetLogLevel() != sent.LogLevel {
			t.Errorf("%s: options %v lost fields of %v", what, o, sent)
		}
	}
	start := runhcsOptions(t, only(t, rs, standin.CallStart))
	if start.GetSandboxIsolation() != runhcsopts.Options_HYPERVISOR {
		t.Errorf("runhcs's start got SandboxIsolation=%s, want HYPERVISOR", start.GetSandboxIsolation())
	}
	preserved("start", start)
	create := only(t, rs, standin.CallCreate)
	preserved("Create", wantHyperV(t, create))
	if len(create.Rootfs) == 0 {
		t.Errorf("Create %s: no rootfs mounts reached runhcs", id)
	}
	p, err := only(t, rs, standin.CallExec).OCIProcess()
	if err != nil {
		t.Fatal(err)
	}
	if p.User.Username != userLow {
		t.Errorf("Exec e1 reached runhcs as %q, want %s", p.User.Username, userLow)
	}
	up := only(t, rs, standin.CallUpdate)
	var res specs.WindowsResources
	if err := json.Unmarshal(up.Resources, &res); err != nil || res.Memory == nil || res.Memory.Limit == nil || *res.Memory.Limit != limit {
		t.Errorf("Update reached runhcs with resources %s (%s): %v", up.Resources, up.ResourcesTypeURL, err)
	}

	d := sd.decision(t, sd.Namespace, id, "", "create")
	wantDecision(t, d, audit.OutcomeMutated, false, "untrusted.isolation")
	if !hasMutation(d, "options.SandboxIsolation", "PROCESS", "HYPERVISOR") {
		t.Errorf("create decision does not record PROCESS -> HYPERVISOR: %+v", d.Mutations)
	}
	wantDecision(t, sd.decision(t, sd.Namespace, id, "e1", "exec"), audit.OutcomeMutated, false, "untrusted.exec-user")
	wantDecision(t, sd.decision(t, sd.Namespace, id, "", "update"), audit.OutcomeAllowed, false)
}

// podAnnotations are the CRI annotations of a pod's sandbox (typ "sandbox") or workload
// container (typ "container"), as containerd's CRI plugin sets them.
func podAnnotations(typ, sandboxID, kubeNS, pod string) map[string]string {
	a := map[string]string{
		cri.ContainerType:                typ,
		cri.SandboxID:                    sandboxID,
		cri.SandboxNamespace:             kubeNS,
		cri.SandboxName:                  pod,
		cri.SandboxUID:                   "uid-" + pod,
		annotations.HostProcessContainer: "false", // CRI sets it on every Windows pod
	}
	if typ == "container" {
		a[cri.ContainerName] = "app"
	}
	return a
}

// runPod runs a pod (sandbox + one workload whose runtime options say PROCESS) in ce's
// namespace, execs into the workload as ContainerAdministrator, calls during (if not nil)
// while the pod runs, and removes the pod.
func runPod(t *testing.T, ce *clientEnv, sandboxID, kubeNS string, during func()) {
	t.Helper()
	sleep := []string{harness.ImageTool, "sleep", "300"}
	sbC, sbT, err := ce.newTask(sandboxID, winSpec(sleep, "", podAnnotations("sandbox", sandboxID, kubeNS, "web")), nil)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	ce.startTask(sbT)
	wlC, wlT, err := ce.newTask(sandboxID+"-app", winSpec(sleep, userAdmin, podAnnotations("container", sandboxID, kubeNS, "web")),
		&runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS, SandboxPlatform: "windows/amd64"})
	if err != nil {
		t.Fatalf("workload: %v", err)
	}
	ce.startTask(wlT)
	ce.exec(wlT, "e1", userAdmin, harness.ImageTool, "hello")
	if during != nil {
		during()
	}
	ce.stop(wlC, wlT)
	ce.stop(sbC, sbT)
}

// standinPod: a CRI pod (in the policy's criNamespace) of an untrusted Kubernetes
// namespace: one stand-in for the pod, both Creates HYPERVISOR (the workload's PROCESS
// options upgraded), the workload's exec as ContainerUser, and runhcs's start never called
// for the workload. A pod of a trusted Kubernetes namespace keeps PROCESS.
func standinPod(t *testing.T, sd *standinDaemon) {
	ce := sd.client(t, sd.criNS)
	runPod(t, ce, "pod1", kubeUntrusted, func() {
		// A workload with a host directory joins the pod (its start is a join, which only
		// checks pod consistency) and is denied at Create: runhcs never sees that Create,
		// and the pod keeps running.
		id := "pod1-hostpath"
		spec := winSpec([]string{harness.ImageTool, "sleep", "300"}, "", podAnnotations("container", "pod1", kubeUntrusted, "web"),
			specs.Mount{Destination: `C:\keys`, Source: `C:\Users\victim\.ssh`})
		_, _, err := ce.newTask(id, spec, nil)
		if err == nil || !strings.Contains(err.Error(), "denied by rule untrusted.hostpath") {
			t.Errorf("workload with a host path: got %v, want a denial by untrusted.hostpath", err)
		}
		if n := len(calls(sd.recorded(t, sd.criNS, id), standin.CallCreate)); n != 0 {
			t.Errorf("the denied workload's Create reached runhcs (%d records)", n)
		}
		wantDecision(t, sd.decision(t, sd.criNS, id, "", "join"), audit.OutcomeAllowed, false)
		wantDecision(t, sd.decision(t, sd.criNS, id, "", "create"), audit.OutcomeDenied, false, "untrusted.hostpath")
		for _, other := range []string{"pod1", "pod1-app"} {
			if st := ce.status(other); st != containerd.Running {
				t.Errorf("after the denial, %s is %q", other, st)
			}
		}
	})

	sb := sd.recorded(t, sd.criNS, "pod1")
	only(t, sb, standin.CallStart)
	sbCreate := only(t, sb, standin.CallCreate)
	wantHyperV(t, sbCreate)
	wl := sd.recorded(t, sd.criNS, "pod1-app")
	if n := len(calls(wl, standin.CallStart)) + len(calls(wl, standin.CallServe)); n != 0 {
		t.Errorf("runhcs's start ran for the workload container (it would answer the sandbox's own address): %s", dump(wl))
	}
	wlCreate := only(t, wl, standin.CallCreate)
	if o := wantHyperV(t, wlCreate); o.GetSandboxPlatform() != "windows/amd64" {
		t.Errorf("workload Create: SandboxPlatform %q lost", o.GetSandboxPlatform())
	}
	if wlCreate.Pid != sbCreate.Pid {
		t.Errorf("workload created by stand-in pid %d, sandbox by %d: want one runhcs per pod", wlCreate.Pid, sbCreate.Pid)
	}
	if p, err := only(t, wl, standin.CallExec).OCIProcess(); err != nil || p.User.Username != userLow {
		t.Errorf("workload exec reached runhcs as %v (%v), want %s", p, err, userLow)
	}
	start := sd.decision(t, sd.criNS, "pod1", "", "start")
	wantDecision(t, start, audit.OutcomeMutated, false, "untrusted.isolation")
	if start.Tenant != kubeUntrusted || start.KubePod != "web" {
		t.Errorf("start decision: tenant %q pod %q, want %s/web", start.Tenant, start.KubePod, kubeUntrusted)
	}
	wantDecision(t, sd.decision(t, sd.criNS, "pod1-app", "", "join"), audit.OutcomeAllowed, false)
	create := sd.decision(t, sd.criNS, "pod1-app", "", "create")
	wantDecision(t, create, audit.OutcomeMutated, false, "untrusted.isolation")
	if !hasMutation(create, "options.SandboxIsolation", "PROCESS", "HYPERVISOR") || !hasMutation(create, "spec.process.user.username", userAdmin, userLow) {
		t.Errorf("workload create decision does not record PROCESS -> HYPERVISOR and the user change: %+v", create.Mutations)
	}

	// The same pod in a trusted Kubernetes namespace: what was sent reaches runhcs.
	runPod(t, ce, "pod2", kubeTrusted, nil)
	tsb := only(t, sd.recorded(t, sd.criNS, "pod2"), standin.CallCreate)
	twl := only(t, sd.recorded(t, sd.criNS, "pod2-app"), standin.CallCreate)
	if tsb.OptionsTypeURL != "" || tsb.Isolation != "process" {
		t.Errorf("trusted sandbox Create: options %q isolation %q, want none/process", tsb.OptionsTypeURL, tsb.Isolation)
	}
	if o := runhcsOptions(t, twl); o.GetSandboxIsolation() != runhcsopts.Options_PROCESS || twl.Isolation != "process" {
		t.Errorf("trusted workload Create: %s / %s, want PROCESS", o.GetSandboxIsolation(), twl.Isolation)
	}
	if s := recordSpec(t, twl); s.Process.User.Username != userAdmin || s.Windows.HyperV != nil {
		t.Errorf("trusted workload config.json changed: user %q hyperv %v", s.Process.User.Username, s.Windows.HyperV)
	}
	wantDecision(t, sd.decision(t, sd.criNS, "pod2-app", "", "create"), audit.OutcomeAllowed, true)
}

// standinKubeOutsideCRI: Kubernetes annotations naming a trusted Kubernetes namespace are
// not believed outside the CRI namespace: the tenant is the containerd namespace, untrusted.
func standinKubeOutsideCRI(t *testing.T, sd *standinDaemon) {
	id := "fakepod"
	ce := sd.client(t, sd.Namespace)
	c, task, err := ce.newTask(id, winSpec([]string{harness.ImageTool, "sleep", "300"}, userAdmin, podAnnotations("sandbox", id, kubeTrusted, "web")),
		&runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS})
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	ce.startTask(task)
	ce.stop(c, task)
	wantHyperV(t, only(t, sd.recorded(t, sd.Namespace, id), standin.CallCreate))
	d := sd.decision(t, sd.Namespace, id, "", "start")
	wantDecision(t, d, audit.OutcomeMutated, false, "untrusted.isolation")
	if d.Tenant != "containerd:"+sd.Namespace {
		t.Errorf("tenant %q, want the containerd namespace", d.Tenant)
	}
}

// standinTrusted: a trusted containerd namespace: options, config.json and the exec's user
// reach runhcs exactly as sent.
func standinTrusted(t *testing.T, sd *standinDaemon) {
	id := "t1"
	ce := sd.client(t, sd.trustedNS)
	sent := &runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS, SandboxPlatform: "windows/amd64", DefaultContainerScratchSizeInGb: 21}
	c, task, err := ce.newTask(id, winSpec([]string{harness.ImageTool, "sleep", "300"}, userAdmin, nil), sent)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	ce.startTask(task)
	ce.exec(task, "e1", userAdmin, harness.ImageTool, "hello")
	ce.stop(c, task)

	rs := sd.recorded(t, sd.trustedNS, id)
	if o := runhcsOptions(t, only(t, rs, standin.CallStart)); !proto.Equal(o, sent) {
		t.Errorf("runhcs's start got %v, want %v", o, sent)
	}
	create := only(t, rs, standin.CallCreate)
	if o := runhcsOptions(t, create); !proto.Equal(o, sent) {
		t.Errorf("Create got %v, want %v", o, sent)
	}
	s := recordSpec(t, create)
	if s.Process.User.Username != userAdmin || s.Windows.HyperV != nil || s.Annotations[annotations.DisableUnsafeOperations] != "" || create.Isolation != "process" {
		t.Errorf("trusted Create changed: user %q hyperv %v annotations %v isolation %q", s.Process.User.Username, s.Windows.HyperV, s.Annotations, create.Isolation)
	}
	if p, err := only(t, rs, standin.CallExec).OCIProcess(); err != nil || p.User.Username != userAdmin {
		t.Errorf("trusted exec reached runhcs as %v (%v), want %s", p, err, userAdmin)
	}
	for _, call := range []string{"start", "create"} {
		wantDecision(t, sd.decision(t, sd.trustedNS, id, "", call), audit.OutcomeAllowed, true)
	}
	wantDecision(t, sd.decision(t, sd.trustedNS, id, "e1", "exec"), audit.OutcomeAllowed, true)
}

// ctrDenied runs spec with `ctr run --rm` and expects a denial naming rule; the stand-in
// must have seen nothing of the container, and the start decision is audited as denied.
func ctrDenied(t *testing.T, sd *standinDaemon, id string, spec *oci.Spec, rule string) audit.Record {
	t.Helper()
	_, errOut, err := sd.ctrRunRm(t, id, spec)
	if err == nil {
		t.Fatalf("%s ran; want a denial by %s", id, rule)
	}
	if !strings.Contains(errOut, "denied by rule "+rule) {
		t.Errorf("ctr's error does not name rule %s: %s", rule, errOut)
	}
	if rs := sd.recorded(t, sd.Namespace, id); len(rs) != 0 {
		t.Errorf("denied container %s reached the stand-in (%d Creates): %s", id, len(calls(rs, standin.CallCreate)), dump(rs))
	}
	d := sd.decision(t, sd.Namespace, id, "", "start")
	wantDecision(t, d, audit.OutcomeDenied, false, rule)
	return d
}

// standinHostPath: host directories are denied (untrusted.hostpath) before runhcs sees
// the container: a Windows host path shared into the container (type "", runhcs maps it
// over VSMB) and a Linux-style bind mount of a real host directory. The same spec without
// the mount runs.
func standinHostPath(t *testing.T, sd *standinDaemon) {
	hello := []string{harness.ImageTool, "hello"}
	if _, errOut, err := sd.ctrRunRm(t, "hp0", winSpec(hello, "", nil)); err != nil {
		t.Fatalf("control without the mount: %v: %s", err, errOut)
	}
	only(t, sd.recorded(t, sd.Namespace, "hp0"), standin.CallCreate)

	d := ctrDenied(t, sd, "hp1", winSpec(hello, "", nil, specs.Mount{Destination: `C:\keys`, Source: `C:\Users\victim\.ssh`}), "untrusted.hostpath")
	if len(d.Denials) == 0 || d.Denials[0].Field != "mounts[0].source" || !strings.Contains(d.Denials[0].Reason, `C:\Users\victim\.ssh`) {
		t.Errorf("denial %+v does not name mounts[0].source", d.Denials)
	}
	ctrDenied(t, sd, "hp2", winSpec(hello, "", nil, specs.Mount{Destination: `C:\data`, Type: "bind", Source: t.TempDir(), Options: []string{"rbind", "rw"}}), "untrusted.hostpath")
}

// standinHostProcess: a HostProcess container is denied (untrusted.hostprocess).
func standinHostProcess(t *testing.T, sd *standinDaemon) {
	ctrDenied(t, sd, "hpc1", winSpec([]string{harness.ImageTool, "hello"}, "", map[string]string{annotations.HostProcessContainer: "true"}), "untrusted.hostprocess")
}

// standinRuncOptions: runc Options sent to the Windows profile are denied for every tenant
// (runhcs would fail or panic on them) and never reach the stand-in.
func standinRuncOptions(t *testing.T, sd *standinDaemon) {
	for _, ns := range []string{sd.Namespace, sd.trustedNS} {
		id := "runc1"
		ce := sd.client(t, ns)
		_, _, err := ce.newTask(id, winSpec([]string{harness.ImageTool, "hello"}, "", nil), &runcopts.Options{BinaryName: "runc"})
		if err == nil || !strings.Contains(err.Error(), "input.invalid") || !strings.Contains(err.Error(), "containerd.runc.v1.Options") {
			t.Errorf("namespace %s: runc options: got %v, want a denial by input.invalid naming the type", ns, err)
		}
		if rs := sd.recorded(t, ns, id); len(rs) != 0 {
			t.Errorf("namespace %s: runc options reached the stand-in: %s", ns, dump(rs))
		}
		wantDecision(t, sd.decision(t, ns, id, "", "start"), audit.OutcomeDenied, false, "input.invalid")
	}
}

// standinBootstrapStdin: the stand-in holds the wrapper to runhcs v0.14's stdin contract
// (a bare Any): forced to send BootstrapParams, the wrapper's start fails with runhcs's
// error, and nothing is left behind. (The default, auto, sends a bare Any: every other
// subtest.)
func standinBootstrapStdin(t *testing.T, sd *standinDaemon) {
	sd.writePolicy(t, "bootstrap")
	defer sd.writePolicy(t, "")
	id := "boot1"
	_, errOut, err := sd.ctrRunRm(t, id, winSpec([]string{harness.ImageTool, "hello"}, "", nil))
	if err == nil || !strings.Contains(errOut, "failed unmarshalling by typeurl") {
		t.Errorf("BootstrapParams to the stand-in: err %v, stderr %s", err, errOut)
	}
	rs := sd.recorded(t, sd.Namespace, id)
	if start := calls(rs, standin.CallStart); len(start) != 1 || start[0].StdinFormat != "other" {
		t.Errorf("stand-in start records: %s", dump(rs))
	}
	if len(calls(rs, standin.CallCreate)) != 0 {
		t.Errorf("a Create reached the stand-in: %s", dump(rs))
	}
}
