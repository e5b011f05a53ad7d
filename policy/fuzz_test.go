package policy

import (
	"encoding/json"
	"testing"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/shim/hooks"
)

// FuzzEvaluate feeds arbitrary spec JSON, an extra annotation, an extra mount source (also
// the request's stdout and a root file system mount) and arbitrary options bytes through
// every call on both platforms. Evaluate must not panic (a recovered panic shows as rule
// internal.error, which fails the target), a denial must carry an enforced finding, and
// malformed input must be denied:
//
//	go test ./policy -run '^$' -fuzz '^FuzzEvaluate$' -fuzztime 1000000x
func FuzzEvaluate(f *testing.F) {
	seed := func(s *specs.Spec) []byte {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	hcs, _ := proto.Marshal(&runhcsopts.Options{SandboxIsolation: runhcsopts.Options_PROCESS, DefaultContainerAnnotations: map[string]string{"io.microsoft.x": "y"}})
	runc, _ := proto.Marshal(&runcopts.Options{BinaryName: "runc"})
	f.Add(seed(winContainerSpec()), "io.microsoft.virtualmachine.kerneldrivers", `C:\x`, `C:\var\lib\kubelet\pods\`+podUID+`\x`, hcs, uint8(0), uint8(2))
	f.Add(seed(winSandboxSpec()), "microsoft.com/hostprocess-container", "true", `\\.\pipe\docker_engine`, []byte{}, uint8(1), uint8(0))
	f.Add(seed(linuxContainerSpec()), "dev.gvisor.flag.network", "host", "/var/lib/kubelet/pods/"+podUID+"/../x", runc, uint8(2), uint8(2))
	f.Add([]byte(`{"process":{"user":{"username":"ContainerAdministrator"}},"mounts":[{"source":"\\\\?\\C:\\..","type":"virtual-disk"}],"windows":{"devices":[{"id":"x"}]}}`), "io.microsoft.virtualmachine.computetopology.processor.count", "999999999999999999999", `C:/a/../../b`, []byte{0x0a, 0xff}, uint8(0), uint8(2))
	f.Add([]byte(`not json`), "", "", "", []byte{0xff}, uint8(3), uint8(4))
	f.Add(seed(linuxContainerSpec()), "upperdir", "binary:///usr/bin/logger?tag=x", "/run/containerd/fifo/1/c1-stdout", runc, uint8(2), uint8(2))
	f.Add(seed(winContainerSpec()), "parentLayerPaths", `["C:\ProgramData\containerd\root\x"]`, `\.\pipe\ctr-c1-stdout`, hcs, uint8(0), uint8(2))

	policies := map[Platform]*Policy{}
	for _, os := range []Platform{Windows, Linux} {
		file, err := Parse([]byte(header + "untrusted:\n  sandbox:\n    shim: /usr/local/bin/containerd-shim-runsc-v1\n    configPath: /etc/isoguard/runsc.toml\n  limits: {uvmProcessorCount: 2, uvmMemoryMB: 2048, memoryMB: 2048, cpuCount: 2, pids: 100}\n"))
		if err != nil {
			f.Fatal(err)
		}
		if os == Windows {
			file.Untrusted.Sandbox = Sandbox{}
		}
		if policies[os], err = Compile(file, os); err != nil {
			f.Fatal(err)
		}
	}
	calls := []Call{CallStart, CallJoin, CallCreate, CallExec, CallUpdate}
	rootfsTypes := []string{"overlay", "bind", "windows-layer", "CimFS", "BlockCIM", "ext4"}

	f.Fuzz(func(t *testing.T, specJSON []byte, key, value, source string, opts []byte, optsKind, call uint8) {
		var spec *specs.Spec
		var s specs.Spec
		if json.Unmarshal(specJSON, &s) == nil {
			spec = &s
			if key != "" {
				if spec.Annotations == nil {
					spec.Annotations = map[string]string{}
				}
				spec.Annotations[key] = value
			}
			if source != "" {
				spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/x", Source: source, Type: value})
			}
		}
		for _, platform := range []Platform{Windows, Linux} {
			typeURLs := []string{TypeURLRunhcsOptions, TypeURLRuncOptions, "runtimeoptions.v1.Options", key}
			var options *anypb.Any
			if int(optsKind) < len(typeURLs) {
				options = &anypb.Any{TypeUrl: typeURLs[optsKind], Value: opts}
			}
			c := calls[int(call)%len(calls)]
			role := []Role{cri.RoleSandbox, cri.RoleContainer, cri.RoleStandalone, ""}[int(optsKind)%4]
			in := Input{
				Call: c, Platform: platform, Namespace: "k8s.io", ID: "c1", Role: role, SandboxID: "c1",
				Spec: spec, Options: options,
				Process:           &specs.Process{User: specs.User{Username: value, UID: uint32(len(value))}},
				Resources:         &anypb.Any{TypeUrl: key, Value: specJSON},
				UpdateAnnotations: map[string]string{key: value},
				// The request's streams and root file system mounts (untrusted.stdio,
				// untrusted.host-programs, untrusted.rootfs).
				Stdio:  hooks.Stdio{Stdout: source, Stderr: value},
				Rootfs: []hooks.Mount{{Type: rootfsTypes[len(key)%len(rootfsTypes)], Source: source, Options: []string{key + "=" + value, "lowerdir=" + source}}},
			}
			if c == CallStart {
				in.Process = nil
			} else {
				in.Pod = &Pins{Tenant: "containerd:k8s.io", Namespace: "k8s.io", SandboxID: "c1", Isolation: value}
			}
			if spec != nil && spec.Annotations != nil {
				in.SandboxID = spec.Annotations[cri.SandboxID]
			}
			d := policies[platform].Evaluate(in)
			for _, f := range d.Denials {
				if f.Rule == RuleInternalError {
					t.Fatalf("%s %s: Evaluate panicked: %s", platform, c, f.Reason)
				}
			}
			enforced := false
			for _, f := range d.Denials {
				enforced = enforced || !f.Audit
			}
			if d.Allowed == enforced {
				t.Fatalf("%s %s: allowed=%v with enforced denials=%v", platform, c, d.Allowed, enforced)
			}
			needSpec := c == CallStart || c == CallJoin || c == CallCreate
			if needSpec && spec == nil && d.Allowed {
				t.Fatalf("%s %s: allowed without a spec", platform, c)
			}
			if options != nil && (c == CallStart || c == CallCreate) && d.Allowed {
				var m proto.Message = &runhcsopts.Options{}
				want := TypeURLRunhcsOptions
				if platform == Linux {
					m, want = &runcopts.Options{}, TypeURLRuncOptions
				}
				if messageName(options.TypeUrl) != want || proto.Unmarshal(opts, m) != nil {
					t.Fatalf("%s %s: allowed with options %q that the delegate cannot read", platform, c, options.TypeUrl)
				}
			}
			if d.Allowed && !d.Trusted && d.Options != nil && (c == CallStart || c == CallCreate) {
				if platform == Windows {
					var o runhcsopts.Options
					if proto.Unmarshal(d.Options.Value, &o) != nil || o.SandboxIsolation != runhcsopts.Options_HYPERVISOR {
						t.Fatalf("allowed untrusted options without Hyper-V: %v", &o)
					}
				}
			}
		}
	})
}
