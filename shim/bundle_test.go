package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/policy"
)

func specWith(t *testing.T, ann map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"ociVersion": "1.1.0", "annotations": ann})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPodRole(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want PodRole
		err  string
	}{
		{"standalone", nil, PodRole{}, ""},
		{"sandbox", map[string]string{AnnotationContainerType: "sandbox", AnnotationSandboxID: "sb1"}, PodRole{"sandbox", "sb1"}, ""},
		{"workload", map[string]string{AnnotationContainerType: "container", AnnotationSandboxID: "sb1"}, PodRole{"container", "sb1"}, ""},
		{"type without id", map[string]string{AnnotationContainerType: "container"}, PodRole{}, "without"},
		{"id without type", map[string]string{AnnotationSandboxID: "sb1"}, PodRole{}, "without"},
		{"unknown type", map[string]string{AnnotationContainerType: "Sandbox", AnnotationSandboxID: "sb1"}, PodRole{}, "neither"},
		{"traversal in sandbox id", map[string]string{AnnotationContainerType: "container", AnnotationSandboxID: "../default/sb1"}, PodRole{}, "path separator"},
	} {
		got, err := podRole(specWith(t, tc.ann))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: got %+v, %v; want invalid argument containing %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := podRole([]byte("{not json")); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed spec: got %v", err)
	}
}

func TestReadSpecFileBounded(t *testing.T) {
	dir := t.TempDir()
	if _, err := readSpecFile(dir); err == nil {
		t.Fatal("missing config.json must be an error")
	}
	f, err := os.Create(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxSpecSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := readSpecFile(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge config.json: got %v", err)
	}
}

func TestStateRoundTripAndErrors(t *testing.T) {
	ns := t.TempDir()
	sb := filepath.Join(ns, "sb1")
	if err := os.Mkdir(sb, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(sb); !errdefs.IsNotFound(err) {
		t.Fatalf("missing record: got %v, want not found", err)
	}
	st := &State{ID: "sb1", Namespace: "k8s.io", Sandbox: true, Address: "unix:///run/x", Pid: 42,
		Delegate: DelegateState{Path: "/usr/bin/containerd-shim-runc-v2", Address: "unix:///run/y", Version: 3, Pid: 43, StdinFormat: StdinBootstrap},
		Pins:     &policy.Pins{Tenant: "team-a", Isolation: "hyperv"}}
	if err := writeState(sb, st); err != nil {
		t.Fatal(err)
	}
	got, err := readState(sb)
	if err != nil {
		t.Fatal(err)
	}
	if got.Delegate != st.Delegate || got.Address != st.Address || got.Pins == nil || *got.Pins != *st.Pins || got.Version != stateVersion {
		t.Fatalf("round trip: got %+v", got)
	}
	if fi, err := os.Stat(filepath.Join(sb, StateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode: %v %v", fi.Mode(), err)
	}
	// The workload container's bundle is a sibling of the sandbox's.
	if p, err := siblingBundle(filepath.Join(ns, "c1"), "sb1"); err != nil || p != sb {
		t.Fatalf("siblingBundle = %q, %v", p, err)
	}
	if _, err := siblingBundle(filepath.Join(ns, "c1"), "../../etc"); err == nil {
		t.Fatal("sandbox id with separators must be refused")
	}
	if err := os.WriteFile(filepath.Join(sb, StateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(sb); !errdefs.IsDataLoss(err) {
		t.Fatalf("corrupt record: got %v", err)
	}
	if err := os.WriteFile(filepath.Join(sb, StateFile), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(sb); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("future record: got %v", err)
	}
}
