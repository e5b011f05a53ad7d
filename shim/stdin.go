package shim

import (
	"fmt"
	"path/filepath"
	"strings"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// StdinFormat is how runtime options reach a shim's `start` on stdin.
type StdinFormat string

const (
	// StdinEmpty: nothing on stdin (containerd sends nothing when a runtime has no options).
	StdinEmpty StdinFormat = "empty"
	// StdinAny: a protobuf-encoded bare google.protobuf.Any (containerd 1.x and 2.0-2.2, and
	// containerd 2.3+ for binaries named *shim-runc-v1* or *shim-runhcs-v1*).
	StdinAny StdinFormat = "any"
	// StdinBootstrap: a protobuf containerd.runtime.bootstrap.v1.BootstrapParams with the
	// options attached as an extension (containerd 2.3+, core/runtime/v2/command.go).
	StdinBootstrap StdinFormat = "bootstrap"
)

// maxStdin bounds what `start` reads from stdin, like containerd's own shims
// (pkg/shim/shim.go reads at most 10 MiB).
const maxStdin = 10 << 20

// StartInput is what containerd wrote on `start`'s stdin, decoded.
type StartInput struct {
	Format StdinFormat
	// Options are the runtime options (nil when none were sent).
	Options *anypb.Any
	// Bootstrap is the decoded BootstrapParams when Format is StdinBootstrap.
	Bootstrap *bootapi.BootstrapParams
}

// ParseStartInput decodes start's stdin. A bare Any can also decode as BootstrapParams
// (field 1 and 2 are strings in both), so, like containerd's own shims
// (pkg/shim/compat.go parseBootstrapParams), BootstrapParams is accepted only when its
// instance id and namespace match the command line.
func ParseStartInput(data []byte, id, namespace string) (StartInput, error) {
	if len(data) == 0 {
		return StartInput{Format: StdinEmpty}, nil
	}
	if len(data) > maxStdin {
		return StartInput{}, fmt.Errorf("start: stdin holds more than %d bytes: %w", maxStdin, errdefs.ErrInvalidArgument)
	}
	var params bootapi.BootstrapParams
	if err := proto.Unmarshal(data, &params); err == nil && params.GetInstanceID() == id && params.GetNamespace() == namespace {
		in := StartInput{Format: StdinBootstrap, Bootstrap: &params}
		var opts []*anypb.Any
		for _, ext := range params.GetExtensions() {
			if ext.GetValue() != nil {
				opts = append(opts, ext.GetValue())
			}
		}
		switch len(opts) {
		case 0:
		case 1:
			in.Options = opts[0]
		default:
			// containerd attaches exactly one extension (the runtime options); more than one
			// cannot be mapped onto a bare Any without guessing.
			urls := make([]string, len(opts))
			for i, o := range opts {
				urls[i] = o.GetTypeUrl()
			}
			return StartInput{}, fmt.Errorf("start: BootstrapParams carries %d extensions %v, expected at most one (the runtime options): %w", len(opts), urls, errdefs.ErrInvalidArgument)
		}
		return in, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil || a.GetTypeUrl() == "" {
		reason := "empty type URL"
		if err != nil {
			reason = err.Error()
		}
		return StartInput{}, fmt.Errorf("start: stdin (%d bytes) is neither BootstrapParams for id %q in namespace %q nor a protobuf Any (%s): %w",
			len(data), id, namespace, reason, errdefs.ErrInvalidArgument)
	}
	if len(a.ProtoReflect().GetUnknown()) > 0 {
		// A bare Any has fields 1 and 2 only; more fields mean BootstrapParams that name
		// another instance or namespace than the command line.
		return StartInput{}, fmt.Errorf("start: stdin is BootstrapParams for another instance than id %q in namespace %q: %w", id, namespace, errdefs.ErrInvalidArgument)
	}
	return StartInput{Format: StdinAny, Options: &a}, nil
}

// Encode renders the input for a delegate that understands format (StdinEmpty is never a
// target: a delegate gets StdinAny or StdinBootstrap). Options are taken from in.Options,
// which the start hook may have replaced. For StdinBootstrap from a bare Any (containerd
// < 2.3 in front of a 2.3+ delegate) the params are rebuilt from the command line and
// environment exactly as containerd 2.3+ fills them (core/runtime/v2/command.go).
func (in StartInput) Encode(format StdinFormat, f Flags, getenv func(string) string) ([]byte, error) {
	switch format {
	case StdinAny:
		if in.Options == nil {
			return nil, nil
		}
		return proto.Marshal(in.Options)
	case StdinBootstrap:
		var params *bootapi.BootstrapParams
		if in.Bootstrap != nil {
			params = proto.Clone(in.Bootstrap).(*bootapi.BootstrapParams)
			params.Extensions = nil
		} else {
			level := bootapi.LogLevel_LOG_LEVEL_INFO
			if f.Debug {
				level = bootapi.LogLevel_LOG_LEVEL_DEBUG
			}
			params = &bootapi.BootstrapParams{
				InstanceID:             f.ID,
				Namespace:              f.Namespace,
				LogLevel:               level,
				ContainerdTtrpcAddress: getenv("TTRPC_ADDRESS"),
				ContainerdGrpcAddress:  f.Address,
				ContainerdBinary:       f.PublishBinary,
			}
		}
		if in.Options != nil {
			if err := params.AddExtension(in.Options); err != nil {
				return nil, err
			}
		}
		return proto.Marshal(params)
	}
	return nil, fmt.Errorf("no stdin encoding %q for a delegate: %w", format, errdefs.ErrInvalidArgument)
}

// SocketDir is the directory containerd 2.3+ asks shims to put sockets in, if any.
func (in StartInput) SocketDir() string {
	if in.Bootstrap == nil {
		return ""
	}
	return in.Bootstrap.GetSocketDir()
}

// delegateStdinFormat decides what a delegate gets. "auto" reproduces the choice containerd
// itself would make for the delegate's file name (core/runtime/v2/command.go: names
// containing shim-runc-v1 or shim-runhcs-v1 get a bare Any, everything else gets what this
// containerd sends), so the delegate sees exactly what it would see without the wrapper.
// Configure "any" or "bootstrap" when delegate and containerd are of different generations.
func delegateStdinFormat(configured StdinFormat, delegatePath string, received StdinFormat) (StdinFormat, error) {
	switch configured {
	case StdinAny, StdinBootstrap:
		return configured, nil
	case "", "auto":
	default:
		return "", fmt.Errorf("delegate stdin format %q is not one of auto, any, bootstrap: %w", configured, errdefs.ErrInvalidArgument)
	}
	name := strings.ToLower(filepath.Base(delegatePath))
	if strings.Contains(name, "shim-runc-v1") || strings.Contains(name, "shim-runhcs-v1") {
		return StdinAny, nil
	}
	if received == StdinBootstrap {
		return StdinBootstrap, nil
	}
	return StdinAny, nil
}
