package bootstrap

import (
	"bytes"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	hcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"

	"github.com/isoguard/isoguard/shim/hooks"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	// containerd's typeurl registers runtime options without the type.googleapis.com prefix.
	a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
	return a
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testLaunch() Launch {
	return Launch{Namespace: "k8s.io", GRPCAddress: "/run/containerd/containerd.sock", ContainerdBinary: "/usr/bin/containerd", ID: "abc123"}
}

func TestParseStartInputFormats(t *testing.T) {
	f := testLaunch()
	hcs := mustAny(t, &hcsopts.Options{SandboxIsolation: hcsopts.Options_HYPERVISOR, SandboxPlatform: "windows/amd64"})
	params := &bootapi.BootstrapParams{InstanceID: f.ID, Namespace: f.Namespace, ContainerdGrpcAddress: f.GRPCAddress, ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc"}
	if err := params.AddExtension(hcs); err != nil {
		t.Fatal(err)
	}
	noOpts := &bootapi.BootstrapParams{InstanceID: f.ID, Namespace: f.Namespace}

	for _, tc := range []struct {
		name    string
		data    []byte
		format  hooks.StdinFormat
		options *anypb.Any
		errPart string
	}{
		{name: "empty", data: nil, format: hooks.StdinEmpty},
		{name: "bare any", data: mustMarshal(t, hcs), format: hooks.StdinAny, options: hcs},
		{name: "bootstrap with options", data: mustMarshal(t, params), format: hooks.StdinBootstrap, options: hcs},
		{name: "bootstrap without options", data: mustMarshal(t, noOpts), format: hooks.StdinBootstrap},
		{name: "bootstrap for another id", data: mustMarshal(t, &bootapi.BootstrapParams{InstanceID: "other", Namespace: f.Namespace, ContainerdGrpcAddress: "x"}), errPart: "another instance"},
		{name: "garbage", data: []byte("\xff\xff\xff\xff"), errPart: "neither BootstrapParams"},
		{name: "text", data: []byte("hello world"), errPart: "neither BootstrapParams"},
		{name: "too large", data: bytes.Repeat([]byte{0}, MaxStdin+1), errPart: "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseStartInput(tc.data, f.ID, f.Namespace)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("want invalid-argument error containing %q, got %v (format %q)", tc.errPart, err, in.Format)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Format != tc.format {
				t.Fatalf("format = %q, want %q", in.Format, tc.format)
			}
			if !proto.Equal(in.Options, tc.options) {
				t.Fatalf("options = %v, want %v", in.Options, tc.options)
			}
		})
	}
}

func TestParseStartInputRejectsSeveralExtensions(t *testing.T) {
	f := testLaunch()
	p := &bootapi.BootstrapParams{InstanceID: f.ID, Namespace: f.Namespace}
	_ = p.AddExtension(mustAny(t, &hcsopts.Options{}))
	_ = p.AddExtension(mustAny(t, &runcopts.Options{}))
	_, err := ParseStartInput(mustMarshal(t, p), f.ID, f.Namespace)
	if err == nil || !strings.Contains(err.Error(), "2 extensions") {
		t.Fatalf("want error about 2 extensions, got %v", err)
	}
}

// TestEncodeBothDirections checks every conversion between what containerd sends and what
// a delegate understands, decoding the result the way the delegate does.
func TestEncodeBothDirections(t *testing.T) {
	f := testLaunch()
	f.Debug = true
	f.TTRPCAddress = "/run/containerd/containerd.sock.ttrpc"
	opts := mustAny(t, &runcopts.Options{BinaryName: "/usr/bin/runsc-wrapper", SystemdCgroup: false, Root: "/run/containerd/runsc"})
	socketDir := "/run/containerd/s2"
	boot := &bootapi.BootstrapParams{InstanceID: f.ID, Namespace: f.Namespace, ContainerdVersion: "v2.4.2", ContainerdGrpcAddress: f.GRPCAddress, ContainerdTtrpcAddress: f.TTRPCAddress, ContainerdBinary: f.ContainerdBinary, SocketDir: &socketDir, LogLevel: bootapi.LogLevel_LOG_LEVEL_DEBUG}
	_ = boot.AddExtension(opts)

	t.Run("bootstrap to any (containerd 2.3+ in front of runhcs)", func(t *testing.T) {
		in, err := ParseStartInput(mustMarshal(t, boot), f.ID, f.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		out, err := in.Encode(hooks.StdinAny, f)
		if err != nil {
			t.Fatal(err)
		}
		var got anypb.Any
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, opts) {
			t.Fatalf("delegate got %v, want %v", &got, opts)
		}
		var ro runcopts.Options
		if err := got.UnmarshalTo(&ro); err != nil || ro.BinaryName != "/usr/bin/runsc-wrapper" {
			t.Fatalf("options did not survive: %v %v", ro.BinaryName, err)
		}
	})
	t.Run("any to bootstrap (containerd 1.x in front of a 2.3+ shim)", func(t *testing.T) {
		in, err := ParseStartInput(mustMarshal(t, opts), f.ID, f.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		out, err := in.Encode(hooks.StdinBootstrap, f)
		if err != nil {
			t.Fatal(err)
		}
		var got bootapi.BootstrapParams
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		// What containerd's pkg/shim parseBootstrapParams checks.
		if got.InstanceID != f.ID || got.Namespace != f.Namespace {
			t.Fatalf("identity %q/%q, want %q/%q", got.InstanceID, got.Namespace, f.ID, f.Namespace)
		}
		if got.ContainerdGrpcAddress != f.GRPCAddress || got.ContainerdTtrpcAddress != f.TTRPCAddress || got.ContainerdBinary != f.ContainerdBinary {
			t.Fatalf("addresses not carried: %v", &got)
		}
		if got.LogLevel != bootapi.LogLevel_LOG_LEVEL_DEBUG {
			t.Fatalf("log level %v, want debug (-debug was set)", got.LogLevel)
		}
		var ro runcopts.Options
		found, err := got.FindExtension(&ro)
		if err != nil || !found || ro.BinaryName != "/usr/bin/runsc-wrapper" {
			t.Fatalf("options extension: found=%v err=%v %v", found, err, ro.BinaryName)
		}
	})
	t.Run("bootstrap to bootstrap keeps every field and the replaced options", func(t *testing.T) {
		in, err := ParseStartInput(mustMarshal(t, boot), f.ID, f.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		replaced := mustAny(t, &runcopts.Options{BinaryName: "/other"})
		in.Options = replaced
		out, err := in.Encode(hooks.StdinBootstrap, f)
		if err != nil {
			t.Fatal(err)
		}
		var got bootapi.BootstrapParams
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if got.GetSocketDir() != socketDir || got.ContainerdVersion != "v2.4.2" {
			t.Fatalf("fields lost: %v", &got)
		}
		if len(got.Extensions) != 1 || !proto.Equal(got.Extensions[0].Value, replaced) {
			t.Fatalf("extensions = %v, want only the replaced options", got.Extensions)
		}
		if in.SocketDir() != socketDir {
			t.Fatalf("SocketDir() = %q", in.SocketDir())
		}
	})
	t.Run("empty to any is empty", func(t *testing.T) {
		out, err := StartInput{Format: hooks.StdinEmpty}.Encode(hooks.StdinAny, f)
		if err != nil || len(out) != 0 {
			t.Fatalf("got %d bytes, err %v", len(out), err)
		}
	})
}

func TestDelegateFormat(t *testing.T) {
	for _, tc := range []struct {
		configured hooks.StdinFormat
		path       string
		received   hooks.StdinFormat
		want       hooks.StdinFormat
		wantErr    bool
	}{
		{"", `C:\Program Files\containerd\bin\containerd-shim-runhcs-v1.exe`, hooks.StdinBootstrap, hooks.StdinAny, false},
		{"auto", "/usr/bin/containerd-shim-runc-v1", hooks.StdinBootstrap, hooks.StdinAny, false},
		{"auto", "/opt/containerd/bin/containerd-shim-runc-v2", hooks.StdinBootstrap, hooks.StdinBootstrap, false},
		{"auto", "/opt/containerd/bin/containerd-shim-runc-v2", hooks.StdinAny, hooks.StdinAny, false},
		{"auto", "/opt/containerd/bin/containerd-shim-runc-v2", hooks.StdinEmpty, hooks.StdinAny, false},
		{"bootstrap", "/usr/bin/containerd-shim-runc-v2", hooks.StdinAny, hooks.StdinBootstrap, false},
		{"any", "/usr/bin/containerd-shim-runc-v2", hooks.StdinBootstrap, hooks.StdinAny, false},
		{"json", "/usr/bin/containerd-shim-runc-v2", hooks.StdinAny, "", true},
	} {
		got, err := DelegateFormat(tc.configured, tc.path, tc.received)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("DelegateFormat(%q, %q, %q) = %q, %v; want %q (err %v)", tc.configured, tc.path, tc.received, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestParseStartInputRefusesUntypedExtension: an extension whose Any has no type URL is not
// runtime options (a bare Any without one is refused too); read as options it became an
// empty Any that a bare-Any delegate reads as no options at all (found with
// FuzzParseStartInput's type URL property).
func TestParseStartInputRefusesUntypedExtension(t *testing.T) {
	f := testLaunch()
	for _, v := range []*anypb.Any{{}, {Value: []byte{0x08, 0x01}}} {
		p := &bootapi.BootstrapParams{InstanceID: f.ID, Namespace: f.Namespace, Extensions: []*bootapi.Extension{{Value: v}}}
		in, err := ParseStartInput(mustMarshal(t, p), f.ID, f.Namespace)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "without a type URL") {
			t.Errorf("extension %v: got %+v, %v; want invalid argument", v, in, err)
		}
	}
}
