package shim

import (
	"context"
	"io"

	apitypes "github.com/containerd/containerd/api/types"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
	"github.com/isoguard/isoguard/version"
)

// Annotations of the wrapper's RuntimeInfo.
const (
	infoDelegate        = "isoguard.dev/delegate"
	infoDelegateError   = "isoguard.dev/delegate-error"
	infoDelegateVersion = "isoguard.dev/delegate-version"
)

// Describer is implemented by hooks that add annotations to the wrapper's RuntimeInfo
// (the enforcer names its policy file).
type Describer interface {
	Describe() map[string]string
}

// info answers `-info` with a protobuf RuntimeInfo. containerd 2.x calls it once per
// runtime (stdin: the runtime options); a failure is only logged by containerd. The
// delegate's features (e.g. runc's OCI features) describe what actually runs.
func info(ctx context.Context, stdin io.Reader, stdout io.Writer, h hooks.Hooks, f Flags) error {
	ri := &apitypes.RuntimeInfo{
		Name:        RuntimeName,
		Version:     &apitypes.RuntimeVersion{Version: version.Version, Revision: version.Revision},
		Annotations: map[string]string{},
	}
	if d, ok := h.(Describer); ok {
		for k, v := range d.Describe() {
			ri.Annotations[k] = v
		}
	}
	if err := describeDelegate(ctx, ri, stdin, h, f); err != nil {
		ri.Annotations[infoDelegateError] = err.Error()
	}
	data, err := proto.Marshal(ri)
	if err != nil {
		return err
	}
	_, err = stdout.Write(data)
	return err
}

func describeDelegate(ctx context.Context, ri *apitypes.RuntimeInfo, stdin io.Reader, h hooks.Hooks, f Flags) error {
	d, err := h.Delegate(ctx)
	if err != nil {
		return err
	}
	path, err := findDelegate(d.Path, f)
	if err != nil {
		return err
	}
	ri.Annotations[infoDelegate] = path
	opts, err := io.ReadAll(io.LimitReader(stdin, bootstrap.MaxStdin))
	if err != nil {
		return err
	}
	if di, err := runDelegateInfo(ctx, path, opts); err == nil {
		ri.Options, ri.Features = di.GetOptions(), di.GetFeatures()
		if v := di.GetVersion(); v != nil {
			ri.Annotations[infoDelegateVersion] = v.GetVersion()
		}
	}
	return nil
}
