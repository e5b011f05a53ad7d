//go:build integration && linux

package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/integration/harness"
)

// TestDemo is `make demo` (ISOGUARD_DEMO=1): isoguard the way a Linux node runs it, on a
// private containerd 2.4 with its CRI plugin, driven by crictl as kubelet would drive it.
// It narrates on stdout and checks what it shows.
func TestDemo(t *testing.T) {
	if os.Getenv("ISOGUARD_DEMO") != "1" {
		t.Skip("make demo runs it (ISOGUARD_DEMO=1)")
	}
	say := func(format string, args ...any) { fmt.Printf("\n\033[1m== "+format+"\033[0m\n", args...) }
	show := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }

	say("A private containerd 2.4 with its CRI plugin; the isoguard handler from `isoguard config containerd --os linux`")
	n := startIsoNode(t, "2.4", nodeOptions{})
	policy, err := os.ReadFile(n.policy)
	if err != nil {
		t.Fatal(err)
	}
	say("The node policy (%s)", n.policy)
	show("%s", policy)
	out, err := exec.Command(n.cli, "policy", "validate", n.policy).CombinedOutput()
	if err != nil {
		t.Fatalf("isoguard policy validate: %v %s", err, out)
	}
	show("$ isoguard policy validate\n%s", out)

	say("1. A pod of the trusted namespace %s (RuntimeClass isoguard): unchanged", trustedNS)
	tp := n.RunPod(t, harness.PodConfig{Name: "dns", Namespace: trustedNS, Handler: isoguardHandler})
	tc := tp.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", sleeper}})
	uid, k := strings.TrimSpace(mustExec(t, tc, false, "id", "-u")), kernel(t, tc)
	show("uid inside: %s\nkernel inside: %s", uid, k)
	if uid != "0" || strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("trusted pod: uid %s, kernel %s; want root on the host's kernel", uid, k)
	}

	say("2. A pod of the untrusted namespace %s, same request: in gVisor, not root", untrustedNS)
	up := n.RunPod(t, harness.PodConfig{Name: "web", Namespace: untrustedNS, Handler: isoguardHandler})
	uc := up.RunContainer(t, harness.ContainerConfig{Name: "app", Command: []string{"sh", "-c", sleeper}})
	uid, k = strings.TrimSpace(mustExec(t, uc, true, "id", "-u")), kernel(t, uc)
	show("uid inside: %s\nkernel inside: %s", uid, k)
	if uid != strconv.Itoa(sandboxUID) || !strings.Contains(strings.ToLower(k), "gvisor") {
		t.Errorf("untrusted pod: uid %s, kernel %s; want %d in gVisor", uid, k, sandboxUID)
	}

	say("3. The untrusted pod mounts the host's /etc: denied, the rule named in the error kubelet logs")
	steal, errOut, err := up.TryRunContainer(t, harness.ContainerConfig{Name: "steal", Command: []string{"sh", "-c", sleeper},
		Extra: map[string]any{"mounts": []map[string]any{{"container_path": "/host-etc", "host_path": "/etc", "readonly": true}}}})
	show("crictl: %s", criError(errOut))
	if err == nil || !strings.Contains(errOut, "untrusted.hostpath") {
		t.Errorf("a host path mount of an untrusted pod: err %v, %q", err, errOut)
	}
	if steal != nil {
		steal.Remove(t, true)
	}

	say("4. isoguard ps: the wrappers and what each pod runs in")
	ps, err := exec.Command(n.cli, "ps", "--state", n.State).CombinedOutput()
	if err != nil {
		t.Fatalf("isoguard ps: %v %s", err, ps)
	}
	show("%s", ps)

	say("5. The audit trail (%s): one record per decision", n.audit)
	recs := n.auditRecords(t)
	for _, r := range recs {
		b, _ := json.Marshal(struct {
			Call, ID, Tenant, Outcome string
			Rules                     []string
		}{r.Call, r.ID[:12], r.Tenant, r.Outcome, r.Rules})
		show("%s", b)
	}
	if r := n.record(t, "create", uc.ID); r.Outcome != audit.OutcomeMutated {
		t.Errorf("the untrusted container's create: %+v", r)
	}

	for _, p := range []*harness.Pod{tp, up} {
		p.Stop(t)
		p.Remove(t, false)
	}
	say("Done: the pods are removed; containerd stops and its directory goes when the demo ends")
}
