package shim

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseFlagsContainerdArgv(t *testing.T) {
	// The argv containerd 2.4 builds (core/runtime/v2/command.go) for start and delete.
	startArgv := []string{"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "abc", "-debug", "start"}
	f, err := ParseFlags(startArgv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.Action != ActionStart || f.Namespace != "k8s.io" || f.ID != "abc" || !f.Debug || f.PublishBinary != "/usr/bin/containerd" {
		t.Fatalf("parsed %+v", f)
	}
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	if got := f.delegateArgs(ActionStart); !slices.Equal(got, startArgv) {
		t.Fatalf("delegate argv %q, want containerd's %q", got, startArgv)
	}
	deleteArgv := []string{"-namespace", "default", "-address", "/a.sock", "-publish-binary", "/c", "-id", "x", "-bundle", "/b/x", "delete"}
	f, err = ParseFlags(deleteArgv, io.Discard)
	if err != nil || f.validate() != nil {
		t.Fatalf("%v %v", err, f.validate())
	}
	if got := f.delegateArgs(ActionDelete); !slices.Equal(got, deleteArgv) {
		t.Fatalf("delegate argv %q, want %q", got, deleteArgv)
	}
	serve := f.serveArgs("unix:///run/s/1")
	sf, err := ParseFlags(serve, io.Discard)
	if err != nil || sf.Action != ActionServe || sf.Socket != "unix:///run/s/1" || sf.ID != "x" {
		t.Fatalf("serve argv %q parsed to %+v, %v", serve, sf, err)
	}
	// serveArgs must not have modified the delegate argv's backing array.
	if got := f.delegateArgs(ActionDelete); !slices.Equal(got, deleteArgv) {
		t.Fatalf("delegate argv changed to %q", got)
	}
}

func TestFlagsValidate(t *testing.T) {
	base := testFlags()
	for _, tc := range []struct {
		name   string
		mutate func(*Flags)
		want   string
	}{
		{"missing namespace and id", func(f *Flags) { f.Namespace, f.ID = "", "" }, "-namespace -id"},
		{"missing address", func(f *Flags) { f.Address = "" }, "-address"},
		{"id with separator", func(f *Flags) { f.ID = "../etc" }, "path separator"},
		{"dot-dot id", func(f *Flags) { f.ID = ".." }, "not a valid identifier"},
		{"delete without bundle", func(f *Flags) { f.Action = ActionDelete }, "-bundle"},
	} {
		f := base
		tc.mutate(&f)
		err := f.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}
