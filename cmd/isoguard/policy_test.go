package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPolicyValidate(t *testing.T) {
	for _, ex := range []struct{ file, platform string }{
		{"../../examples/policy-windows.yaml", "windows"},
		{"../../examples/policy-linux.yaml", "linux"},
	} {
		code, out, errs := runCLI("policy", "validate", "--platform", ex.platform, ex.file)
		if code != exitOK || !strings.Contains(out, "valid (platform "+ex.platform) {
			t.Errorf("%s: code %d out %q err %q", ex.file, code, out, errs)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nuntrusted:\n  usr: x\n"), 0o600)
	code, _, errs := runCLI("policy", "validate", "--platform", "windows", bad)
	if code != exitFail || !strings.Contains(errs, "line 4") || !strings.Contains(errs, "usr") {
		t.Errorf("invalid file: code %d, stderr %q", code, errs)
	}
	if code, _, _ := runCLI("policy", "validate"); code != exitUsage {
		t.Errorf("no file: code %d", code)
	}
	if code, _, _ := runCLI("policy", "frobnicate"); code != exitUsage {
		t.Errorf("unknown subcommand: code %d", code)
	}
	if code, out, _ := runCLI("policy", "--help"); code != exitOK || !strings.Contains(out, "validate") {
		t.Errorf("--help: %d %q", code, out)
	}
}

// TestPolicyValidatePlatformFromFile: a file that names its platform is validated for that
// platform on any machine (a GitOps check of Windows policies in Linux CI); --platform
// only fills in for a file that names none, and may not contradict one that does.
func TestPolicyValidatePlatformFromFile(t *testing.T) {
	for _, ex := range []struct{ file, platform string }{
		{"../../examples/policy-windows.yaml", "windows"},
		{"../../examples/policy-linux.yaml", "linux"},
	} {
		code, out, errs := runCLI("policy", "validate", ex.file)
		if code != exitOK || !strings.Contains(out, "valid (platform "+ex.platform) {
			t.Errorf("%s without --platform: code %d out %q err %q", ex.file, code, out, errs)
		}
	}
	other := map[string]string{"windows": "linux", "linux": "windows"}
	code, _, errs := runCLI("policy", "validate", "--platform", other["windows"], "../../examples/policy-windows.yaml")
	if code != exitFail || !strings.Contains(errs, "is for platform windows") {
		t.Errorf("contradicting --platform: code %d stderr %q", code, errs)
	}
	bare := filepath.Join(t.TempDir(), "bare.yaml")
	os.WriteFile(bare, []byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\nuntrusted:\n  allowWritableFileShares: true\n"), 0o600)
	if code, out, errs := runCLI("policy", "validate", "--platform", "windows", bare); code != exitOK || !strings.Contains(out, "platform windows") {
		t.Errorf("file without platform, --platform windows: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI("policy", "validate", "--platform", "linux", bare); code != exitFail || !strings.Contains(errs, "allowWritableFileShares") {
		t.Errorf("file without platform, --platform linux: %d %q", code, errs)
	}
}

// TestHelpOnce: every command's --help prints its usage once, on stdout, and exits 0.
func TestHelpOnce(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"policy", "--help"}, {"policy", "validate", "--help"}, {"explain", "--help"},
		{"config", "--help"}, {"config", "containerd", "--help"}, {"config", "runtimeclass", "-h"},
	} {
		code, out, errs := runCLI(args...)
		if code != exitOK || errs != "" || strings.Count(out, "Usage") != 1 {
			t.Errorf("%q: code %d, %d usages on stdout, stderr %q", args, code, strings.Count(out, "Usage"), errs)
		}
	}
}

// bundle writes a Windows-style config.json as containerd's CRI would for a pod sandbox.
func writeBundle(t *testing.T, dir string, spec map[string]any) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestExplain(t *testing.T) {
	pol := "../../examples/policy-windows.yaml"
	ns := t.TempDir()
	ann := map[string]string{
		"io.kubernetes.cri.container-type":    "sandbox",
		"io.kubernetes.cri.sandbox-id":        "sb1",
		"io.kubernetes.cri.sandbox-namespace": "tenant-a",
		"io.kubernetes.cri.sandbox-name":      "web",
		"io.kubernetes.cri.sandbox-uid":       "6f1c2a9e-0000-4000-8000-000000000001",
	}
	sb := writeBundle(t, filepath.Join(ns, "sb1"), map[string]any{
		"ociVersion": "1.1.0", "annotations": ann,
		"process": map[string]any{"user": map[string]any{"username": "ContainerAdministrator"}, "args": []string{"cmd"}, "cwd": `C:\`},
		"windows": map[string]any{"layerFolders": []string{`C:\ProgramData\containerd\root\io.containerd.snapshotter.v1.windows\snapshots\1`}},
	})
	opts, _ := anypb.New(&runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS, SandboxPlatform: "windows/amd64"})
	opts.TypeUrl = "containerd.runhcs.v1.Options"
	raw, _ := proto.Marshal(opts)
	optsFile := filepath.Join(t.TempDir(), "options.pb")
	os.WriteFile(optsFile, raw, 0o600)

	code, out, errs := runCLI("explain", "--policy", pol, "--bundle", sb, "--options", optsFile)
	if code != exitOK {
		t.Fatalf("explain sandbox: code %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"start: ALLOWED", `tenant "tenant-a"`, "untrusted.isolation", "HYPERVISOR", "untrusted.user", `"ContainerAdministrator" -> "ContainerUser"`, "create: ALLOWED", `isolation "hyperv"`} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	// Explaining writes nothing.
	after, _ := os.ReadFile(filepath.Join(sb, "config.json"))
	if !strings.Contains(string(after), "ContainerAdministrator") {
		t.Fatal("explain modified config.json")
	}

	// A workload container with a host path outside the pod's kubelet dir: denied (exit 3).
	wann := map[string]string{}
	for k, v := range ann {
		wann[k] = v
	}
	wann["io.kubernetes.cri.container-type"] = "container"
	wann["io.kubernetes.cri.container-name"] = "app"
	c1 := writeBundle(t, filepath.Join(ns, "c1"), map[string]any{
		"ociVersion": "1.1.0", "annotations": wann,
		"process": map[string]any{"user": map[string]any{"username": "ContainerUser"}, "args": []string{"cmd"}, "cwd": `C:\`},
		"mounts":  []map[string]any{{"destination": `C:\ssh`, "source": `C:\Users\Administrator\.ssh`}},
		"windows": map[string]any{"layerFolders": []string{`C:\ProgramData\containerd\root\io.containerd.snapshotter.v1.windows\snapshots\1`}},
	})
	code, out, errs = runCLI("explain", "--policy", pol, "--platform", "windows", "--bundle", c1, "--sandbox-bundle", sb, "--json")
	if code != exitDenied {
		t.Fatalf("explain hostPath: code %d\n%s\n%s", code, out, errs)
	}
	var e explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	last := e.Decisions[len(e.Decisions)-1]
	if last.Allowed || len(last.Denials) == 0 || last.Denials[0].Rule != "untrusted.hostpath" || !strings.Contains(last.Denials[0].Reason, `C:\Users\Administrator\.ssh`) {
		t.Fatalf("decision %+v", last)
	}
	// Without --sandbox-bundle a workload container cannot be explained.
	if code, _, errs := runCLI("explain", "--policy", pol, "--platform", "windows", "--bundle", c1); code != exitUsage || !strings.Contains(errs, "--sandbox-bundle") {
		t.Fatalf("missing --sandbox-bundle: %d %q", code, errs)
	}
	if code, _, _ := runCLI("explain", "--policy", pol); code != exitUsage {
		t.Fatalf("missing --bundle: %d", code)
	}
}
