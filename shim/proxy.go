package shim

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// ttrpc service names.
const (
	// TaskServiceV2 is the task API the wrapper serves to containerd: it answers `start`
	// with a plain address, which containerd reads as version 2 (core/runtime/v2/shim.go
	// parseStartResponse), the version containerd 1.7 accepts and the one that keeps
	// containerd 2.x calling `start` for every workload container of a pod.
	TaskServiceV2 = "containerd.task.v2.Task"
	// TaskServiceV3 is what a delegate that answered version 3 (the runc shim of
	// containerd >= 2.0) is spoken to in; v2 and v3 messages are identical on the wire
	// (core/runtime/v2/bridge.go).
	TaskServiceV3 = "containerd.task.v3.Task"
	// ShimDiagService is runhcs's diagnostics service (internal/shimdiag). Its
	// DiagExecInHost runs a command in the utility VM as SYSTEM (threats T12).
	ShimDiagService = "containerd.runhcs.v1.diag.ShimDiag"
	// ExtendedTaskService is runhcs's ExtendedTask (internal/extendedtask): read-only
	// processor information for a pod.
	ExtendedTaskService = "ExtendedTask"
)

// Class is what the wrapper does with one ttrpc method.
type Class string

const (
	// Forward: the request is relayed to the delegate byte for byte (decoded as
	// emptypb.Empty, which keeps every field as unknown fields) and so is the answer.
	Forward Class = "forward"
	// Intercept: the request is decoded into its typed message and passes the Hooks first.
	Intercept Class = "intercept"
	// Refuse: the wrapper answers with an error and the delegate never sees the call.
	Refuse Class = "refuse"
)

// TaskMethods classifies every method of containerd.task.v2.Task. A method added upstream
// and missing here is refused at run time (fail closed) and fails TestTaskMethodsClassified.
func TaskMethods() map[string]Class {
	return map[string]Class{
		"State":      Forward,
		"Create":     Intercept, // isolation, user, mounts, devices, annotations (config.json + Options)
		"Start":      Forward,   // starts what Create (or Exec) admitted
		"Delete":     Forward,
		"Pids":       Forward,
		"Pause":      Forward,
		"Resume":     Forward,
		"Checkpoint": Forward, // writes to a path chosen by containerd; no isolation change
		"Kill":       Forward,
		"Exec":       Intercept, // the exec'd process's user (threats T6)
		"ResizePty":  Forward,
		"CloseIO":    Forward,
		"Update":     Intercept, // resource changes after admission (threats T14)
		"Wait":       Forward,
		"Stats":      Forward,
		"Connect":    Forward,
		"Shutdown":   Forward, // a closed delegate connection counts as done
	}
}

// OtherServices classifies the delegate's services other than the task API. Services not
// listed are not registered, so ttrpc answers them Unimplemented.
func OtherServices() map[string]map[string]Class {
	return map[string]map[string]Class{
		// Refused: shimdiag reaches the utility VM as SYSTEM and shares host paths into it;
		// an administrator who needs it uses runhcs's own admin-only pipe directly
		// (`shimdiag` finds it by the runhcs pipe name).
		ShimDiagService: {
			"DiagExecInHost": Refuse,
			"DiagStacks":     Refuse,
			"DiagTasks":      Refuse,
			"DiagShare":      Refuse,
			"DiagPid":        Refuse,
		},
		ExtendedTaskService: {
			"ComputeProcessorInfo": Forward,
		},
	}
}

// Proxy serves containerd's task API on the wrapper's address and relays it to the delegate.
type Proxy struct {
	client caller
	// delegateTask is the task service name the delegate serves (v2 or v3).
	delegateTask string
	hooks        Hooks
	inst         *Instance
	inflight     atomic.Int64 // calls being handled
}

// track counts a call in flight until the returned func runs.
func (p *Proxy) track() func() {
	p.inflight.Add(1)
	return func() { p.inflight.Add(-1) }
}

// waitIdle waits until no call is being handled, at most max.
func (p *Proxy) waitIdle(max time.Duration) {
	deadline := time.Now().Add(max)
	for p.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// NewProxy returns a proxy to client (a *ttrpc.Client or the wrapper's delegate
// connection), which speaks task API version delegateVersion (2 or 3).
func NewProxy(client caller, delegateVersion int, hooks Hooks, inst *Instance) (*Proxy, error) {
	p := &Proxy{client: client, hooks: hooks, inst: inst}
	switch delegateVersion {
	case 2:
		p.delegateTask = TaskServiceV2
	case 3:
		p.delegateTask = TaskServiceV3
	default:
		return nil, fmt.Errorf("delegate answered task API version %d; isoguard speaks 2 and 3: %w", delegateVersion, errdefs.ErrNotImplemented)
	}
	if p.hooks == nil {
		p.hooks = PassThrough{}
	}
	return p, nil
}

// Register registers the task service and the other classified services on s.
func (p *Proxy) Register(s *ttrpc.Server) {
	methods := map[string]ttrpc.Method{}
	for name, class := range TaskMethods() {
		methods[name] = p.taskMethod(name, class)
	}
	// Every method of the generated service that is not classified is refused.
	for _, name := range taskServiceMethodNames() {
		if _, ok := methods[name]; !ok {
			methods[name] = refused(TaskServiceV2, name, errdefs.ErrNotImplemented)
		}
	}
	s.Register(TaskServiceV2, methods)
	for svc, ms := range OtherServices() {
		m := map[string]ttrpc.Method{}
		for name, class := range ms {
			if class == Forward {
				m[name] = p.forward(svc, name)
			} else {
				m[name] = refused(svc, name, errdefs.ErrPermissionDenied)
			}
		}
		s.Register(svc, m)
	}
}

func (p *Proxy) taskMethod(name string, class Class) ttrpc.Method {
	switch class {
	case Forward:
		return p.forward(p.delegateTask, name)
	case Intercept:
		switch name {
		case "Create":
			return intercepted(p, name, func(ctx context.Context, r *taskv2.CreateTaskRequest) error {
				return p.hooks.Create(ctx, p.inst, r)
			})
		case "Exec":
			return intercepted(p, name, func(ctx context.Context, r *taskv2.ExecProcessRequest) error {
				return p.hooks.Exec(ctx, p.inst, r)
			})
		case "Update":
			return intercepted(p, name, func(ctx context.Context, r *taskv2.UpdateTaskRequest) error {
				return p.hooks.Update(ctx, p.inst, r)
			})
		}
	}
	return refused(TaskServiceV2, name, errdefs.ErrNotImplemented)
}

// forward relays one method generically.
func (p *Proxy) forward(service, method string) ttrpc.Method {
	if service == TaskServiceV2 {
		service = p.delegateTask
	}
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		defer p.track()()
		req := &emptypb.Empty{}
		if err := unmarshal(req); err != nil {
			return nil, errgrpc.ToGRPC(fmt.Errorf("isoguard: decode %s request: %v: %w", method, err, errdefs.ErrInvalidArgument))
		}
		return p.call(ctx, service, method, req)
	}
}

// intercepted decodes a typed request, runs the hook, then relays the (possibly modified)
// request. A hook error or panic denies the call.
func intercepted[T any, PT interface {
	*T
	proto.Message
}](p *Proxy, method string, hook func(context.Context, PT) error) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		defer p.track()()
		req := PT(new(T))
		if err := unmarshal(req); err != nil {
			return nil, errgrpc.ToGRPC(fmt.Errorf("isoguard: decode %s request: %v: %w", method, err, errdefs.ErrInvalidArgument))
		}
		if err := runHook(ctx, method, func() error { return hook(ctx, req) }); err != nil {
			fields := log.Fields{logMethod: method}
			if r, ok := any(req).(interface{ GetID() string }); ok {
				fields[logID] = r.GetID()
			}
			if r, ok := any(req).(interface{ GetExecID() string }); ok && r.GetExecID() != "" {
				fields[logExecID] = r.GetExecID()
			}
			log.G(ctx).WithError(err).WithFields(fields).Warn("isoguard: call denied")
			return nil, errgrpc.ToGRPC(err)
		}
		return p.call(ctx, p.delegateTask, method, req)
	}
}

// runHook runs a hook; a panic becomes a denial (fail closed), never an allow.
func runHook(ctx context.Context, method string, hook func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.G(ctx).WithField(logMethod, method).WithField(logStack, string(debug.Stack())).Errorf("isoguard: hook panicked: %v", r)
			err = fmt.Errorf("isoguard: %s denied: the check failed (%v): %w", method, r, errdefs.ErrInternal)
		}
	}()
	return hook()
}

func (p *Proxy) call(ctx context.Context, service, method string, req proto.Message) (any, error) {
	resp := &emptypb.Empty{}
	if err := p.client.Call(ctx, service, method, req, resp); err != nil {
		if errors.Is(err, ttrpc.ErrClosed) {
			if method == "Shutdown" {
				// The delegate exited while answering Shutdown: that is what Shutdown asks for.
				return resp, nil
			}
			return nil, errgrpc.ToGRPC(fmt.Errorf("isoguard: %s: delegate shim connection closed: %w", method, errdefs.ErrUnavailable))
		}
		if errdefs.IsUnavailable(err) {
			// The wrapper could not reach its delegate (delegateConn).
			return nil, errgrpc.ToGRPC(err)
		}
		// The delegate's own error (a ttrpc status) passes through unchanged.
		return nil, err
	}
	return resp, nil
}

func refused(service, method string, kind error) ttrpc.Method {
	return func(ctx context.Context, _ func(any) error) (any, error) {
		err := fmt.Errorf("isoguard: %s.%s is not forwarded by the isolation wrapper: %w", service, method, kind)
		log.G(ctx).WithField(logMethod, service+"."+method).Warn("isoguard: refused call")
		return nil, errgrpc.ToGRPC(err)
	}
}

// taskServiceMethodNames lists the methods of containerd.task.v2.Task from the generated
// protobuf descriptor, so a method added upstream is seen even if nobody classified it.
func taskServiceMethodNames() []string {
	sd := taskv2.File_runtime_task_v2_shim_proto.Services().ByName("Task")
	if sd == nil {
		return nil
	}
	ms := sd.Methods()
	names := make([]string, ms.Len())
	for i := range names {
		names[i] = string(ms.Get(i).Name())
	}
	return names
}
