package relay

import (
	"context"
	"fmt"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// RegisterRefusal serves the task API of a wrapper whose start was denied: no delegate
// runs, and the denial reaches containerd as the answer to Create. containerd lets the code
// of a failed Create through to its clients (a PermissionDenied status reaches kubelet as
// PermissionDenied), while a failed `start` reaches them as Unknown whatever it printed
// (core/runtime/v2/binary.go Start, shim_manager.go startShim; docs/shim.md). Connect answers
// the wrapper's pid; Shutdown answers and calls onShutdown (containerd shuts the wrapper down
// after the failed Create); every other method finds no task.
func RegisterRefusal(s *ttrpc.Server, denial error, pid int, onShutdown func()) {
	methods := map[string]ttrpc.Method{}
	for _, name := range taskServiceMethodNames() {
		name := name
		methods[name] = func(ctx context.Context, unmarshal func(any) error) (any, error) {
			if err := unmarshal(&emptypb.Empty{}); err != nil {
				return nil, edge(fmt.Errorf("decode %s request: %v: %w", name, err, errdefs.ErrInvalidArgument))
			}
			switch name {
			case "Create":
				return nil, edge(denial)
			case "Connect":
				return &taskv2.ConnectResponse{ShimPid: uint32(pid)}, nil
			case "Shutdown":
				onShutdown()
				return &emptypb.Empty{}, nil
			}
			return nil, edge(fmt.Errorf("%s: no task: the wrapper's start was denied: %w", name, errdefs.ErrNotFound))
		}
	}
	registerTask(s, methods)
}
