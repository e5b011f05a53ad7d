//go:build windows && functional

package windowsnode

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Microsoft/go-winio/pkg/etw"
	"github.com/Microsoft/hcsshim"

	"github.com/isoguard/isoguard/shim"
)

// keepRunning makes a container print its user and stay up for an hour (nanoserver has
// cmd, whoami and ping; timeout.exe needs a console).
var keepRunning = []string{"cmd", "/c", "whoami & ping -n 3600 127.0.0.1 > NUL"}

// computeSystems lists the host's HCS compute systems by id (what `hcsdiag list` shows).
func computeSystems(t *testing.T) map[string]hcsshim.ContainerProperties {
	t.Helper()
	all, err := hcsshim.GetContainers(hcsshim.ComputeSystemQuery{})
	if err != nil {
		t.Fatalf("HCS: list compute systems: %v", err)
	}
	m := map[string]hcsshim.ContainerProperties{}
	for _, cs := range all {
		m[cs.ID] = cs
	}
	return m
}

// utilityVM is the id runhcs gives a pod's utility VM (cmd/containerd-shim-runhcs-v1/pod.go:
// "<sandbox id>@vm").
func utilityVM(podID string) string { return podID + "@vm" }

// assertHyperV: the pod runs in its own utility VM, and neither it nor its container is a
// process-isolated container on the host.
func assertHyperV(t *testing.T, podID string, containers ...string) {
	t.Helper()
	cs := computeSystems(t)
	vm, ok := cs[utilityVM(podID)]
	if !ok {
		t.Fatalf("no utility VM %s among the host's compute systems: pod %s is not Hyper-V isolated", utilityVM(podID), podID)
	}
	if !strings.EqualFold(vm.SystemType, "VirtualMachine") {
		t.Errorf("compute system %s has type %q, want VirtualMachine", vm.ID, vm.SystemType)
	}
	for _, id := range append([]string{podID}, containers...) {
		if c, ok := cs[id]; ok && strings.EqualFold(c.SystemType, "Container") {
			t.Errorf("%s is a container on the host (process isolation), want it inside %s", id, vm.ID)
		}
	}
}

func isUser(whoami, user string) bool {
	w := strings.ToLower(strings.TrimSpace(whoami))
	return strings.HasSuffix(w, `\`+strings.ToLower(user))
}

// TestUntrustedPodHyperVAndContainerUser: a pod of an untrusted namespace asks for
// ContainerAdministrator through the isoguard handler; it gets a utility VM, and both its
// container's process and an exec into it run as ContainerUser.
func TestUntrustedPodHyperVAndContainerUser(t *testing.T) {
	n := testNode(t)
	p := n.runPod(t, n.untrustedNS, n.handler)
	id, err := n.startContainer(t, p, container{User: "ContainerAdministrator", Command: keepRunning})
	if err != nil {
		t.Fatalf("untrusted container: %v", err)
	}
	assertHyperV(t, p.ID, id)

	if who := n.firstLogLine(t, id); !isUser(who, "ContainerUser") {
		t.Errorf("the container's process runs as %q, want ContainerUser (it asked for ContainerAdministrator)", who)
	}
	// kubectl exec inherits the user of the container's stored spec (ContainerAdministrator
	// here): isoguard rewrites the Exec request itself.
	out := n.must(t, "exec", "-s", id, "whoami")
	if !isUser(out, "ContainerUser") {
		t.Errorf("exec runs as %q, want ContainerUser", out)
	}
}

// auditRecord holds the audit fields this test reads (docs/audit.md).
type auditRecord struct {
	ID      string   `json:"id"`
	Outcome string   `json:"outcome"`
	Rules   []string `json:"rules"`
}

// findAudit looks for a record of id in the audit trail (the current file).
func findAudit(path, id string) (auditRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return auditRecord{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var found *auditRecord
	for sc.Scan() {
		var r auditRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.ID == id && r.Outcome == "denied" {
			found = &r
		}
	}
	if found == nil {
		return auditRecord{}, fmt.Errorf("no denied record for %s in %s", id, path)
	}
	return *found, sc.Err()
}

// TestUntrustedHostPathDenied: a container of an untrusted pod mounting the host's user
// profile does not start; the error names rule untrusted.hostpath, and so does the audit
// trail.
func TestUntrustedHostPathDenied(t *testing.T) {
	n := testNode(t)
	profile := os.Getenv("USERPROFILE")
	if profile == "" {
		t.Fatal("USERPROFILE is not set")
	}
	p := n.runPod(t, n.untrustedNS, n.handler)
	id, err := n.startContainer(t, p, container{
		Command: keepRunning,
		Mounts:  []map[string]any{{"container_path": `C:\hostprofile`, "host_path": profile, "readonly": true}},
	})
	if err == nil {
		t.Fatalf("a container mounting %s started in untrusted namespace %s", profile, n.untrustedNS)
	}
	if !strings.Contains(err.Error(), "untrusted.hostpath") {
		t.Fatalf("the error does not name rule untrusted.hostpath: %v", err)
	}
	t.Logf("denied as expected: %v", err)
	if id == "" {
		return // refused at create: nothing reached the task API, so no audit record
	}
	var rec auditRecord
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rec, err = findAudit(n.auditLog, id); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("audit trail: %v", err)
	}
	if !slices.Contains(rec.Rules, "untrusted.hostpath") {
		t.Errorf("audit record for %s lists rules %v, want untrusted.hostpath", id, rec.Rules)
	}
}

// TestTrustedNamespaceKeepsProcessIsolation: a pod of a trusted namespace passes isoguard
// unchanged: no utility VM, and its container keeps the user it asks for. Only meaningful
// when the handler's own options leave process isolation (install.ps1 -Isolation process /
// isoguard config containerd --isolation process); with the default (SandboxIsolation=1)
// every pod of the handler gets a utility VM by configuration, and the test skips.
func TestTrustedNamespaceKeepsProcessIsolation(t *testing.T) {
	n := testNode(t)
	opts := n.runtimeOptions(t, n.handler)
	if v, ok := opts["SandboxIsolation"].(float64); ok && v == 1 {
		t.Skipf("handler %s sets SandboxIsolation=1 for every pod (the default of isoguard config containerd): trusted pods are Hyper-V isolated by configuration; install with -Isolation process to test this", n.handler)
	}
	p := n.runPod(t, n.trustedNS, n.handler)
	id, err := n.startContainer(t, p, container{User: "ContainerAdministrator", Command: keepRunning})
	if err != nil {
		t.Fatalf("trusted container: %v", err)
	}
	cs := computeSystems(t)
	if _, ok := cs[utilityVM(p.ID)]; ok {
		t.Errorf("trusted pod %s has a utility VM; want process isolation", p.ID)
	}
	if c, ok := cs[p.ID]; !ok || !strings.EqualFold(c.SystemType, "Container") {
		t.Errorf("trusted pod %s is not a process-isolated container on the host (compute system: %+v, found %v)", p.ID, c.SystemType, ok)
	}
	if who := n.firstLogLine(t, id); !isUser(who, "ContainerAdministrator") {
		t.Errorf("trusted container runs as %q, want the ContainerAdministrator it asked for", who)
	}
}

// TestETWProviderID: the GUID docs/install-windows.md gives for the shim's ETW provider is
// the one Windows derives from its name (go-winio's etw.NewProvider).
func TestETWProviderID(t *testing.T) {
	p, err := etw.NewProvider(shim.ETWProviderName, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.ID.String(); !strings.EqualFold(got, shim.ETWProviderID) {
		t.Errorf("ETW provider %q has id %s, shim.ETWProviderID says %s", shim.ETWProviderName, got, shim.ETWProviderID)
	}
}
