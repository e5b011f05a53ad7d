// Package relay serves containerd's task API on the wrapper's address and relays every call
// to the delegate shim: byte for byte for the calls it forwards, through the hooks for the
// calls that decide isolation and identity (Create, Exec, Update), and not at all for the
// calls it refuses. TaskMethods classifies every method of the task service; a test holds
// the classification against the generated service, so a method added upstream cannot pass
// unclassified.
//
// Errors are converted to ttrpc statuses once, here at the edge, with the program name
// added once; the delegate's own errors pass through unchanged.
package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/isoguard/isoguard/internal/logfields"
	"github.com/isoguard/isoguard/shim/hooks"
)

// ttrpc service names.
const (
	// TaskServiceV2 is the task API containerd 1.x (and 2.x, for a wrapper that answered
	// `start` with a plain address) speaks to the wrapper.
	TaskServiceV2 = "containerd.task.v2.Task"
	// TaskServiceV3 is what containerd >= 2.0 speaks to a shim whose `start` answered
	// version 3 (the wrapper does so for containerd >= 2.3, so that a pod's workload
	// containers reach the pod's wrapper without a `start` each), and what a delegate that
	// answered version 3 is spoken to in. v2 and v3 messages are identical on the wire
	// (core/runtime/v2/bridge.go); the wrapper serves both with the same handlers.
	TaskServiceV3 = "containerd.task.v3.Task"
	// ShimDiagService is runhcs's diagnostics service (internal/shimdiag). Its
	// DiagExecInHost runs a command in the utility VM as SYSTEM (threats T12).
	ShimDiagService = "containerd.runhcs.v1.diag.ShimDiag"
	// ExtendedTaskService is runhcs's ExtendedTask (internal/extendedtask): read-only
	// processor information for a pod.
	ExtendedTaskService = "ExtendedTask"
)

// TaskService is the task service name of task API version 2 or 3 ("" otherwise).
func TaskService(version int) string {
	switch version {
	case 2:
		return TaskServiceV2
	case 3:
		return TaskServiceV3
	}
	return ""
}

// Class is what the wrapper does with one ttrpc method.
type Class string

const (
	// Forward: the request is relayed to the delegate byte for byte (decoded as
	// emptypb.Empty, which keeps every field as unknown fields) and so is the answer.
	Forward Class = "forward"
	// Intercept: the request is decoded into its typed message and passes the hooks first.
	Intercept Class = "intercept"
	// Refuse: the wrapper answers with an error and the delegate never sees the call.
	Refuse Class = "refuse"
	// Track: relayed like Forward, but the wrapper reads the request to follow the pod's
	// tasks (Create and Delete), and answers Shutdown itself while the pod has tasks.
	Track Class = "track"
)

// TaskMethods classifies every method of containerd.task.v2.Task. A method added upstream
// and missing here is refused at run time (fail closed) and fails TestTaskMethodsClassified.
func TaskMethods() map[string]Class {
	return map[string]Class{
		"State":      Forward,
		"Create":     Intercept, // isolation, user, mounts, devices, annotations (config.json + Options)
		"Start":      Forward,   // starts what Create (or Exec) admitted
		"Delete":     Track,     // a deleted task leaves the pod (see Shutdown)
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
		// Shutdown is relayed only once the pod has no task left: containerd asks every
		// container's shim (the pod's wrapper, for a joined container) to shut down after
		// deleting the container. runc's shim answers that itself while containers remain
		// (cmd/containerd-shim-runc-v2/task/service.go Shutdown); gVisor's answers nil, which
		// its ttrpc server cannot send (pkg/shim/v1/service.go). A closed delegate
		// connection counts as done.
		"Shutdown": Track,
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

// Caller is what the proxy needs of its delegate: a ttrpc client (a *ttrpc.Client or a
// *Delegate).
type Caller interface {
	Call(ctx context.Context, service, method string, req, resp any) error
}

// Proxy serves containerd's task API on the wrapper's address and relays it to the delegate.
type Proxy struct {
	client Caller
	// delegateTask is the task service name the delegate serves (v2 or v3).
	delegateTask string
	hooks        hooks.Hooks
	inst         *hooks.Instance
	inflight     atomic.Int64 // calls being handled
	tasks        taskSet      // the pod's tasks: created and not yet deleted
}

// New returns a proxy to client, which speaks task API version delegateVersion (2 or 3);
// inst is the wrapper instance the hooks are told about.
func New(client Caller, delegateVersion int, h hooks.Hooks, inst *hooks.Instance) (*Proxy, error) {
	p := &Proxy{client: client, hooks: h, inst: inst, delegateTask: TaskService(delegateVersion)}
	if p.delegateTask == "" {
		return nil, fmt.Errorf("delegate answered task API version %d; isoguard speaks 2 and 3: %w", delegateVersion, errdefs.ErrNotImplemented)
	}
	if p.hooks == nil {
		p.hooks = hooks.PassThrough{}
	}
	return p, nil
}

// track counts a call in flight until the returned func runs.
func (p *Proxy) track() func() {
	p.inflight.Add(1)
	return func() { p.inflight.Add(-1) }
}

// WaitIdle waits until no call is being handled, at most max.
func (p *Proxy) WaitIdle(max time.Duration) {
	deadline := time.Now().Add(max)
	for p.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
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
	registerTask(s, methods)
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
		if m := p.intercepted(name); m != nil {
			return m
		}
	case Track:
		if m := p.tracked(name); m != nil {
			return m
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
			return nil, edge(fmt.Errorf("decode %s request: %v: %w", method, err, errdefs.ErrInvalidArgument))
		}
		return p.call(ctx, service, method, req)
	}
}

func (p *Proxy) call(ctx context.Context, service, method string, req proto.Message) (any, error) {
	resp := &emptypb.Empty{}
	if err := p.client.Call(ctx, service, method, req, resp); err != nil {
		if errors.Is(err, ttrpc.ErrClosed) {
			if method == "Shutdown" {
				// The delegate exited while answering Shutdown: that is what Shutdown asks for.
				return resp, nil
			}
			return nil, edge(fmt.Errorf("%s: delegate shim connection closed: %w", method, errdefs.ErrUnavailable))
		}
		if errors.Is(err, errNotReachable) {
			return nil, edge(err)
		}
		// The delegate's own error (a ttrpc status) passes through unchanged.
		return nil, err
	}
	return resp, nil
}

func refused(service, method string, kind error) ttrpc.Method {
	return func(ctx context.Context, _ func(any) error) (any, error) {
		log.G(ctx).WithField(logfields.Method, service+"."+method).Warn("refused call")
		return nil, edge(fmt.Errorf("%s.%s is not forwarded by the isolation wrapper: %w", service, method, kind))
	}
}

// edge converts an error of the wrapper's own to a ttrpc status, naming the program once.
// The status carries the error's class (errdefs) as its code and its text, nothing else:
// errgrpc.ToGRPC turns every further error of an Unwrap() []error chain (fmt.Errorf with
// two %w) into a status detail, which containerd's errgrpc.ToNative joins back into the
// message, so kubelet read "permission denied" once per wrapped sentinel.
// The class's own text ("permission denied") ends the message once: containerd adds it
// back to the status's message (errgrpc.ToNative).
func edge(err error) error {
	class := errdefs.Resolve(err)
	msg := err.Error()
	if class != nil {
		for strings.HasSuffix(msg, ": "+class.Error()) {
			msg = strings.TrimSuffix(msg, ": "+class.Error())
		}
	}
	return errgrpc.ToGRPC(&edgeError{msg: "isoguard: " + msg, class: class})
}

// edgeError is an error's text and its class, as one chain.
type edgeError struct {
	msg   string
	class error
}

func (e *edgeError) Error() string { return e.msg }
func (e *edgeError) Unwrap() error { return e.class }

// taskServiceMethodNames lists the methods of containerd.task.v2.Task from the generated
// protobuf descriptor, so a method added upstream is seen even if nobody classified it.
// registerTask serves the task API's methods as both containerd.task.v2.Task and
// containerd.task.v3.Task.
func registerTask(s *ttrpc.Server, methods map[string]ttrpc.Method) {
	s.Register(TaskServiceV2, methods)
	s.Register(TaskServiceV3, methods)
}

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
