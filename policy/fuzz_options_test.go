package policy

import (
	"maps"
	"strings"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	rtopts "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
)

// The tenants of FuzzOptions: untrusted (enforced), trusted, untrusted in audit mode.
const (
	fuzzTrustedNS = "trusted-team"
	fuzzAuditNS   = "audited-team"
)

func fuzzOptionsPolicies(t testing.TB) (win, winDeny, linux *Policy) {
	tenants := "tenants:\n  - kubernetesNamespace: " + fuzzTrustedNS + "\n  - kubernetesNamespace: " + fuzzAuditNS + "\n    trusted: false\n    mode: audit\n"
	compile := func(platform Platform, src string) *Policy {
		f, err := Parse([]byte(header + tenants + src))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(f, platform)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	limits := "  limits: {uvmProcessorCount: 2, uvmMemoryMB: 2048}\n"
	return compile(Windows, "untrusted:\n"+limits),
		compile(Windows, "untrusted:\n  annotations: {onDisallowed: deny}\n"+limits),
		compile(Linux, "untrusted:\n  sandbox:\n    shim: /usr/local/bin/containerd-shim-runsc-v1\n    configPath: /etc/isoguard/runsc.toml\n    typeUrl: io.containerd.runsc.v1.options\n")
}

// fuzzCall is a CRI pod's start (sandbox) or a workload container's Create, of tenant ns,
// with pins from the pod's start with CRI's own options. The Create carries what CRI's
// CreateTaskRequest carries besides: the snapshotter's root file system mounts (below
// containerd's root directory) and the container's fifos (Linux, below containerd's state
// directory) or pipes (Windows, \\.\pipe\ctr-*).
func fuzzCall(t testing.TB, p *Policy, platform Platform, call Call, ns string) Input {
	var start, create Input
	if platform == Windows {
		start, create = winStart(t), winCreate(t)
		snap := `C:\ProgramData\containerd\root\io.containerd.snapshotter.v1.windows\snapshots\`
		create.Rootfs = []hooks.Mount{{Type: "windows-layer", Source: snap + "32", Options: []string{"rw", `parentLayerPaths=["` + strings.ReplaceAll(snap, `\`, `\\`) + `31"]`}}}
		create.Stdio = hooks.Stdio{Stdout: `\\.\pipe\ctr-` + containerID + "-stdout", Stderr: `\\.\pipe\ctr-` + containerID + "-stderr"}
	} else {
		create = linuxCreate(t)
		start = linuxCreate(t)
		start.Call, start.ID, start.Role, start.Pod = CallStart, sandboxID, cri.RoleSandbox, nil
		start.Spec.Annotations = linuxAnnotations(cri.RoleSandbox)
		snap := "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/"
		create.Rootfs = []hooks.Mount{{Type: "overlay", Source: "overlay", Options: []string{"index=off", "workdir=" + snap + "32/work", "upperdir=" + snap + "32/fs", "lowerdir=" + snap + "31/fs:" + snap + "30/fs"}}}
		io := "/run/containerd/io.containerd.grpc.v1.cri/containers/" + containerID + "/io/2873951021/" + containerID
		create.Stdio = hooks.Stdio{Stdout: io + "-stdout", Stderr: io + "-stderr"}
	}
	for _, in := range []*Input{&start, &create} {
		a := maps.Clone(in.Spec.Annotations)
		a[cri.SandboxNamespace] = ns
		in.Spec.Annotations = a
	}
	if call == CallStart {
		return start
	}
	d := p.Evaluate(start)
	if !d.Allowed || d.Pins == nil {
		t.Fatalf("%s start of tenant %s: %+v", platform, ns, d)
	}
	create.Pod = d.Pins
	return create
}

// delegateReads decodes options the way the delegate does (runhcs and the runc shim:
// typeurl.UnmarshalAny, which resolves the type by the name after the URL's last "/").
func delegateReads(a *anypb.Any) (proto.Message, error) {
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return nil, err
	}
	m, _ := v.(proto.Message)
	return m, nil
}

// FuzzOptions feeds arbitrary runtime options (type URL and bytes) with a CRI pod's start or
// a container's Create, on both platforms, for an untrusted, a trusted and an audited tenant,
// through Evaluate (decodeOptions, the isolation and annotation rules, encodeOptions).
// Properties: no panic; the options are refused as input.invalid exactly when the delegate
// (typeurl) would not decode them as its own options type; a trusted or audited tenant's
// options are forwarded as received; an untrusted Windows workload's options, as the delegate
// reads them, say HYPERVISOR, carry no unknown fields and the clamped VM size, and keep
// every field no rule restricts (and every annotation without a controlled prefix); they are
// a fixed point (evaluating the result again changes nothing); an untrusted Linux workload
// gets exactly the sandbox shim's options:
//
//	go test ./policy -run '^$' -fuzz '^FuzzOptions$' -fuzztime 1000000x
func FuzzOptions(f *testing.F) {
	add := func(url string, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		for _, sel := range []uint8{0, 1, 2, 3, 4, 5, 16, 17} {
			f.Add(url, b, sel)
		}
	}
	add(TypeURLRunhcsOptions, &runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS, ScaleCpuLimitsToSandbox: true})
	add(TypeURLRunhcsOptions, &runhcsopts.Options{SandboxIsolation: runhcsopts.Options_HYPERVISOR, SandboxPlatform: "windows/amd64", VmProcessorCount: 64, VmMemorySizeInMb: -1,
		BootFilesRootPath: `C:\boot`, NCProxyAddr: `\\.\pipe\ncproxy`, DefaultContainerAnnotations: map[string]string{
			"io.microsoft.virtualmachine.computetopology.processor.count": "16", "io.microsoft.container.processor.count": "2",
			"io.microsoft.disable-unsafe-operations": "false", "io.microsoft.virtualmachine.wcow.virtualSMB.nodirectmap": "false", "example.com/x": "y"}})
	add("type.googleapis.com/"+TypeURLRunhcsOptions, &runhcsopts.Options{SandboxPlatform: "linux/amd64"})
	add(TypeURLRuncOptions, &runcopts.Options{BinaryName: "/usr/bin/runc", SystemdCgroup: true, Root: "/run/containerd/runc"})
	add(TypeURLRuntimeOptions, &rtopts.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: "/etc/containerd/runsc.toml"})
	f.Add(TypeURLRunhcsOptions, []byte{0xf8, 0x7f, 0x01, 0x08, 0x05}, uint8(0)) // an unknown field, isolation 5
	f.Add(TypeURLRuncOptions, []byte{0xff}, uint8(1))
	f.Add("", []byte{}, uint8(2))

	win, winDeny, linux := fuzzOptionsPolicies(f)
	tenants := []string{tenantNS, fuzzTrustedNS, fuzzAuditNS, tenantNS}
	// Calls without options, one per policy, platform, call and tenant (the pins are
	// computed once: they do not depend on the fuzzed options).
	type key struct {
		p    *Policy
		call Call
		ns   string
	}
	calls := map[key]Input{}
	for _, p := range []*Policy{win, winDeny, linux} {
		for _, c := range []Call{CallStart, CallCreate} {
			for _, ns := range tenants {
				in := fuzzCall(f, p, p.Platform(), c, ns)
				// With CRI's own options every call runs: the properties below are not
				// vacuous.
				if d := p.Evaluate(in); !d.Allowed {
					f.Fatalf("%s %s of tenant %s with CRI's options: %+v", p.Platform(), c, ns, d.Denials)
				}
				calls[key{p, c, ns}] = in
			}
		}
	}

	f.Fuzz(func(t *testing.T, typeURL string, value []byte, sel uint8) {
		p := []*Policy{win, linux}[sel&1]
		if sel&16 != 0 && p == win {
			p = winDeny
		}
		call := []Call{CallStart, CallCreate}[sel>>1&1]
		ns := tenants[sel>>2&3]
		in := calls[key{p, call, ns}]
		in.Options = &anypb.Any{TypeUrl: typeURL, Value: value}
		platform := p.Platform()

		d := p.Evaluate(in)
		invalid := false
		for _, fd := range d.Denials {
			switch {
			case fd.Rule == RuleInternalError:
				t.Fatalf("%s %s: internal error: %s", platform, call, fd.Reason)
			case fd.Rule == RuleInvalidInput && fd.Field == "options":
				invalid = true
			case fd.Rule == RuleInvalidInput:
				t.Fatalf("%s %s: the fuzzed options made the rest of the input invalid: %+v", platform, call, fd)
			}
		}
		got, derr := delegateReads(in.Options)
		wantType := proto.Message(&runhcsopts.Options{})
		if platform == Linux {
			wantType = &runcopts.Options{}
		}
		readable := derr == nil && got != nil && got.ProtoReflect().Descriptor() == wantType.ProtoReflect().Descriptor()
		if invalid == readable {
			t.Fatalf("%s %s: options %q %x: refused=%v, but the delegate reads them as %T (%v)", platform, call, typeURL, value, invalid, got, derr)
		}
		if !d.Allowed {
			return
		}
		// What the delegate gets: the decision's options, else the options as received.
		eff := in.Options
		if d.Options != nil {
			eff = d.Options
		}
		if ns != tenantNS {
			// Trusted, or untrusted in audit mode: nothing is changed.
			if d.Options != nil || d.Spec != nil {
				t.Fatalf("%s %s of tenant %s: options or spec changed: %v", platform, call, ns, d.Options)
			}
			return
		}
		out, err := delegateReads(eff)
		if err != nil {
			t.Fatalf("%s %s: the delegate cannot read the options the policy let through (%q): %v", platform, call, eff.GetTypeUrl(), err)
		}
		if platform == Linux {
			want := &rtopts.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: "/etc/isoguard/runsc.toml"}
			if eff.GetTypeUrl() != TypeURLRuntimeOptions || !proto.Equal(out, want) || d.Delegate == nil && call == CallStart {
				t.Fatalf("linux %s: the sandbox shim gets %q %v (delegate %v)", call, eff.GetTypeUrl(), out, d.Delegate)
			}
			return
		}
		o, ok := out.(*runhcsopts.Options)
		if !ok || o.GetSandboxIsolation() != runhcsopts.Options_HYPERVISOR || len(o.ProtoReflect().GetUnknown()) > 0 ||
			o.GetVmProcessorCount() < 0 || o.GetVmProcessorCount() > 2 || o.GetVmMemorySizeInMb() < 0 || o.GetVmMemorySizeInMb() > 2048 {
			t.Fatalf("windows %s: untrusted options %v", call, out)
		}
		if got != nil {
			// Every field no rule restricts is kept.
			orig := proto.Clone(got).(*runhcsopts.Options)
			orig.ProtoReflect().SetUnknown(nil)
			orig.SandboxIsolation, orig.VmProcessorCount, orig.VmMemorySizeInMb = o.SandboxIsolation, o.VmProcessorCount, o.VmMemorySizeInMb
			orig.BootFilesRootPath, orig.NCProxyAddr = o.BootFilesRootPath, o.NCProxyAddr
			for k, v := range orig.DefaultContainerAnnotations {
				if !isControlledKey(k) && o.DefaultContainerAnnotations[k] != v {
					t.Fatalf("windows %s: annotation %q=%q of the options was not kept: %v", call, k, v, o.DefaultContainerAnnotations)
				}
			}
			orig.DefaultContainerAnnotations = o.DefaultContainerAnnotations
			if !proto.Equal(orig, o) {
				t.Fatalf("windows %s: options changed beyond the restricted fields:\n in  %v\n out %v", call, got, o)
			}
		}
		// A fixed point: the policy's own result passes unchanged.
		again := in
		again.Options = eff
		if d.Spec != nil {
			again.Spec = d.Spec
		}
		d2 := p.Evaluate(again)
		if !d2.Allowed || d2.Options != nil && !proto.Equal(d2.Options, eff) || len(d2.Mutations) > 0 {
			t.Fatalf("windows %s: the result is not a fixed point: allowed=%v options %v mutations %+v denials %+v", call, d2.Allowed, d2.Options, d2.Mutations, d2.Denials)
		}
	})
}
