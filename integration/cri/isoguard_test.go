//go:build integration && linux

package cri

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/integration/harness"
	"github.com/isoguard/isoguard/internal/enforce"
)

// The isoguard tier of the CRI tests: isoguard as a runtime handler of containerd's CRI
// plugin, configured with the output of `isoguard config containerd --os linux`, driven by
// crictl as kubelet drives containerd. Trusted pods run in the node's runc shim (the
// delegate of this containerd version); untrusted pods in gVisor's own shim
// (scripts/gvisor.sh test: the TEST build, patched for machines without CAP_SYS_RESOURCE).

const (
	// isoguardHandler is the handler's name (isoguard config containerd's default).
	isoguardHandler = "isoguard"
	// trustedNS is the Kubernetes namespace the node policy trusts; untrustedNS is not named.
	trustedNS   = "kube-system"
	untrustedNS = "team-a"
	// sandboxUID is the uid untrusted workloads run as (the policy's default linuxUser).
	sandboxUID = 65534
	// limitMB is the policy's memory limit for an Update of an untrusted container.
	limitMB = 512
)

// isoNode is a CRI daemon whose runtime handler "isoguard" is the isoguard shim.
type isoNode struct {
	*harness.CRIDaemon
	cli       string // the operator's tool
	shim      string // containerd-shim-isoguard-v1
	gvisor    string // gVisor's test build
	policy    string
	audit     string
	runscRoot string
	runscToml string // gVisor's configuration
	// auditMaxSizeMB and auditMaxBackups are the policy's audit rotation (0: the defaults).
	auditMaxSizeMB, auditMaxBackups int
}

// nodeOptions shape an isoNode.
type nodeOptions struct {
	mode            string // the policy's mode: enforce (default) or audit
	isoguardDefault bool   // isoguard is default_runtime_name, else the plain runc handler is
	// extraHandlers are more runtime handlers beside runc and isoguard.
	extraHandlers func(n *isoNode) []harness.RuntimeHandler
	// auditMaxSizeMB and auditMaxBackups set the policy's audit.maxSizeMB and
	// audit.maxBackups (0: not set, the defaults).
	auditMaxSizeMB, auditMaxBackups int
	// runtimeConfig are more keys of the CRI runtime plugin's table (harness.CRIOptions).
	runtimeConfig map[string]any
	// extraConfig is more of containerd's configuration (tables only, e.g. [timeouts]).
	extraConfig string
}

// startIsoNode starts a CRI daemon with two handlers: "runc" (the plain runc handler) and
// "isoguard", whose configuration is what `isoguard config containerd --os linux` prints.
func startIsoNode(t *testing.T, version string, o nodeOptions) *isoNode {
	t.Helper()
	n := &isoNode{
		cli:    harness.BuildBinary(t, "./cmd/isoguard"),
		shim:   harness.BuildBinary(t, "./cmd/containerd-shim-isoguard-v1"),
		gvisor: harness.GVisorTestBin(t),

		auditMaxSizeMB: o.auditMaxSizeMB, auditMaxBackups: o.auditMaxBackups,
	}
	dir := t.TempDir()
	n.policy, n.audit = filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit", "audit.log")
	n.runscRoot, n.runscToml = filepath.Join(dir, "runsc"), filepath.Join(dir, "runsc.toml")
	cliVersion := "2"
	if version == "1.7" {
		cliVersion = "1.7"
	}
	out, err := exec.Command(n.cli, "config", "containerd", "--os", "linux", "--version", cliVersion, "--shim-path", n.shim).Output()
	if err != nil {
		t.Fatalf("isoguard config containerd: %v", err)
	}
	defaultRuntime := "runc"
	if o.isoguardDefault {
		defaultRuntime = isoguardHandler
	}
	handlers := []harness.RuntimeHandler{harness.RuncHandler()}
	if o.extraHandlers != nil {
		handlers = append(handlers, o.extraHandlers(n)...)
	}
	n.CRIDaemon = harness.CRIContainerd(t, version, harness.CRIOptions{
		Options: harness.Options{
			ExtraConfig: tablesOnly(string(out)) + o.extraConfig,
			Env:         []string{enforce.ConfigEnv + "=" + n.policy, enforce.AuditEnv + "=" + n.audit},
		},
		Handlers:       handlers,
		DefaultRuntime: defaultRuntime,
		RuntimeConfig:  o.runtimeConfig,
	})
	n.writePolicy(t, version, o.mode)
	t.Cleanup(func() {
		if t.Failed() {
			// The last records (a load test's trail has thousands, in rotated files too).
			b, _ := os.ReadFile(n.audit)
			lines := strings.SplitAfter(string(b), "\n")
			rotated, _ := filepath.Glob(n.audit + ".[0-9]*")
			t.Logf("audit log %s (rotated files: %d), last %d of %d lines:\n%s", n.audit, len(rotated),
				min(100, len(lines)-1), len(lines)-1, strings.Join(lines[max(0, len(lines)-101):], ""))
		}
		n.assertNoSandboxLeft(t)
	})
	return n
}

// runscHandler is gVisor's shim as a runtime handler of its own ("runsc"), with the node's
// runsc.toml: what an untrusted pod through isoguard is compared with.
func (n *isoNode) runscHandler() harness.RuntimeHandler {
	return harness.RuntimeHandler{
		Name: "runsc", Type: "io.containerd.runsc.v1", Path: filepath.Join(n.gvisor, "containerd-shim-runsc-v1"),
		Options: map[string]any{"TypeUrl": "io.containerd.runsc.v1.options", "ConfigPath": n.runscToml},
	}
}

// tablesOnly drops what the harness writes itself (the file version) and the comments from
// a generated configuration: its tables go into the daemon's config file.
func tablesOnly(toml string) string {
	var b strings.Builder
	for _, l := range strings.Split(toml, "\n") {
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "version =") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// writePolicy writes the node policy: platform linux, the runc shim of the daemon's version
// as the node's delegate, gVisor's shim for untrusted pods, kube-system trusted, the
// private containerd's CRI directories as the allowed host paths (the CRI bind-mounts the
// pod's hosts, hostname, resolv.conf and /dev/shm from there), an Update limit.
func (n *isoNode) writePolicy(t *testing.T, version, mode string) {
	t.Helper()
	if mode == "" {
		mode = "enforce"
	}
	bin, err := harness.BinDir(version)
	if err != nil {
		t.Fatal(err)
	}
	runscToml := n.runscToml
	if err := os.WriteFile(runscToml, []byte(fmt.Sprintf(`binary_name = %q
root = %q

[runsc_config]
  platform = "systrap"
  gofer-network-namespace = "new"
`, filepath.Join(n.gvisor, "runsc"), n.runscRoot)), 0o644); err != nil {
		t.Fatal(err)
	}
	var rotation string
	if n.auditMaxSizeMB > 0 {
		rotation += fmt.Sprintf("\n  maxSizeMB: %d", n.auditMaxSizeMB)
	}
	if n.auditMaxBackups > 0 {
		rotation += fmt.Sprintf("\n  maxBackups: %d", n.auditMaxBackups)
	}
	policy := fmt.Sprintf(`apiVersion: isoguard.dev/v1alpha1
kind: NodePolicy
platform: linux
mode: %s
delegate:
  path: %s
tenants:
  - kubernetesNamespace: %s
audit:
  path: %s%s
untrusted:
  sandbox:
    shim: %s
    configPath: %s
    typeUrl: io.containerd.runsc.v1.options
  mounts:
    allowedHostPaths:
      - /var/lib/kubelet/pods/{podUID}/
      - %s/io.containerd.grpc.v1.cri/sandboxes/{sandboxID}/
      - %s/io.containerd.grpc.v1.cri/sandboxes/{sandboxID}/
  # This containerd keeps its snapshots and fifos in the test's own root and state.
  rootfs:
    allowedSources: [%s/]
  stdio:
    allowedPaths: [%s/]
  limits:
    memoryMB: %d
    cpuCount: 2
`, mode, filepath.Join(bin, "containerd-shim-runc-v2"), trustedNS, n.audit, rotation,
		filepath.Join(n.gvisor, "containerd-shim-runsc-v1"), runscToml, n.Root, n.State, n.Root, n.State, limitMB)
	if err := os.WriteFile(n.policy, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(n.cli, "policy", "validate", n.policy).CombinedOutput(); err != nil {
		t.Fatalf("isoguard policy validate: %v\n%s", err, out)
	}
}

// assertNoSandboxLeft: no runsc state, no gVisor process and no wrapper process of this
// daemon is left (the harness checks the rest: shims, mounts, sockets, cgroups, netns).
func (n *isoNode) assertNoSandboxLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []string
		entries, _ := os.ReadDir(filepath.Join(n.runscRoot, harness.CRINamespace))
		for _, e := range entries {
			left = append(left, "runsc state "+e.Name())
		}
		// Only this node's: other tests (make stress) may run gVisor on the machine.
		for _, p := range n.gvisorProcesses() {
			left = append(left, "gVisor process "+p.String())
		}
		for _, p := range n.wrappersOfDaemon() {
			left = append(left, "wrapper process "+p.String())
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind after the test:\n%s", strings.Join(left, "\n"))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gvisorProcesses lists the gVisor processes of this node: its shims and runsc commands (the
// binaries of n.gvisor, which other tests' daemons share, naming this daemon's socket,
// state or runsc root) and its sandboxes and gofers (runsc-sandbox, runsc-gofer: their
// command line names runsc's root, not the binary).
func (n *isoNode) gvisorProcesses() []harness.Process {
	var ps []harness.Process
	for _, p := range harness.Processes() {
		if n.owns(p) && (strings.Contains(p.Cmdline, n.gvisor) || strings.HasPrefix(p.Cmdline, "runsc")) {
			ps = append(ps, p)
		}
	}
	return ps
}

// assertJoinPath checks how the pod's workload containers reached its wrapper, and that
// each was joined once: containerd 2.4 (BootstrapParams on start's stdin, so the wrapper
// answered task API version 3) reuses the wrapper without running `start` for them (it
// writes the container bundle's "sandbox" file and a version 3 bootstrap.json; the join
// ran at Create); containerd 1.7 runs `start` for each (the wrapper's join writes the
// bundle's address file).
func (n *isoNode) assertJoinPath(t *testing.T, version, podID string, containers ...string) {
	t.Helper()
	for _, id := range containers {
		dir := filepath.Join(n.State, "io.containerd.runtime.v2.task", harness.CRINamespace, id)
		_, sandboxErr := os.Stat(filepath.Join(dir, "sandbox"))
		_, addressErr := os.Stat(filepath.Join(dir, "address"))
		bj, _ := os.ReadFile(filepath.Join(dir, "bootstrap.json"))
		marker, _ := os.ReadFile(filepath.Join(dir, "isoguard-joined"))
		reused := sandboxErr == nil && addressErr != nil && strings.Contains(string(bj), `"version":3`)
		started := sandboxErr != nil && addressErr == nil
		if version == "2.4" && !reused || version == "1.7" && !started {
			t.Errorf("containerd %s, container %s: sandbox file %v, address file %v, bootstrap.json %s", version, id, sandboxErr == nil, addressErr == nil, bj)
		}
		if string(marker) != podID {
			t.Errorf("container %s: join marker %q, want %q", id, marker, podID)
		}
		joins := 0
		for _, r := range n.auditRecords(t) {
			if r.Call == "join" && r.ID == id {
				joins++
			}
		}
		if joins != 1 {
			t.Errorf("container %s: %d join records, want 1", id, joins)
		}
	}
}

// owns reports whether a process belongs to this node's containerd.
func (n *isoNode) owns(p harness.Process) bool {
	return strings.Contains(p.Cmdline, n.Address) || strings.Contains(p.Cmdline, n.runscRoot) || strings.Contains(p.Cmdline, n.State)
}

// auditRecords reads the audit trail (every line must be a record).
func (n *isoNode) auditRecords(t *testing.T) []audit.Record {
	t.Helper()
	f, err := os.Open(n.audit)
	if err != nil {
		t.Fatalf("audit trail: %v", err)
	}
	defer f.Close()
	var recs []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// record finds the audit record of call for task id (the last one).
func (n *isoNode) record(t *testing.T, call, id string) *audit.Record {
	t.Helper()
	recs := n.auditRecords(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Call == call && recs[i].ID == id {
			return &recs[i]
		}
	}
	t.Fatalf("no audit record of %s %s", call, id)
	return nil
}

// ps is `isoguard ps --json` for the daemon's state directory.
func (n *isoNode) ps(t *testing.T) []map[string]any {
	t.Helper()
	out, err := exec.Command(n.cli, "ps", "--state", n.State, "--json").Output()
	if err != nil {
		t.Fatalf("isoguard ps: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("isoguard ps --json: %v\n%s", err, out)
	}
	return rows
}

// wrapperOf returns the `isoguard ps` row of a pod.
func (n *isoNode) wrapperOf(t *testing.T, pod *harness.Pod) map[string]any {
	t.Helper()
	for _, r := range n.ps(t) {
		if r["id"] == pod.ID {
			return r
		}
	}
	t.Fatalf("isoguard ps lists no wrapper for pod %s: %v", pod.ID, n.ps(t))
	return nil
}

// wrappersOfDaemon lists the wrapper processes of this daemon.
func (n *isoNode) wrappersOfDaemon() []harness.Process {
	return n.processes(n.shim + " ")
}

// processes lists this node's processes whose command line holds substr.
func (n *isoNode) processes(substr string) []harness.Process {
	var out []harness.Process
	for _, p := range harness.ProcessesMatching(substr) {
		if n.owns(p) {
			out = append(out, p)
		}
	}
	return out
}

// kernel is what a container sees of the kernel.
func kernel(t *testing.T, ctr *harness.Container) string {
	t.Helper()
	return strings.TrimSpace(mustExec(t, ctr, true, "cat", "/proc/version"))
}

// criError is the message of the first CRI error crictl printed (crictl prints it twice:
// in its log line and in its final error).
func criError(stderr string) string {
	_, desc, ok := strings.Cut(stderr, "desc = ")
	if !ok {
		return stderr
	}
	desc, _, _ = strings.Cut(desc, "\n")
	// crictl's log line quotes the error: a quote inside reads \".
	desc, _, _ = strings.Cut(strings.ReplaceAll(desc, `\"`, `"`), `" containerID=`)
	return strings.TrimSuffix(desc, `"`)
}

// wantDenial: crictl's error is the denial: code PermissionDenied on containerd 2.x (which
// passes a failed Create's code on); containerd 1.7 loses it on the way
// (runtime/v2/shim.go maps the shim's PermissionDenied to Unknown), so its clients read
// Unknown, with the same message.
func wantDenial(t *testing.T, version, what, stderr, denial string) {
	t.Helper()
	code, suffix := "PermissionDenied", ""
	if version == "1.7" {
		code, suffix = "Unknown", ": unknown"
	}
	if !strings.Contains(stderr, "code = "+code) {
		t.Errorf("%s: %q, want code %s", what, stderr, code)
	}
	if msg := criError(stderr); !strings.HasSuffix(msg, denial+suffix) {
		t.Errorf("%s: error %q, want it to end with %q", what, msg, denial+suffix)
	}
}

// assertNamedOnce: the error kubelet would log names each of words at most once.
func assertNamedOnce(t *testing.T, stderr string, words ...string) {
	t.Helper()
	msg := criError(stderr)
	for _, w := range words {
		if n := strings.Count(strings.ToLower(msg), strings.ToLower(w)); n > 1 {
			t.Errorf("%q appears %d times in %q", w, n, msg)
		}
	}
}

const sleeper = "trap 'exit 0' TERM; while true; do sleep 1; done"

// TestIsoguardTrustedPod: a trusted tenant's pod through isoguard is unchanged: it runs
// in the node's runc shim as the user it asks for, on the host's kernel; a second container
// joins the pod's wrapper; exec, logs, stats and an in-place update work; `isoguard ps`
// shows the pod; nothing is left after removal.
func TestIsoguardTrustedPod(t *testing.T) { forEachVersion(t, testIsoguardTrustedPod) }

func testIsoguardTrustedPod(t *testing.T, version string) {
	n := startIsoNode(t, version, nodeOptions{})
	pod := n.RunPod(t, harness.PodConfig{Name: "dns", Namespace: trustedNS, Handler: isoguardHandler})
	app := pod.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", "echo trusted-started; " + sleeper},
		Resources: map[string]any{"memory_limit_in_bytes": 128 << 20}})
	second := pod.RunContainer(t, harness.ContainerConfig{Name: "second", Command: []string{"sh", "-c", sleeper}})

	if k := kernel(t, app); strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("trusted pod runs in gVisor: %s", k)
	}
	if got := strings.TrimSpace(mustExec(t, app, false, "id", "-u")); got != "0" {
		t.Errorf("trusted container's user: uid %s, want 0 (unchanged)", got)
	}
	waitFor(t, 10*time.Second, "app's log", func() bool { out, _ := app.Logs(t); return strings.Contains(out, "trusted-started") })
	if st := app.Stats(t); st.MemoryWorkingSetBytes == 0 {
		t.Errorf("stats through isoguard: %v", st.Raw)
	}
	app.Update(t, "--memory", strconv.Itoa(64<<20))
	if got := hostCgroupFile(t, inspectPid(t, app), "memory", "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
		t.Errorf("in-place update through isoguard: memory limit %s, want %d", got, 64<<20)
	}

	// One wrapper for the pod: the second container joined it.
	if ws := n.wrappersOfDaemon(); len(ws) != 1 {
		t.Errorf("wrapper processes: %v, want exactly one for the pod", ws)
	}
	n.assertJoinPath(t, version, pod.ID, app.ID, second.ID)
	w := n.wrapperOf(t, pod)
	if w["trusted"] != true || w["isolation"] != "runc" || !strings.HasSuffix(fmt.Sprint(w["delegate"]), "containerd-shim-runc-v2") || w["user"] != nil || w["kubernetesPod"] != "dns" {
		t.Errorf("isoguard ps: %v", w)
	}
	for _, id := range []string{pod.ID, app.ID, second.ID} {
		call := "create"
		if r := n.record(t, call, id); r.Outcome != audit.OutcomeAllowed || !r.Trusted {
			t.Errorf("audit of %s %s: %+v", call, id, r)
		}
	}

	start := time.Now()
	pod.Stop(t)
	pod.Remove(t, false)
	t.Logf("trusted pod stopped and removed in %v", time.Since(start).Round(time.Millisecond))
	assertEmpty(t, n.CRIDaemon)
}

// TestIsoguardUntrustedPod: an untrusted tenant's pod runs in gVisor (the kernel seen from
// inside) as the policy's uid; an exec as root is rewritten; a host path is denied at
// StartContainer with the rule in the error kubelet logs (PermissionDenied); an update past
// the limits is denied; a second container joins the pod's sandbox; stop and remove finish
// promptly; nothing is left.
func TestIsoguardUntrustedPod(t *testing.T) { forEachVersion(t, testIsoguardUntrustedPod) }

func testIsoguardUntrustedPod(t *testing.T, version string) {
	n := startIsoNode(t, version, nodeOptions{})
	start := time.Now()
	pod := n.RunPod(t, harness.PodConfig{Name: "web", Namespace: untrustedNS, Handler: isoguardHandler})
	app := pod.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", "echo untrusted-started; " + sleeper}})
	t.Logf("untrusted pod with one container running after %v", time.Since(start).Round(time.Millisecond))

	if k := kernel(t, app); !strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("untrusted pod's kernel: %q, want gVisor's", k)
	}
	if got := strings.TrimSpace(mustExec(t, app, true, "id", "-u")); got != strconv.Itoa(sandboxUID) {
		t.Errorf("untrusted container's user (exec, root in the stored spec): uid %s, want %d", got, sandboxUID)
	}
	// The init process runs as the policy's uid too (its config.json was rewritten).
	if got := strings.TrimSpace(mustExec(t, app, true, "sh", "-c", "stat -c %u /proc/1")); got != strconv.Itoa(sandboxUID) {
		t.Errorf("untrusted init process's uid: %s, want %d", got, sandboxUID)
	}
	waitFor(t, 10*time.Second, "app's log", func() bool { out, _ := app.Logs(t); return strings.Contains(out, "untrusted-started") })

	// crictl inspect shows containerd's stored spec: the user before isoguard's rewrite.
	info, _ := app.Inspect(t)["info"].(map[string]any)
	spec, _ := info["runtimeSpec"].(map[string]any)
	proc, _ := spec["process"].(map[string]any)
	user, _ := proc["user"].(map[string]any)
	if uid, _ := user["uid"].(float64); uid != 0 {
		t.Errorf("crictl inspect's stored spec: uid %v; containerd stores the spec before the rewrite (uid 0)", user["uid"])
	}
	// isoguard ps shows what runs.
	w := n.wrapperOf(t, pod)
	if w["trusted"] != false || !strings.HasSuffix(fmt.Sprint(w["delegate"]), "containerd-shim-runsc-v1") || w["user"] != fmt.Sprintf("%d:%d", sandboxUID, sandboxUID) || w["tenant"] != untrustedNS {
		t.Errorf("isoguard ps: %v", w)
	}

	// A host path: denied when the task is created (StartContainer), with the rule and the
	// offender once, as PermissionDenied; the container never reaches gVisor.
	ctr, errOut, err := pod.TryRunContainer(t, harness.ContainerConfig{Name: "steal", Command: []string{"sh", "-c", sleeper},
		Extra: map[string]any{"mounts": []map[string]any{{"container_path": "/host-etc", "host_path": "/etc", "readonly": true}}}})
	if err == nil {
		t.Fatal("a container with a host path mount started")
	}
	wantDenial(t, version, "StartContainer of a host path", errOut, `isoguard: denied by rule untrusted.hostpath: mount /etc is not allowed (tenant "`+untrustedNS+`")`)
	assertNamedOnce(t, errOut, "isoguard", "untrusted.hostpath", "/etc", untrustedNS, "permission denied")
	if ctr != nil {
		ctr.Remove(t, true)
	}

	// An update past the policy's limit is denied; one within it goes through.
	if _, errOut, err := n.Crictl(t, "update", "--memory", strconv.Itoa((limitMB+1)<<20), app.ID); err == nil || !strings.Contains(errOut, "untrusted.update-limits") {
		t.Errorf("update past the limit: err %v, stderr %q", err, errOut)
	}
	app.Update(t, "--memory", strconv.Itoa(256<<20))

	// A second container joins the pod's sandbox: the same gVisor kernel, the same wrapper.
	second := pod.RunContainer(t, harness.ContainerConfig{Name: "second", Command: []string{"sh", "-c", sleeper}})
	if k := kernel(t, second); !strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("second container's kernel: %q", k)
	}
	if ws := n.wrappersOfDaemon(); len(ws) != 1 {
		t.Errorf("wrapper processes: %v, want exactly one for the pod", ws)
	}
	if r := n.record(t, "create", second.ID); r.Outcome != audit.OutcomeMutated || r.Trusted {
		t.Errorf("audit of the second container's create: %+v", r)
	}
	n.assertJoinPath(t, version, pod.ID, app.ID, second.ID)

	// Stop and remove finish promptly; removing a container leaves the pod running
	// (containerd 2.4 asks the pod's wrapper to Shut down for the container, and gVisor's
	// shim would exit on any Shutdown that reached it).
	second.Stop(t, 10*time.Second)
	second.Remove(t, false)
	if got := strings.TrimSpace(mustExec(t, app, true, "id", "-u")); got != strconv.Itoa(sandboxUID) {
		t.Errorf("exec after removing the second container: %q", got)
	}
	// A stop that hangs (gVisor behind the runc shim's BinaryName) ends only at
	// containerd's and crictl's timeouts, minutes; a loaded two-core machine takes up to
	// ~15 s for a prompt one.
	start = time.Now()
	pod.Stop(t)
	pod.Remove(t, false)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("stop and remove of the untrusted pod took %v", took)
	} else {
		t.Logf("untrusted pod stopped and removed in %v", took.Round(time.Millisecond))
	}
	assertEmpty(t, n.CRIDaemon)
}

// TestIsoguardPodDenied: a pod the policy denies at its start (host IPC: the sandbox
// bind-mounts the host's /dev/shm) is refused like a container, with PermissionDenied and
// the rule, the offender and the tenant once: the wrapper answers the sandbox's Create with
// the denial (containerd passes a Create's code on, not a start's). No delegate runs, and
// nothing is left.
func TestIsoguardPodDenied(t *testing.T) {
	n := startIsoNode(t, "2.4", nodeOptions{})
	_, errOut, err := n.TryRunPod(t, harness.PodConfig{Name: "hostipc", Namespace: untrustedNS, Handler: isoguardHandler,
		Extra: map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"ipc": 2}}}}})
	if err == nil {
		t.Fatal("an untrusted pod with host IPC started")
	}
	wantDenial(t, "2.4", "RunPodSandbox of a host-IPC pod", errOut, `isoguard: denied by rule untrusted.hostpath: mount /dev/shm is not allowed (tenant "`+untrustedNS+`")`)
	assertNamedOnce(t, errOut, "isoguard", "untrusted.hostpath", "/dev/shm", untrustedNS, "permission denied")
	if gv := n.gvisorProcesses(); len(gv) != 0 {
		t.Errorf("a denied pod started gVisor: %v", gv)
	}
	assertEmpty(t, n.CRIDaemon)
}

// TestIsoguardDefaultRuntime: with isoguard as containerd's default runtime, a pod that
// names no runtime handler gets the untrusted treatment: omitting a RuntimeClass is no way
// around the policy.
func TestIsoguardDefaultRuntime(t *testing.T) {
	n := startIsoNode(t, "2.4", nodeOptions{isoguardDefault: true})
	pod := n.RunPod(t, harness.PodConfig{Name: "nohandler", Namespace: untrustedNS})
	app := pod.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", sleeper}})
	if k := kernel(t, app); !strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("pod without a handler: kernel %q, want gVisor's", k)
	}
	if got := strings.TrimSpace(mustExec(t, app, true, "id", "-u")); got != strconv.Itoa(sandboxUID) {
		t.Errorf("pod without a handler: uid %s, want %d", got, sandboxUID)
	}
	if r := n.record(t, "start", pod.ID); r.Outcome != audit.OutcomeMutated || r.Trusted {
		t.Errorf("audit of the pod's start: %+v", r)
	}
	pod.Stop(t)
	pod.Remove(t, false)
	assertEmpty(t, n.CRIDaemon)
}

// TestIsoguardRestart: containerd restarts under a running trusted and a running
// untrusted pod; afterwards exec, stop and removal work through the same wrappers.
func TestIsoguardRestart(t *testing.T) {
	n := startIsoNode(t, "2.4", nodeOptions{})
	trusted := n.RunPod(t, harness.PodConfig{Name: "t", Namespace: trustedNS, Handler: isoguardHandler})
	tc := trusted.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", sleeper}})
	untrusted := n.RunPod(t, harness.PodConfig{Name: "u", Namespace: untrustedNS, Handler: isoguardHandler})
	uc := untrusted.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", sleeper}})
	before := n.wrappersOfDaemon()

	n.Restart(t)

	if after := n.wrappersOfDaemon(); len(after) != len(before) || len(after) != 2 {
		t.Errorf("wrappers before the restart %v, after %v: want the same two", before, after)
	}
	if got := strings.TrimSpace(mustExec(t, uc, true, "id", "-u")); got != strconv.Itoa(sandboxUID) {
		t.Errorf("exec in the untrusted pod after the restart: uid %s", got)
	}
	if got := strings.TrimSpace(mustExec(t, tc, false, "echo", "alive")); got != "alive" {
		t.Errorf("exec in the trusted pod after the restart: %q", got)
	}
	// A container created after the restart joins its pod's wrapper.
	late := untrusted.RunContainer(t, harness.ContainerConfig{Name: "late", Command: []string{"sh", "-c", sleeper}})
	if k := kernel(t, late); !strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("container created after the restart: kernel %q", k)
	}
	for _, p := range []*harness.Pod{trusted, untrusted} {
		p.Stop(t)
		p.Remove(t, false)
	}
	assertEmpty(t, n.CRIDaemon)
}
