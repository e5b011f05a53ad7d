//go:build integration && linux

package cri

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isoguard/isoguard/integration/harness"
)

// TestCRIRuntimeHandlers shows how a test adds a runtime handler of its own (what the
// isoguard tier does with its shim): a second runc handler "runc-alt" with runtime_path (a
// copy of the runc shim under another name) and options (BinaryName, a private runc Root),
// made the default. A pod without a handler runs on it, a pod asking for "runc" on the
// plain handler; each handler's options reach its shim.
func TestCRIRuntimeHandlers(t *testing.T) { forEachVersion(t, testCRIRuntimeHandlers) }

func testCRIRuntimeHandlers(t *testing.T, version string) {
	bin, err := harness.BinDir(version)
	if err != nil {
		t.Fatal(err)
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	shim := filepath.Join(tmp, "containerd-shim-runc-alt")
	b, err := os.ReadFile(filepath.Join(bin, "containerd-shim-runc-v2"))
	if err == nil {
		err = os.WriteFile(shim, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(tmp, "runc")
	alt := harness.RuntimeHandler{
		Name:    "runc-alt",
		Type:    "io.containerd.runc.v2",
		Path:    shim,
		Options: map[string]any{"BinaryName": runc, "Root": root},
	}
	c := harness.CRIContainerd(t, version, harness.CRIOptions{
		Handlers:       []harness.RuntimeHandler{harness.RuncHandler(), alt},
		DefaultRuntime: alt.Name,
	})

	def := c.RunPod(t, harness.PodConfig{Name: "default-handler"})
	plain := c.RunPod(t, harness.PodConfig{Name: "runc-handler", Handler: "runc"})
	for _, p := range []*harness.Pod{def, plain} {
		ctr := p.RunContainer(t, harness.ContainerConfig{Name: "sleeper", Command: []string{"sleep", "3600"}})
		if got := strings.TrimSpace(mustExec(t, ctr, true, "echo", "hello "+p.ID[:12])); got != "hello "+p.ID[:12] {
			t.Errorf("exec in pod %s: %q", p.ID, got)
		}
	}
	if rh := podRuntimeHandler(t, plain); rh != "runc" {
		t.Errorf("pod run with --runtime runc reports runtime handler %q", rh)
	}
	// The CRI reports the handler as requested: "" for the default one, not its name
	// (internal/cri/server/sandbox_run.go stores r.GetRuntimeHandler()).
	if rh := podRuntimeHandler(t, def); rh != "" {
		t.Errorf("pod on the default handler reports runtime handler %q, want \"\"", rh)
	}

	// runc state: the default handler's pod under its Root option, the other in runc's default.
	if _, err := os.Stat(filepath.Join(root, harness.CRINamespace, def.ID)); err != nil {
		t.Errorf("pod on the default handler runc-alt: no runc state under its Root option: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", harness.CRINamespace, plain.ID)); err != nil {
		t.Errorf("pod on the runc handler: no runc state in runc's default root: %v", err)
	}
	// The default handler's shim is the runtime_path binary; the runc handler's is found on PATH.
	var altShims, plainShims int
	for _, p := range harness.ProcessesMatching(c.Address) {
		switch {
		case strings.HasPrefix(p.Cmdline, shim+" "):
			altShims++
		case strings.Contains(p.Cmdline, "containerd-shim-runc-v2 "):
			plainShims++
		}
	}
	if altShims != 1 || plainShims != 1 {
		t.Errorf("shim processes: %d of runtime_path %s, %d of containerd-shim-runc-v2: want one each (one shim per pod)", altShims, shim, plainShims)
	}

	for _, p := range []*harness.Pod{def, plain} {
		p.Stop(t)
		p.Remove(t, false)
	}
	assertEmpty(t, c)
}

func podRuntimeHandler(t *testing.T, p *harness.Pod) string {
	t.Helper()
	st, _ := p.Inspect(t)["status"].(map[string]any)
	rh, _ := st["runtimeHandler"].(string)
	return rh
}

// TestCRINeedsRestrictOOMScoreAdj: without CAP_SYS_RESOURCE, runc cannot give the sandbox
// the CRI's oom_score_adj (-998) unless restrict_oom_score_adj is set, which CRIContainerd
// does on such machines. With it forced off, RunPodSandbox fails, and the failed attempt
// leaves nothing behind.
func TestCRINeedsRestrictOOMScoreAdj(t *testing.T) {
	if harness.HasCapSysResource() {
		t.Skip("this process has CAP_SYS_RESOURCE: runc can set any oom_score_adj")
	}
	off := false
	c := harness.CRIContainerd(t, "2.4", harness.CRIOptions{RestrictOOMScoreAdj: &off})
	cfg, _ := c.WritePodConfig(t, harness.PodConfig{Name: "oom-score"})
	start := time.Now()
	out, errOut, err := c.Crictl(t, "runp", cfg)
	if err == nil {
		t.Fatalf("runp without restrict_oom_score_adj and without CAP_SYS_RESOURCE succeeded: %s", out)
	}
	t.Logf("runp failed after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))
	if !strings.Contains(errOut, "oom_score_adj") && !strings.Contains(errOut, "final child's PID") {
		t.Errorf("runp error does not name the oom score: %s", errOut)
	}
	assertEmpty(t, c)
}
