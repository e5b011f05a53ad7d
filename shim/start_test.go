package shim

import (
	"bytes"

	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apitypes "github.com/containerd/containerd/api/types"
	"google.golang.org/protobuf/proto"
)

func writeBundleSpec(t *testing.T, bundle string, ann map[string]string) {
	t.Helper()
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), specWith(t, ann), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startArgv(id string) []string {
	return []string{"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", id, "start"}
}

// podFixture makes a namespace directory with a recorded sandbox sb1 whose wrapper listens.
func podFixture(t *testing.T, sandbox bool, listening bool) (nsDir string, st *State) {
	t.Helper()
	nsDir = t.TempDir()
	sb := filepath.Join(nsDir, "sb1")
	writeBundleSpec(t, sb, map[string]string{AnnotationContainerType: "sandbox", AnnotationSandboxID: "sb1"})
	st = &State{ID: "sb1", Namespace: "k8s.io", Sandbox: sandbox, Pid: 4242,
		Address:  "unix://" + filepath.Join(nsDir, "wrapper.sock"),
		Delegate: DelegateState{Path: "/usr/bin/containerd-shim-runc-v2", Address: "unix://" + filepath.Join(nsDir, "delegate.sock"), Version: 3}}
	if listening {
		l, err := listen(st.Address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	if err := writeState(sb, st); err != nil {
		t.Fatal(err)
	}
	return nsDir, st
}

func runStart(t *testing.T, bundle, id string) (code int, stdout, stderr string) {
	t.Helper()
	t.Chdir(bundle)
	var out, errb bytes.Buffer
	code = Run(context.Background(), startArgv(id), bytes.NewReader(nil), &out, &errb, PassThrough{})
	return code, out.String(), errb.String()
}

func TestStartWorkloadJoinsRecordedPod(t *testing.T) {
	nsDir, st := podFixture(t, true, true)
	c1 := filepath.Join(nsDir, "c1")
	writeBundleSpec(t, c1, map[string]string{AnnotationContainerType: "container", AnnotationSandboxID: "sb1"})
	code, out, errs := runStart(t, c1, "c1")
	if code != 0 {
		t.Fatalf("start failed: %s", errs)
	}
	// Exactly the wrapper's address: nothing else on stdout, never the delegate's.
	if out != st.Address {
		t.Fatalf("start printed %q, want the pod wrapper's address %q", out, st.Address)
	}
	if errs != "" {
		t.Fatalf("start wrote to stderr on success (containerd reads both): %q", errs)
	}
	addr, err := os.ReadFile(filepath.Join(c1, "address"))
	if err != nil || string(addr) != st.Address {
		t.Fatalf("address file = %q, %v", addr, err)
	}
	var bj map[string]any
	data, _ := os.ReadFile(filepath.Join(c1, "bootstrap.json"))
	if err := json.Unmarshal(data, &bj); err != nil || bj["address"] != st.Address || bj["version"] != float64(2) {
		t.Fatalf("bootstrap.json = %s (%v)", data, err)
	}
}

func TestStartWorkloadRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		sandbox   bool
		listening bool
		claims    string
		want      string
	}{
		{"pod isoguard did not start", true, true, "nopod", "which isoguard did not start"},
		{"record of a standalone container", false, true, "sb1", "not as a pod sandbox"},
		{"pod wrapper not running", true, false, "sb1", "is not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nsDir, _ := podFixture(t, tc.sandbox, tc.listening)
			c := filepath.Join(nsDir, "c2")
			writeBundleSpec(t, c, map[string]string{AnnotationContainerType: "container", AnnotationSandboxID: tc.claims})
			code, out, errs := runStart(t, c, "c2")
			if code == 0 || out != "" {
				t.Fatalf("start succeeded (%q); want refusal", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr %q does not say %q", errs, tc.want)
			}
		})
	}
}

func TestStartRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	writeBundleSpec(t, dir, map[string]string{AnnotationContainerType: "container"})
	code, _, errs := runStart(t, dir, "x")
	if code == 0 || !strings.Contains(errs, "without "+AnnotationSandboxID) {
		t.Fatalf("code %d stderr %q", code, errs)
	}
	t.Chdir(dir)
	var out, errb bytes.Buffer
	code = Run(context.Background(), startArgv("x"), strings.NewReader("not protobuf at all"), &out, &errb, PassThrough{})
	if code == 0 || !strings.Contains(errb.String(), "neither BootstrapParams") {
		t.Fatalf("code %d stderr %q", code, errb.String())
	}
}

// serveWithPolicy runs the daemon for a fresh bundle under a node policy file with content
// policyYAML; it returns the daemon's readiness report, its flags, the policy file's path
// and serve's error.
func serveWithPolicy(t *testing.T, policyYAML string) ([]byte, Flags, string, error) {
	t.Helper()
	dir := t.TempDir()
	writeBundleSpec(t, dir, nil)
	cfg := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(cfg, []byte(policyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ConfigEnv, cfg)
	t.Chdir(dir)
	f := testFlags()
	f.Socket = "unix://" + filepath.Join(t.TempDir(), "w.sock")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = serve(context.Background(), f, bytes.NewReader(nil), w, PassThrough{})
	w.Close()
	report, _ := io.ReadAll(r)
	return report, f, cfg, err
}

// TestServeMissingDelegate: a delegate that does not exist fails start with a clear error,
// reported to `start` through the readiness pipe, and nothing is left listening.
func TestServeMissingDelegate(t *testing.T) {
	report, f, _, err := serveWithPolicy(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\ndelegate:\n  path: /nonexistent/containerd-shim-runhcs-v1\n")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/containerd-shim-runhcs-v1") {
		t.Fatalf("serve: %v", err)
	}
	var rd readiness
	if json.Unmarshal(report, &rd) != nil || !strings.Contains(rd.Error, "/nonexistent") {
		t.Fatalf("readiness report %q", report)
	}
	if _, err := os.Stat(strings.TrimPrefix(f.Socket, "unix://")); err == nil {
		t.Fatal("a failed serve left its socket behind")
	}
}

func TestServeInvalidConfigFailsClosed(t *testing.T) {
	_, _, cfg, err := serveWithPolicy(t, "apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\ndelegat: {}\n")
	if err == nil || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), "delegat") {
		t.Fatalf("serve with a broken policy file: %v", err)
	}
}

func TestInfoAndVersion(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: isoguard.dev/v1alpha1\nkind: NodePolicy\ndelegate:\n  path: /nonexistent/containerd-shim-runc-v2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ConfigEnv, cfg)
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"-info"}, bytes.NewReader(nil), &out, &errb, PassThrough{}); code != 0 {
		t.Fatalf("-info: %d %s", code, errb.String())
	}
	var ri apitypes.RuntimeInfo
	if err := proto.Unmarshal(out.Bytes(), &ri); err != nil {
		t.Fatalf("-info printed no RuntimeInfo: %v", err)
	}
	if ri.Name != RuntimeName || ri.GetVersion().GetVersion() == "" || ri.Annotations["isoguard.dev/config"] != cfg || !strings.Contains(ri.Annotations["isoguard.dev/delegate-error"], "/nonexistent") {
		t.Fatalf("RuntimeInfo %v", &ri)
	}
	out.Reset()
	if code := Run(context.Background(), []string{"-v"}, nil, &out, &errb, PassThrough{}); code != 0 || !strings.Contains(out.String(), "Version:") {
		t.Fatalf("-v: %d %q", code, out.String())
	}
	if code := Run(context.Background(), []string{"-namespace", "x", "bogus"}, nil, &out, &errb, PassThrough{}); code != 2 {
		t.Fatalf("unknown action: %d", code)
	}
}
