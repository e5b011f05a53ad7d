package shim

import (
	"context"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
)

// Hooks is the wrapper's single interception point: the calls that decide isolation and
// identity pass through it as typed requests before they reach the delegate. A hook may
// modify the request in place (and the bundle's config.json); a returned error denies the
// call and should wrap an errdefs sentinel (errdefs.ErrPermissionDenied for a policy
// denial). It is converted to a ttrpc status once, at the ttrpc edge.
//
// A hook that panics denies: the proxy recovers and answers errdefs.ErrInternal.
type Hooks interface {
	// Start runs in the wrapper daemon before the delegate's `start`, for a sandbox or a
	// standalone container. It may replace in.Options (what the delegate receives on stdin)
	// and record pins into st (tenant, isolation) that later containers must match.
	Start(ctx context.Context, inst *Instance, in *StartInput) error
	// Join runs in `start` for a workload container that joins the pod of inst.
	Join(ctx context.Context, inst *Instance, bundle string) error
	Create(ctx context.Context, inst *Instance, req *taskv2.CreateTaskRequest) error
	Exec(ctx context.Context, inst *Instance, req *taskv2.ExecProcessRequest) error
	Update(ctx context.Context, inst *Instance, req *taskv2.UpdateTaskRequest) error
}

// Instance is what a hook knows about the wrapper instance a call arrived at.
type Instance struct {
	Namespace string
	// Bundle of the sandbox or standalone container that owns this wrapper.
	Bundle string
	State  *State
}

// PassThrough is the Hooks that changes nothing: the wrapper is then invisible.
type PassThrough struct{}

func (PassThrough) Start(context.Context, *Instance, *StartInput) error { return nil }
func (PassThrough) Join(context.Context, *Instance, string) error       { return nil }
func (PassThrough) Create(context.Context, *Instance, *taskv2.CreateTaskRequest) error {
	return nil
}
func (PassThrough) Exec(context.Context, *Instance, *taskv2.ExecProcessRequest) error { return nil }
func (PassThrough) Update(context.Context, *Instance, *taskv2.UpdateTaskRequest) error {
	return nil
}
