//go:build integration && linux

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isoguard/isoguard/audit"
	"github.com/isoguard/isoguard/integration/harness"
)

// linuxPolicy is the Linux profile with gVisor's shim for untrusted pods, which runs CRI
// pods only: through ctr, an untrusted tenant's standalone container is denied (the CRI
// tier, integration/cri, runs untrusted pods in gVisor).
func linuxPolicy(t *testing.T) string {
	return fmt.Sprintf(`platform: linux
untrusted:
  sandbox:
    shim: %s
    configPath: /nonexistent/runsc.toml
    podsOnly: true
  linuxUser: {uid: 65534, gid: 65534}
`, filepath.Join(harness.GVisorTestBin(t), "containerd-shim-runsc-v1"))
}

func readAudit(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	var out []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func findRecord(recs []audit.Record, ns, id, call string) *audit.Record {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Namespace == ns && recs[i].ID == id && recs[i].Call == call {
			return &recs[i]
		}
	}
	return nil
}

// TestPolicyLinuxUntrustedAndTrusted: through real containerd 2.4 and the runc shim, a
// direct client's (ctr) containers: a trusted namespace's run unchanged (root, the host's
// kernel); an untrusted namespace's standalone container is denied (the sandbox shim runs
// CRI pods only), and a host secret directory mount is denied with the rule id in ctr's
// error, the secret never read; every decision is audited without secrets.
func TestPolicyLinuxUntrustedAndTrusted(t *testing.T) {
	w := startWrapperDaemon(t, "2.4", linuxPolicy(t))
	untrusted := "tenant-" + w.Namespace
	harness.ImportImage(t, w.Daemon, untrusted)
	ctrN := func(ns string, args ...string) (string, string, error) {
		return w.Ctr(t, append([]string{"-n", ns}, args...)...)
	}

	// Untrusted standalone container: denied at Create, naming the rule, never started.
	_, errOut, err := ctrN(untrusted, "run", "--rm", "--runtime", w.shim, "--env", "SECRET_TOKEN=hunter2", harness.ImageRef, "u1", harness.ImageTool, "id")
	if err == nil || !strings.Contains(errOut, "denied by rule untrusted.isolation") || !strings.Contains(errOut, "runs CRI pods only") {
		t.Fatalf("untrusted standalone container: err %v, stderr %q", err, errOut)
	}
	ctrN(untrusted, "container", "delete", "u1")

	// Untrusted: a host secret directory is not mounted; the error names the rule.
	secrets := t.TempDir()
	if err := os.WriteFile(filepath.Join(secrets, "id_ed25519"), []byte("PRIVATE"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = ctrN(untrusted, "run", "--rm", "--runtime", w.shim, "--mount", "type=bind,src="+secrets+",dst=/secrets,options=rbind:ro", harness.ImageRef, "u4", harness.ImageTool, "cat", "/secrets/id_ed25519")
	if err == nil || !strings.Contains(errOut, "untrusted.hostpath") || !strings.Contains(errOut, secrets) || strings.Contains(errOut, "PRIVATE") {
		t.Fatalf("host secret mount: err %v, stderr %q", err, errOut)
	}
	ctrN(untrusted, "container", "delete", "u4")

	// Trusted: unchanged (root, runc).
	out, _, err := w.run(t, "--rm", harness.ImageRef, "t1", harness.ImageTool, "id")
	if err != nil || strings.TrimSpace(out) != "uid=0 gid=0" {
		t.Fatalf("trusted id: %q %v", out, err)
	}

	// The audit trail: complete, and without the environment value.
	raw, err := os.ReadFile(w.audit)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "hunter2") || strings.Contains(string(raw), "PRIVATE") {
		t.Fatal("the audit log holds a secret from the spec")
	}
	recs := readAudit(t, w.audit)
	for _, c := range []struct {
		ns, id, call, outcome string
		rules                 []string
	}{
		{untrusted, "u1", "start", audit.OutcomeDenied, []string{"untrusted.isolation"}},
		{untrusted, "u4", "start", audit.OutcomeDenied, []string{"untrusted.hostpath"}},
		{w.Namespace, "t1", "start", audit.OutcomeAllowed, nil},
		{w.Namespace, "t1", "create", audit.OutcomeAllowed, nil},
	} {
		r := findRecord(recs, c.ns, c.id, c.call)
		if r == nil {
			t.Errorf("no audit record for %s %s/%s", c.call, c.ns, c.id)
			continue
		}
		if r.Outcome != c.outcome {
			t.Errorf("%s %s: outcome %q, want %q", c.call, c.id, r.Outcome, c.outcome)
		}
		for _, rule := range c.rules {
			if !strings.Contains(strings.Join(r.Rules, ","), rule) {
				t.Errorf("%s %s: rules %v lack %s", c.call, c.id, r.Rules, rule)
			}
		}
		if r.Time.IsZero() || r.Tenant == "" || r.Mode == "" || r.Policy != w.policy || r.Pid == 0 {
			t.Errorf("incomplete record %+v", r)
		}
		if c.ns == untrusted && r.Trusted || c.ns == w.Namespace && !r.Trusted {
			t.Errorf("%s %s: trusted=%v", c.call, c.id, r.Trusted)
		}
		if c.outcome == audit.OutcomeMutated {
			for _, m := range r.Mutations {
				if m.Rule == "" || m.Field == "" {
					t.Errorf("mutation without rule or field: %+v", m)
				}
			}
		}
	}
}

// TestPolicyBrokenFileDenies: an invalid or missing policy file denies every workload with
// an error naming the file and the problem -- never runs with a half-read policy.
func TestPolicyBrokenFileDenies(t *testing.T) {
	w := startWrapperDaemon(t, "2.4", "")
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown key", "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nuntrusted:\n  sandboxRuntim: /x\n", "sandboxRuntim"},
		{"not yaml", "apiVersion: [unclosed\n", "yaml"},
		{"wrong kind", "apiVersion: isoguard.dev/v1alpha1\nkind: Policy\n", "kind"},
		{"missing", "", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.content == "" {
				os.Remove(w.policy)
			} else if err := os.WriteFile(w.policy, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			id := "b-" + strings.ReplaceAll(tc.name, " ", "-")
			_, errOut, err := w.run(t, "--rm", harness.ImageRef, id, harness.ImageTool, "hello")
			// The status code (PermissionDenied, whatever made the file unusable) is what
			// ctr strips from its message; the CRI tier checks the code kubelet reads.
			if err == nil || !strings.Contains(errOut, w.policy) || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "isoguard: start "+id+" denied") {
				t.Fatalf("run with a broken policy: err %v, stderr %q", err, errOut)
			}
			w.Ctr(t, "container", "delete", id)
			r := findRecord(readAudit(t, w.audit), w.Namespace, id, "start")
			if r == nil || r.Outcome != audit.OutcomeDenied || !strings.Contains(r.Error, tc.want) {
				t.Fatalf("audit record for the denial: %+v", r)
			}
		})
	}
}

// TestPolicyLinuxHostReachAudited: what a direct client (ctr) can put in a task that reaches
// the host - a host directory as the root file system (ctr run --rootfs), a binary:// log
// program (--log-uri) - arrives at the policy through real containerd 2.4 and is named by
// untrusted.rootfs and untrusted.host-programs. The tenant is untrusted in audit mode, so
// the containers run (in the runc shim) and the audit trail records what enforce would deny.
func TestPolicyLinuxHostReachAudited(t *testing.T) {
	w := startWrapperDaemon(t, "2.4", "")
	tenant := "audited-" + w.Namespace
	writeFile(t, w.policy, policyYAML(w.Daemon, fmt.Sprintf(`  - containerdNamespace: %s
    trusted: false
    mode: audit
`, tenant)+linuxPolicy(t)))
	harness.ImportImage(t, w.Daemon, tenant)
	ctrN := func(args ...string) (string, string, error) {
		return w.Ctr(t, append([]string{"-n", tenant}, args...)...)
	}

	// A host directory as the root file system.
	rootfs := t.TempDir()
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tool := harness.BuildBinary(t, "./integration/testimage")
	data, err := os.ReadFile(tool)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rootfs, "bin", "tool"), string(data))
	if err := os.Chmod(filepath.Join(rootfs, "bin", "tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := ctrN("run", "--rm", "--runtime", w.shim, "--rootfs", rootfs, "rfs", "/bin/tool", "hello")
	if err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("audited --rootfs container: %v %q %q", err, out, errOut)
	}
	// A binary:// log program: the runc shim hands it the container's stdout and stderr as
	// fds 3 and 4 and waits until fd 5 closes (cmd/containerd-shim-runc-v2/process/io.go
	// NewBinaryIO).
	logger := filepath.Join(t.TempDir(), "logger")
	writeFile(t, logger, "#!/bin/sh\nexec 5>&-\ncat <&4 >/dev/null &\nexec cat <&3 >/dev/null\n")
	if err := os.Chmod(logger, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := ctrN("run", "--rm", "--runtime", w.shim, "--log-uri", "binary://"+logger, harness.ImageRef, "logbin", harness.ImageTool, "hello"); err != nil {
		t.Fatalf("audited --log-uri binary:// container: %v %q", err, errOut)
	}

	recs := readAudit(t, w.audit)
	for _, c := range []struct{ id, rule, field, reason string }{
		{"rfs", "untrusted.rootfs", "root.path", rootfs},
		{"logbin", "untrusted.host-programs", "stdout", logger},
	} {
		r := findRecord(recs, tenant, c.id, "create")
		if r == nil {
			t.Fatalf("no create record for %s", c.id)
		}
		found := false
		for _, f := range r.Denials {
			found = found || f.Rule == c.rule && f.Field == c.field && f.Audit && strings.Contains(f.Reason, c.reason)
		}
		if !found || r.Mode != "audit" {
			t.Errorf("create %s: want an audited finding of %s on %s naming %s, got mode %s denials %+v", c.id, c.rule, c.field, c.reason, r.Mode, r.Denials)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
