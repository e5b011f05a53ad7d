package relay

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/internal/logfields"
	"github.com/isoguard/isoguard/shim/hooks"
)

// intercepted returns the handler of an intercepted task method: the request is decoded
// into its typed message, what the hook needs is handed to it, what the hook may change is
// written back, and the (possibly changed) request is relayed. A hook error or panic denies
// the call; the delegate never sees it. A created task joins the pod's tasks.
func (p *Proxy) intercepted(method string) ttrpc.Method {
	switch method {
	case "Create":
		return intercept(p, method, func(ctx context.Context, r *taskv2.CreateTaskRequest) error {
			hr := &hooks.CreateRequest{
				ID: r.ID, Bundle: r.Bundle, Rootfs: mounts(r.Rootfs),
				Stdio:      hooks.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
				Checkpoint: r.Checkpoint, ParentCheckpoint: r.ParentCheckpoint,
				Options: r.Options,
			}
			if err := p.hooks.Create(ctx, p.inst, hr); err != nil {
				return err
			}
			r.Options = hr.Options
			return nil
		}, func(r *taskv2.CreateTaskRequest) { p.tasks.add(r.ID) })
	case "Exec":
		return intercept(p, method, func(ctx context.Context, r *taskv2.ExecProcessRequest) error {
			hr := &hooks.ExecRequest{
				ID: r.ID, ExecID: r.ExecID, Spec: r.Spec,
				Stdio: hooks.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
			}
			if err := p.hooks.Exec(ctx, p.inst, hr); err != nil {
				return err
			}
			r.Spec = hr.Spec
			return nil
		}, nil)
	case "Update":
		// An Update is judged, never rewritten.
		return intercept(p, method, func(ctx context.Context, r *taskv2.UpdateTaskRequest) error {
			return p.hooks.Update(ctx, p.inst, &hooks.UpdateRequest{ID: r.ID, Resources: r.Resources, Annotations: r.Annotations})
		}, nil)
	}
	return nil
}

// mounts copies the task API's mounts for a hook.
func mounts(in []*types.Mount) []hooks.Mount {
	if len(in) == 0 {
		return nil
	}
	out := make([]hooks.Mount, len(in))
	for i, m := range in {
		out[i] = hooks.Mount{Type: m.GetType(), Source: m.GetSource(), Target: m.GetTarget(), Options: slices.Clone(m.GetOptions())}
	}
	return out
}

func intercept[T any, PT interface {
	*T
	proto.Message
	GetID() string
}](p *Proxy, method string, hook func(context.Context, PT) error, done func(PT)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		defer p.track()()
		req := PT(new(T))
		if err := unmarshal(req); err != nil {
			err = fmt.Errorf("decode %s request: %v: %w", method, err, errdefs.ErrInvalidArgument)
			p.hooks.Refused(ctx, hooks.Refusal{Call: strings.ToLower(method), Namespace: p.inst.Namespace, Cause: err})
			return nil, edge(err)
		}
		if err := RunHook(ctx, method, func() error { return hook(ctx, req) }); err != nil {
			fields := log.Fields{logfields.Method: method, logfields.ID: req.GetID()}
			if r, ok := any(req).(interface{ GetExecID() string }); ok && r.GetExecID() != "" {
				fields[logfields.ExecID] = r.GetExecID()
			}
			log.G(ctx).WithError(err).WithFields(fields).Warn("call denied")
			return nil, edge(err)
		}
		resp, err := p.call(ctx, p.delegateTask, method, req)
		if err == nil && done != nil {
			done(req)
		}
		return resp, err
	}
}

// RunHook runs a hook; a panic becomes a denial (fail closed), never an allow.
func RunHook(ctx context.Context, method string, hook func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.G(ctx).WithField(logfields.Method, method).WithField(logfields.Stack, string(debug.Stack())).Errorf("hook panicked: %v", r)
			err = fmt.Errorf("%s denied: the check failed (%v): %w", method, r, errdefs.ErrInternal)
		}
	}()
	return hook()
}
