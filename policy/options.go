package policy

import (
	"fmt"
	"strings"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runcopts "github.com/containerd/containerd/api/types/runc/options"
	rtopts "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Runtime options type URLs. containerd marshals them with typeurl, which names a
// protobuf message by its full name without a "type.googleapis.com/" prefix; the shims
// decode with typeurl.UnmarshalAny, which resolves a URL by the name after its last "/"
// (protoregistry.FindMessageByURL). The policy accepts exactly what the delegate would
// decode as that type, and always writes the bare name.
const (
	// TypeURLRunhcsOptions is hcsshim's cmd/containerd-shim-runhcs-v1/options.Options.
	TypeURLRunhcsOptions = "containerd.runhcs.v1.Options"
	// TypeURLRuncOptions is containerd's api/types/runc/options.Options.
	TypeURLRuncOptions = "containerd.runc.v1.Options"
	// TypeURLRuntimeOptions is CRI's runtimeoptions.v1.Options, sent for a runtime_type
	// other than io.containerd.runhcs.v1 / io.containerd.runc.v2, and what a sandbox
	// runtime's shim reads (gVisor: pkg/shim/v1/runsc/container.go NewContainer).
	TypeURLRuntimeOptions = "runtimeoptions.v1.Options"
)

// messageName is the part of a type URL after its last "/".
func messageName(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '/')+1:]
}

// wantOptionsType is the options message the delegate of platform reads.
func wantOptionsType(p Platform) string {
	if p == Linux {
		return TypeURLRuncOptions
	}
	return TypeURLRunhcsOptions
}

// decodeOptions decodes runtime options for the delegate of platform. Options of any other
// type are an error naming the type URL: runhcs casts Create's options to its own type
// without checking (service_internal.go createInternal) and would panic; a runc shim would
// misread them.
func decodeOptions(p Platform, a *anypb.Any) (hcs *runhcsopts.Options, runc *runcopts.Options, err error) {
	if a == nil {
		return nil, nil, nil
	}
	name := messageName(a.GetTypeUrl())
	want := wantOptionsType(p)
	if name != want {
		hint := ""
		switch name {
		case TypeURLRuntimeOptions:
			hint = "; the CRI runtime handler must use runtime_type \"io.containerd.runhcs.v1\" (Windows) or \"io.containerd.runc.v2\" (Linux), with runtime_path pointing at isoguard"
		case TypeURLRunhcsOptions, TypeURLRuncOptions:
			hint = fmt.Sprintf("; these are the options of the other platform's shim, this node's delegate reads %s", want)
		}
		return nil, nil, fmt.Errorf("runtime options of type %q cannot be forwarded: the delegate reads %s%s", a.GetTypeUrl(), want, hint)
	}
	if p == Linux {
		runc = &runcopts.Options{}
		if err := proto.Unmarshal(a.GetValue(), runc); err != nil {
			return nil, nil, fmt.Errorf("runtime options of type %q do not decode: %s", a.GetTypeUrl(), protoErr(err))
		}
		return nil, runc, nil
	}
	hcs = &runhcsopts.Options{}
	if err := proto.Unmarshal(a.GetValue(), hcs); err != nil {
		return nil, nil, fmt.Errorf("runtime options of type %q do not decode: %s", a.GetTypeUrl(), protoErr(err))
	}
	return hcs, nil, nil
}

// encodeOptions marshals m into an Any with the bare type URL.
func encodeOptions(typeURL string, m proto.Message) (*anypb.Any, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: typeURL, Value: b}, nil
}

// windowsIsolation is the isolation runhcs gives a container with these options and spec
// (service_internal.go createInternal): HYPERVISOR options, or no/empty options and a
// spec with windows.hyperv set, mean Hyper-V; everything else is process isolation.
func windowsIsolation(o *runhcsopts.Options, hyperVSpec bool) string {
	if o.GetSandboxIsolation() == runhcsopts.Options_HYPERVISOR {
		return IsolationHyperV
	}
	if hyperVSpec && (o == nil || proto.Size(o) == 0) {
		return IsolationHyperV
	}
	return IsolationProcess
}

// linuxIsolation is where a Linux workload runs: the sandbox runtime's shim when its
// options are the sandbox's, else the OCI runtime the runc shim runs (Options.BinaryName,
// or runc).
func linuxIsolation(o *runcopts.Options, sandbox *rtopts.Options, sandboxShim string) string {
	if sandbox != nil {
		return sandboxShim
	}
	if b := o.GetBinaryName(); b != "" {
		return b
	}
	return IsolationRunc
}

// protoErr renders a protobuf error stably: google.golang.org/protobuf varies the space
// after its "proto:" prefix between builds (to discourage matching on messages), and
// decisions are compared and audited as text.
func protoErr(err error) string {
	s := strings.TrimPrefix(err.Error(), "proto:")
	return "invalid protobuf: " + strings.Join(strings.Fields(strings.ReplaceAll(s, "\u00a0", " ")), " ")
}
