package bundle

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
)

func specWith(t *testing.T, ann map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"ociVersion": "1.1.0", "annotations": ann})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRole: the role of cri.ParseRole, and a sandbox id that must be one path element.
func TestRole(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ann       map[string]string
		role      cri.Role
		sandboxID string
		err       string
	}{
		{"standalone", nil, cri.RoleStandalone, "", ""},
		{"sandbox", map[string]string{cri.ContainerType: "sandbox", cri.SandboxID: "sb1"}, cri.RoleSandbox, "sb1", ""},
		{"workload", map[string]string{cri.ContainerType: "container", cri.SandboxID: "sb1"}, cri.RoleContainer, "sb1", ""},
		{"type without id", map[string]string{cri.ContainerType: "container"}, "", "", "without"},
		{"traversal in sandbox id", map[string]string{cri.ContainerType: "container", cri.SandboxID: "../default/sb1"}, "", "", "path separator"},
	} {
		role, id, err := Role(specWith(t, tc.ann))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: got %q %q, %v; want invalid argument containing %q", tc.name, role, id, err, tc.err)
			}
			continue
		}
		if err != nil || role != tc.role || id != tc.sandboxID {
			t.Errorf("%s: got %q %q, %v; want %q %q", tc.name, role, id, err, tc.role, tc.sandboxID)
		}
	}
	if _, _, err := Role([]byte("{not json")); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed spec: got %v", err)
	}
}

func TestReadSpecFileBounded(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadSpecFile(dir); err == nil {
		t.Fatal("missing config.json must be an error")
	}
	f, err := os.Create(filepath.Join(dir, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxSpecSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ReadSpecFile(dir); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge config.json: got %v", err)
	}
}

func TestRecordRoundTripAndErrors(t *testing.T) {
	ns := t.TempDir()
	sb := filepath.Join(ns, "sb1")
	if err := os.Mkdir(sb, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(sb); !errdefs.IsNotFound(err) {
		t.Fatalf("missing record: got %v, want not found", err)
	}
	rec := &Record{ID: "sb1", Namespace: "k8s.io", Sandbox: true, Address: "unix:///run/x", Pid: 42,
		Delegate: Delegate{Path: "/usr/bin/containerd-shim-runc-v2", Address: "unix:///run/y", Version: 3, Pid: 43, StdinFormat: hooks.StdinBootstrap},
		Pins:     json.RawMessage(`{"tenant":"team-a","isolation":"hyperv"}`)}
	if err := WriteRecord(sb, rec); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecord(sb)
	if err != nil {
		t.Fatal(err)
	}
	var pins bytes.Buffer
	if err := json.Compact(&pins, got.Pins); err != nil {
		t.Fatal(err)
	}
	if got.Delegate != rec.Delegate || got.Address != rec.Address || pins.String() != string(rec.Pins) || got.Version != recordVersion {
		t.Fatalf("round trip: got %+v", got)
	}
	inst := got.Instance(sb)
	if inst.ID != "sb1" || inst.Bundle != sb || !inst.Sandbox || inst.Delegate.Path != rec.Delegate.Path || string(inst.Pins) != string(got.Pins) {
		t.Fatalf("instance %+v", inst)
	}
	if fi, err := os.Stat(filepath.Join(sb, RecordFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode: %v %v", fi.Mode(), err)
	}
	// The workload container's bundle is a sibling of the sandbox's.
	if p, err := Sibling(filepath.Join(ns, "c1"), "sb1"); err != nil || p != sb {
		t.Fatalf("Sibling = %q, %v", p, err)
	}
	if _, err := Sibling(filepath.Join(ns, "c1"), "../../etc"); err == nil {
		t.Fatal("sandbox id with separators must be refused")
	}
	if err := os.WriteFile(filepath.Join(sb, RecordFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(sb); !errdefs.IsDataLoss(err) {
		t.Fatalf("corrupt record: got %v", err)
	}
	if err := os.WriteFile(filepath.Join(sb, RecordFile), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(sb); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("future record: got %v", err)
	}
}

// TestRestoreFiles: what containerd 1.x (address) and 2.x (bootstrap.json) restore from.
func TestRestoreFiles(t *testing.T) {
	dir := t.TempDir()
	if err := WriteRestoreFiles(dir, `unix:///run/containerd/s/"odd"`, 77, 3); err != nil {
		t.Fatal(err)
	}
	addr, _ := os.ReadFile(filepath.Join(dir, AddressFile))
	var bj struct {
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
		Version  int    `json:"version"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, BootstrapFile))
	if err := json.Unmarshal(data, &bj); err != nil || bj.Address != string(addr) || bj.Protocol != "ttrpc" || bj.Version != 3 {
		t.Fatalf("bootstrap.json %s (%v), address %q", data, err, addr)
	}
	if ReadPid(filepath.Join(dir, PidFile)) != 77 || ReadPid(filepath.Join(dir, "missing")) != 0 {
		t.Fatal("shim.pid")
	}
}
