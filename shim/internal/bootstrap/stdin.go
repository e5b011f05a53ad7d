// Package bootstrap speaks the two ends of a shim's `start`: the runtime options containerd
// writes on its stdin (a bare protobuf Any, or containerd 2.3+'s BootstrapParams), which
// the wrapper decodes and re-encodes in the format its delegate understands, and the answer
// a shim prints (a plain address, JSON, or a protobuf BootstrapResult), which the wrapper
// reads from its delegate.
package bootstrap

import (
	"fmt"
	"path/filepath"
	"strings"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/isoguard/isoguard/shim/hooks"
)

// MaxStdin bounds what `start` reads from stdin, like containerd's own shims
// (pkg/shim/shim.go reads at most 10 MiB).
const MaxStdin = 10 << 20

// StartInput is what containerd wrote on `start`'s stdin, decoded.
type StartInput struct {
	Format hooks.StdinFormat
	// Options are the runtime options (nil when none were sent).
	Options *anypb.Any
	// Bootstrap is the decoded BootstrapParams when Format is hooks.StdinBootstrap.
	Bootstrap *bootapi.BootstrapParams
}

// ParseStartInput decodes start's stdin. A bare Any can also decode as BootstrapParams
// (field 1 and 2 are strings in both), so, like containerd's own shims
// (pkg/shim/compat.go parseBootstrapParams), BootstrapParams is accepted only when its
// instance id and namespace match the command line.
func ParseStartInput(data []byte, id, namespace string) (StartInput, error) {
	if len(data) == 0 {
		return StartInput{Format: hooks.StdinEmpty}, nil
	}
	if len(data) > MaxStdin {
		return StartInput{}, fmt.Errorf("start: stdin holds more than %d bytes: %w", MaxStdin, errdefs.ErrInvalidArgument)
	}
	var params bootapi.BootstrapParams
	if err := proto.Unmarshal(data, &params); err == nil && params.GetInstanceID() == id && params.GetNamespace() == namespace {
		in := StartInput{Format: hooks.StdinBootstrap, Bootstrap: &params}
		var opts []*anypb.Any
		for _, ext := range params.GetExtensions() {
			switch v := ext.GetValue(); {
			case v == nil:
			case v.GetTypeUrl() == "":
				// Options without a type URL name no type: a bare Any without one is
				// refused below, and a delegate reading extensions by type would skip it.
				return StartInput{}, fmt.Errorf("start: BootstrapParams carries an extension without a type URL: %w", errdefs.ErrInvalidArgument)
			default:
				opts = append(opts, v)
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
	return StartInput{Format: hooks.StdinAny, Options: &a}, nil
}

// Encode renders the input for a delegate that understands format (hooks.StdinEmpty is never a
// target: a delegate gets hooks.StdinAny or hooks.StdinBootstrap). Options are taken from in.Options,
// which the start hook may have replaced. For hooks.StdinBootstrap from a bare Any (containerd
// < 2.3 in front of a 2.3+ delegate) the params are rebuilt from the command line and
// environment exactly as containerd 2.3+ fills them (core/runtime/v2/command.go).
func (in StartInput) Encode(format hooks.StdinFormat, l Launch) ([]byte, error) {
	switch format {
	case hooks.StdinAny:
		if in.Options == nil {
			return nil, nil
		}
		return proto.Marshal(in.Options)
	case hooks.StdinBootstrap:
		var params *bootapi.BootstrapParams
		if in.Bootstrap != nil {
			params = proto.Clone(in.Bootstrap).(*bootapi.BootstrapParams)
			params.Extensions = nil
		} else {
			level := bootapi.LogLevel_LOG_LEVEL_INFO
			if l.Debug {
				level = bootapi.LogLevel_LOG_LEVEL_DEBUG
			}
			params = &bootapi.BootstrapParams{
				InstanceID:             l.ID,
				Namespace:              l.Namespace,
				LogLevel:               level,
				ContainerdTtrpcAddress: l.TTRPCAddress,
				ContainerdGrpcAddress:  l.GRPCAddress,
				ContainerdBinary:       l.ContainerdBinary,
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

// Launch is what containerd tells a shim on its command line and in its environment
// (core/runtime/v2/command.go), from which BootstrapParams are rebuilt for a delegate that
// reads them when containerd sent a bare Any.
type Launch struct {
	ID, Namespace    string
	GRPCAddress      string // -address
	TTRPCAddress     string // $TTRPC_ADDRESS
	ContainerdBinary string // -publish-binary
	Debug            bool   // -debug
}

// DelegateFormat decides what a delegate gets. "auto" reproduces the choice containerd
// itself would make for the delegate's file name (core/runtime/v2/command.go: names
// containing shim-runc-v1 or shim-runhcs-v1 get a bare Any, everything else gets what this
// containerd sends), so the delegate sees exactly what it would see without the wrapper.
// Configure "any" or "bootstrap" when delegate and containerd are of different generations.
func DelegateFormat(configured hooks.StdinFormat, delegatePath string, received hooks.StdinFormat) (hooks.StdinFormat, error) {
	switch configured {
	case hooks.StdinAny, hooks.StdinBootstrap:
		return configured, nil
	case "", hooks.StdinAuto:
	default:
		return "", fmt.Errorf("delegate stdin format %q is not one of auto, any, bootstrap: %w", configured, errdefs.ErrInvalidArgument)
	}
	name := strings.ToLower(filepath.Base(delegatePath))
	if strings.Contains(name, "shim-runc-v1") || strings.Contains(name, "shim-runhcs-v1") {
		return hooks.StdinAny, nil
	}
	if received == hooks.StdinBootstrap {
		return hooks.StdinBootstrap, nil
	}
	return hooks.StdinAny, nil
}
