//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	runhcsopts "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/options"
	runhcsstats "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1/stats"
	"github.com/Microsoft/hcsshim/pkg/annotations"
	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/isoguard/isoguard/integration/standin"
)

// fakePidBase: fake pids start above any Linux pid_max (at most 2^22), below 2^31.
const fakePidBase = 2_000_000_000

// serveCommand is serve.go: decode the options on stdin, serve the task API on -socket,
// close stdout once serving, exit after the init task's Shutdown (or SIGTERM).
func serveCommand(g globalFlags, args []string) error {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	socket := flags.String("socket", "", "the socket path to serve")
	isSandbox := flags.Bool("is-sandbox", false, "is the task id a Kubernetes sandbox id")
	if err := flags.Parse(args); err != nil {
		return err
	}
	bundle, err := os.Getwd()
	if err != nil {
		return err
	}
	// Errors before serving go to stdout: start forwards them and fails.
	fail := func(err error) error {
		fmt.Fprintf(os.Stdout, "%v", err)
		os.Stdout.Close()
		return err
	}
	rec := standin.Record{Call: standin.CallServe, Namespace: g.namespace, ID: g.id, Bundle: bundle}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, maxStdin))
	if err != nil {
		return fail(err)
	}
	rec.StdinFormat, rec.OptionsTypeURL, rec.Options = describeStdin(data)
	if _, err := readOptions(data); err != nil {
		rec.Error = "failed to read shim options from stdin: " + err.Error()
		_ = record(bundle, rec)
		return fail(errors.New(rec.Error))
	}
	if err := record(bundle, rec); err != nil {
		return fail(err)
	}
	os.Stdin.Close()

	path, ok := strings.CutPrefix(*socket, "unix://")
	if !ok || path == "" {
		return fail(fmt.Errorf("socket %q is required to be a unix:// address", *socket))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return fail(err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(path)
	defer l.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return fail(err)
	}

	svc := &service{
		ns: g.namespace, tid: g.id, isSandbox: *isSandbox, bundle: bundle,
		tasks: map[string]*ctask{}, shutdown: make(chan struct{}),
	}
	srv, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	taskv2.RegisterTTRPCTaskService(srv, svc)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	// Serving: closing stdout tells start (runhcs: "Closing stdout signals to containerd
	// that shim started successfully").
	os.Stdout.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	select {
	case err := <-served:
		if err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			return err
		}
		return nil
	case <-svc.shutdown:
	case <-sigs:
		svc.once.Do(func() { close(svc.shutdown) }) // ends pending Waits
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return nil
}

// readOptions is v0.14.1 serve.go readOptions: a bare Any or nothing.
func readOptions(d []byte) (*runhcsopts.Options, error) {
	if len(d) == 0 {
		return nil, nil
	}
	var a anypb.Any
	if err := proto.Unmarshal(d, &a); err != nil {
		return nil, fmt.Errorf("failed unmarshalling into Any: %w", err)
	}
	v, err := typeurl.UnmarshalAny(&a)
	if err != nil {
		return nil, fmt.Errorf("failed unmarshalling by typeurl: %w", err)
	}
	o, ok := v.(*runhcsopts.Options)
	if !ok {
		return nil, fmt.Errorf("options of type %T: runhcs v0.14.1 casts them to *options.Options unchecked and panics", v)
	}
	return o, nil
}

// process is one (fake) process: a task's init or an exec.
type process struct {
	execID                string
	pid                   uint32
	args                  []string
	stdin, stdout, stderr string
	terminal              bool
	status                tasktypes.Status
	exitStatus            uint32
	exitedAt              time.Time
	exited                chan struct{}
	autoExit              bool
	autoStatus            uint32
	// stdio: the stdout/stderr fifos, opened for writing like a shim opens them
	// (runhcs: cmd.NewUpstreamIO at Create/Exec) and closed when the process exits, so
	// the client's copy sees EOF (ctr 2.x `task exec` waits for it).
	stdio []io.Closer
}

func (p *process) exit(code uint32) {
	if p.status == tasktypes.Status_STOPPED {
		return
	}
	p.status = tasktypes.Status_STOPPED
	p.exitStatus = code
	p.exitedAt = time.Now()
	close(p.exited)
	for _, c := range p.stdio {
		c.Close()
	}
	p.stdio = nil
}

// openStdio opens the fifos at paths for writing, in the background (the reader may not be
// there yet). Log URIs (file://, binary://) are not opened: nothing is written.
func openStdio(paths ...string) []io.Closer {
	var out []io.Closer
	for _, path := range paths {
		if path == "" || strings.Contains(path, "://") {
			continue
		}
		if st, err := os.Stat(path); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
			continue
		}
		out = append(out, openFifoWriter(path))
	}
	return out
}

// fifoWriter is the write side of a fifo, opened by a goroutine: open(2) of a fifo for
// writing blocks until a reader opens it.
type fifoWriter struct {
	path   string
	mu     sync.Mutex
	f      *os.File
	closed bool
}

func openFifoWriter(path string) *fifoWriter {
	w := &fifoWriter{path: path}
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.closed {
			f.Close()
			return
		}
		w.f = f
	}()
	return w
}

// Close closes the write side. An open still waiting for the reader is left to complete
// (it does when the client opens its end) and is closed then: the reader must see a writer
// come and go, or its copy would wait for one forever.
func (w *fifoWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f != nil {
		return w.f.Close()
	}
	return nil
}

type ctask struct {
	id, bundle string
	init       *process
	execs      map[string]*process
}

type service struct {
	ns, tid   string
	isSandbox bool
	bundle    string // serve's own bundle

	mu       sync.Mutex
	tasks    map[string]*ctask
	nextPid  uint32
	shutdown chan struct{}
	once     sync.Once
}

var _ taskv2.TTRPCTaskService = (*service)(nil)

// grpcErr converts like runhcs's service.go (errdefs.ToGRPC on every answer).
func grpcErr(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToGRPC(err)
}

func (s *service) newProcess(execID string, args []string, stdin, stdout, stderr string, terminal bool) *process {
	s.nextPid++
	p := &process{
		execID: execID, pid: fakePidBase + s.nextPid, args: args,
		stdin: stdin, stdout: stdout, stderr: stderr, terminal: terminal,
		status: tasktypes.Status_CREATED, exited: make(chan struct{}),
		stdio: openStdio(stdout, stderr),
	}
	p.autoStatus, p.autoExit = autoExit(args)
	return p
}

// autoExit is the stand-in's rule for what a process does: `<program> hello` exits with 0
// right after Start, `<program> exit N` with N; anything else runs until Kill.
func autoExit(args []string) (uint32, bool) {
	switch {
	case len(args) == 2 && args[1] == "hello":
		return 0, true
	case len(args) == 3 && args[1] == "exit":
		if n, err := strconv.ParseUint(args[2], 10, 8); err == nil {
			return uint32(n), true
		}
	}
	return 0, false
}

// getTask is service_internal.go getTask: a standalone shim knows only its own id.
func (s *service) getTask(id string) (*ctask, error) {
	if !s.isSandbox && id != s.tid {
		return nil, fmt.Errorf("task with id: '%s' not found: %w", id, errdefs.ErrNotFound)
	}
	t, ok := s.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task with id: '%s' not found: %w", id, errdefs.ErrNotFound)
	}
	return t, nil
}

func (s *service) getProcess(id, execID string) (*ctask, *process, error) {
	t, err := s.getTask(id)
	if err != nil {
		return nil, nil, err
	}
	if execID == "" {
		return t, t.init, nil
	}
	p, ok := t.execs[execID]
	if !ok {
		return nil, nil, fmt.Errorf("exec: '%s' in task: '%s' not found: %w", execID, id, errdefs.ErrNotFound)
	}
	return t, p, nil
}

func (s *service) record(bundle string, r standin.Record) {
	if bundle == "" {
		bundle = s.bundle
	}
	r.Namespace = s.ns
	_ = record(bundle, r)
}

func (s *service) State(ctx context.Context, req *taskv2.StateRequest) (*taskv2.StateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.getProcess(req.ID, req.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &taskv2.StateResponse{
		ID: t.id, Bundle: t.bundle, Pid: p.pid, Status: p.status,
		Stdin: p.stdin, Stdout: p.stdout, Stderr: p.stderr, Terminal: p.terminal,
		ExitStatus: p.exitStatus, ExecID: p.execID,
	}
	if p.status == tasktypes.Status_STOPPED {
		resp.ExitedAt = timestamppb.New(p.exitedAt)
	}
	return resp, nil
}

// Create is createInternal (and pod.go CreateTask for a pod's workloads).
func (s *service) Create(ctx context.Context, req *taskv2.CreateTaskRequest) (_ *taskv2.CreateTaskResponse, retErr error) {
	rec := standin.Record{
		Call: standin.CallCreate, ID: req.ID, Bundle: req.Bundle,
		Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal,
	}
	for _, m := range req.Rootfs {
		rec.Rootfs = append(rec.Rootfs, standin.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	defer func() {
		if retErr != nil {
			rec.Error = retErr.Error()
		}
		s.record(req.Bundle, rec)
		retErr = grpcErr(retErr)
	}()

	shimOpts := &runhcsopts.Options{}
	if req.Options != nil {
		rec.OptionsTypeURL = req.Options.GetTypeUrl()
		rec.Options = runhcsJSON(req.Options)
		v, err := typeurl.UnmarshalAny(req.Options)
		if err != nil {
			return nil, err
		}
		o, ok := v.(*runhcsopts.Options)
		if !ok {
			// runhcs: shimOpts = v.(*runhcsopts.Options) -- a panic of the shim.
			return nil, fmt.Errorf("options of type %T: runhcs casts Create options to *options.Options unchecked (service_internal.go createInternal) and panics", v)
		}
		shimOpts = o
	}
	emptyShimOpts := req.Options == nil || proto.Equal(shimOpts, &runhcsopts.Options{})

	raw, err := os.ReadFile(filepath.Join(req.Bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	rec.Spec = raw
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	updateSpecFromOptions(&spec, shimOpts)
	if err := processAnnotations(spec.Annotations); err != nil {
		return nil, fmt.Errorf("unable to process OCI Spec annotations: %w", err)
	}
	if iso := shimOpts.GetSandboxIsolation(); iso == runhcsopts.Options_HYPERVISOR {
		if spec.Windows == nil {
			spec.Windows = &specs.Windows{}
		}
		if spec.Windows.HyperV == nil {
			spec.Windows.HyperV = &specs.WindowsHyperV{}
		}
	} else if !emptyShimOpts && isIsolated(&spec) {
		return nil, fmt.Errorf("invalid runtime sandbox isolation (%s) for hypervisor isolated OCI spec", iso.String())
	}
	if !emptyShimOpts && shimOpts.GetSandboxPlatform() != "" {
		osName, _, _ := strings.Cut(shimOpts.GetSandboxPlatform(), "/")
		switch osName {
		case "windows":
			if spec.Linux != nil {
				return nil, fmt.Errorf("non-empty Linux config in OCI spec for Windows sandbox platform: %s", shimOpts.GetSandboxPlatform())
			}
		case "linux":
			if spec.Linux == nil && spec.Windows != nil {
				return nil, fmt.Errorf("empty Linux config in OCI spec for Linux sandbox platform: %s", shimOpts.GetSandboxPlatform())
			}
		default:
			return nil, fmt.Errorf("unknown runtime sandbox platform OS: %s", shimOpts.GetSandboxPlatform())
		}
	}
	rec.Isolation = "process"
	if isIsolated(&spec) {
		rec.Isolation = "hypervisor"
	}
	if spec.Windows == nil {
		// runhcs dereferences spec.Windows here (`if spec.Windows.HyperV == nil`): a spec
		// without a windows section panics the real shim.
		return nil, errors.New("config.json has no windows section: runhcs would panic (service_internal.go createInternal)")
	}
	if req.Terminal && req.Stderr != "" {
		return nil, fmt.Errorf("if using terminal, stderr must be empty: %w", errdefs.ErrFailedPrecondition)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[req.ID]; ok {
		return nil, fmt.Errorf("task with id: '%s' already exists: %w", req.ID, errdefs.ErrAlreadyExists)
	}
	if !s.isSandbox && req.ID != s.tid {
		return nil, fmt.Errorf("task with id: '%s' does not belong to the shim of '%s': %w", req.ID, s.tid, errdefs.ErrFailedPrecondition)
	}
	if s.isSandbox && req.ID != s.tid {
		// pod.go CreateTask.
		sb, ok := s.tasks[s.tid]
		if !ok {
			return nil, fmt.Errorf("task with id: '%s' must be created first: %w", s.tid, errdefs.ErrFailedPrecondition)
		}
		if sb.init.status != tasktypes.Status_RUNNING {
			return nil, fmt.Errorf("task with id: '%s' cannot be created in pod: '%s' which is not running: %w", req.ID, s.tid, errdefs.ErrFailedPrecondition)
		}
		ct, sid, err := sandboxTypeAndID(spec.Annotations)
		if err != nil {
			return nil, err
		}
		if ct != typeContainer {
			return nil, fmt.Errorf("expected annotation: '%s': '%s' got '%s': %w", annContainerType, typeContainer, ct, errdefs.ErrFailedPrecondition)
		}
		if sid != s.tid {
			return nil, fmt.Errorf("expected annotation '%s': '%s' got '%s': %w", annSandboxID, s.tid, sid, errdefs.ErrFailedPrecondition)
		}
	}
	var args []string
	if spec.Process != nil {
		args = spec.Process.Args
	}
	t := &ctask{id: req.ID, bundle: req.Bundle, execs: map[string]*process{}}
	t.init = s.newProcess("", args, req.Stdin, req.Stdout, req.Stderr, req.Terminal)
	s.tasks[req.ID] = t
	return &taskv2.CreateTaskResponse{Pid: t.init.pid}, nil
}

// updateSpecFromOptions is internal/oci/uvm.go UpdateSpecFromOptions (annotations only).
func updateSpecFromOptions(s *specs.Spec, o *runhcsopts.Options) {
	set := func(k, v string) {
		if _, ok := s.Annotations[k]; !ok && v != "" {
			s.Annotations[k] = v
		}
	}
	set(annotations.BootFilesRootPath, o.GetBootFilesRootPath())
	if n := o.GetVmProcessorCount(); n != 0 {
		set(annotations.ProcessorCount, strconv.FormatInt(int64(n), 10))
	}
	if n := o.GetVmMemorySizeInMb(); n != 0 {
		set(annotations.MemorySizeInMB, strconv.FormatInt(int64(n), 10))
	}
	set(annotations.NetworkConfigProxy, o.GetNCProxyAddr())
	for k, v := range o.GetDefaultContainerAnnotations() {
		if _, ok := s.Annotations[k]; !ok {
			s.Annotations[k] = v
		}
	}
}

// processAnnotations is internal/oci/annotations.go ProcessAnnotations.
func processAnnotations(a map[string]string) error {
	var errs []error
	for key, exps := range annotations.AnnotationExpansionMap() {
		val, ok := a[key]
		if !ok {
			continue
		}
		for _, k := range exps {
			if v, ok := a[k]; ok && val != v {
				errs = append(errs, fmt.Errorf("annotation expansion conflict: %q = %q and %q = %q", key, val, k, v))
				continue
			}
			a[k] = val
		}
	}
	parse := func(k string) bool {
		b, err := strconv.ParseBool(a[k])
		return err == nil && b
	}
	if parse(annotations.DisableHostProcessContainer) && parse(annotations.HostProcessContainer) {
		errs = append(errs, fmt.Errorf("host process container annotations conflict: %q = %q and %q = %q",
			annotations.DisableHostProcessContainer, a[annotations.DisableHostProcessContainer],
			annotations.HostProcessContainer, a[annotations.HostProcessContainer]))
	}
	return errors.Join(errs...)
}

// isIsolated is internal/oci/util.go IsIsolated.
func isIsolated(s *specs.Spec) bool {
	return s.Linux != nil || (s.Windows != nil && s.Windows.HyperV != nil)
}

func (s *service) Start(ctx context.Context, req *taskv2.StartRequest) (*taskv2.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, p, err := s.getProcess(req.ID, req.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	if p.status != tasktypes.Status_CREATED {
		return nil, grpcErr(fmt.Errorf("exec: '%s' in task: '%s' is in state %s, not created: %w", req.ExecID, req.ID, p.status, errdefs.ErrFailedPrecondition))
	}
	p.status = tasktypes.Status_RUNNING
	if p.autoExit {
		p.exit(p.autoStatus)
	}
	s.record("", standin.Record{Call: standin.CallStartTask, ID: req.ID, ExecID: req.ExecID})
	return &taskv2.StartResponse{Pid: p.pid}, nil
}

func (s *service) Delete(ctx context.Context, req *taskv2.DeleteRequest) (*taskv2.DeleteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.getProcess(req.ID, req.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	if req.ExecID == "" {
		for _, e := range t.execs {
			e.exit(1)
		}
	}
	switch p.status {
	case tasktypes.Status_CREATED:
		p.exit(0)
	case tasktypes.Status_RUNNING:
		return nil, grpcErr(fmt.Errorf("exec: '%s' in task: '%s' is running and cannot be deleted: %w", req.ExecID, req.ID, errdefs.ErrFailedPrecondition))
	}
	if req.ExecID == "" {
		delete(s.tasks, req.ID)
	} else {
		delete(t.execs, req.ExecID)
	}
	status := p.exitStatus
	s.record(t.bundle, standin.Record{Call: standin.CallDelete, ID: req.ID, ExecID: req.ExecID, Bundle: t.bundle, ExitStatus: &status})
	return &taskv2.DeleteResponse{Pid: p.pid, ExitStatus: p.exitStatus, ExitedAt: timestamppb.New(p.exitedAt)}, nil
}

func (s *service) Pids(ctx context.Context, req *taskv2.PidsRequest) (*taskv2.PidsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.getTask(req.ID)
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &taskv2.PidsResponse{}
	for _, p := range append([]*process{t.init}, mapValues(t.execs)...) {
		if p.status == tasktypes.Status_RUNNING {
			resp.Processes = append(resp.Processes, &tasktypes.ProcessInfo{Pid: p.pid})
		}
	}
	return resp, nil
}

func mapValues(m map[string]*process) []*process {
	out := make([]*process, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// Pause, Resume and Checkpoint are not implemented by runhcs (service_internal.go
// pauseInternal, resumeInternal, checkpointInternal).
func (s *service) Pause(ctx context.Context, req *taskv2.PauseRequest) (*emptypb.Empty, error) {
	return nil, grpcErr(fmt.Errorf("pause: %w", errdefs.ErrNotImplemented))
}

func (s *service) Resume(ctx context.Context, req *taskv2.ResumeRequest) (*emptypb.Empty, error) {
	return nil, grpcErr(fmt.Errorf("resume: %w", errdefs.ErrNotImplemented))
}

func (s *service) Checkpoint(ctx context.Context, req *taskv2.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, grpcErr(fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented))
}

// Kill ends the process with 128+signal; killing the init process ends the task's execs,
// and killing a pod's sandbox with All ends every task of the pod (pod.go KillTask).
func (s *service) Kill(ctx context.Context, req *taskv2.KillRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.getProcess(req.ID, req.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	if p.status == tasktypes.Status_STOPPED {
		return nil, grpcErr(fmt.Errorf("exec: '%s' in task: '%s' not found (already exited): %w", req.ExecID, req.ID, errdefs.ErrNotFound))
	}
	code := 128 + req.Signal
	p.exit(code)
	if req.ExecID == "" {
		for _, e := range t.execs {
			e.exit(code)
		}
		if s.isSandbox && req.ID == s.tid && req.All {
			for _, other := range s.tasks {
				other.init.exit(code)
				for _, e := range other.execs {
					e.exit(code)
				}
			}
		}
	}
	s.record(t.bundle, standin.Record{Call: standin.CallKill, ID: req.ID, ExecID: req.ExecID, Bundle: t.bundle, Signal: req.Signal, All: req.All})
	return &emptypb.Empty{}, nil
}

// Exec is execInternal + task_hcs.go CreateExec.
func (s *service) Exec(ctx context.Context, req *taskv2.ExecProcessRequest) (_ *emptypb.Empty, retErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := standin.Record{Call: standin.CallExec, ID: req.ID, ExecID: req.ExecID, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr, Terminal: req.Terminal}
	if req.Spec != nil {
		rec.ProcessTypeURL = req.Spec.GetTypeUrl()
		rec.Process = append(json.RawMessage(nil), req.Spec.GetValue()...)
		if !json.Valid(rec.Process) {
			rec.Process = nil
		}
	}
	bundle := ""
	defer func() {
		if retErr != nil {
			rec.Error = retErr.Error()
		}
		s.record(bundle, rec)
		retErr = grpcErr(retErr)
	}()
	t, err := s.getTask(req.ID)
	if err != nil {
		return nil, err
	}
	bundle, rec.Bundle = t.bundle, t.bundle
	if req.Terminal && req.Stderr != "" {
		return nil, fmt.Errorf("if using terminal, stderr must be empty: %w", errdefs.ErrFailedPrecondition)
	}
	var proc specs.Process
	if err := json.Unmarshal(req.Spec.GetValue(), &proc); err != nil {
		return nil, fmt.Errorf("request.Spec was not oci process: %w", err)
	}
	if _, ok := t.execs[req.ExecID]; ok || req.ExecID == "" {
		return nil, fmt.Errorf("exec: '%s' in task: '%s' already exists: %w", req.ExecID, req.ID, errdefs.ErrAlreadyExists)
	}
	if t.init.status != tasktypes.Status_RUNNING {
		return nil, fmt.Errorf("exec: '' in task: '%s' must be running to create additional execs: %w", req.ID, errdefs.ErrFailedPrecondition)
	}
	t.execs[req.ExecID] = s.newProcess(req.ExecID, proc.Args, req.Stdin, req.Stdout, req.Stderr, req.Terminal)
	return &emptypb.Empty{}, nil
}

func (s *service) ResizePty(ctx context.Context, req *taskv2.ResizePtyRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, err := s.getProcess(req.ID, req.ExecID); err != nil {
		return nil, grpcErr(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) CloseIO(ctx context.Context, req *taskv2.CloseIORequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, err := s.getProcess(req.ID, req.ExecID); err != nil {
		return nil, grpcErr(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Update(ctx context.Context, req *taskv2.UpdateTaskRequest) (_ *emptypb.Empty, retErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := standin.Record{Call: standin.CallUpdate, ID: req.ID, Annotations: req.Annotations}
	if r := req.Resources; r != nil {
		rec.ResourcesTypeURL = r.GetTypeUrl()
		if json.Valid(r.GetValue()) {
			rec.Resources = append(json.RawMessage(nil), r.GetValue()...)
		}
	}
	bundle := ""
	defer func() {
		if retErr != nil {
			rec.Error = retErr.Error()
		}
		s.record(bundle, rec)
		retErr = grpcErr(retErr)
	}()
	if req.Resources == nil {
		return nil, fmt.Errorf("resources cannot be empty, updating container %s resources failed: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	t, err := s.getTask(req.ID)
	if err != nil {
		return nil, err
	}
	bundle, rec.Bundle = t.bundle, t.bundle
	return &emptypb.Empty{}, nil
}

// Wait blocks until the process exits (or the shim shuts down / the caller goes away).
func (s *service) Wait(ctx context.Context, req *taskv2.WaitRequest) (*taskv2.WaitResponse, error) {
	s.mu.Lock()
	_, p, err := s.getProcess(req.ID, req.ExecID)
	s.mu.Unlock()
	if err != nil {
		return nil, grpcErr(err)
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, grpcErr(ctx.Err())
	case <-s.shutdown:
		return nil, grpcErr(fmt.Errorf("shim shut down: %w", errdefs.ErrUnavailable))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskv2.WaitResponse{ExitStatus: p.exitStatus, ExitedAt: timestamppb.New(p.exitedAt)}, nil
}

func (s *service) Stats(ctx context.Context, req *taskv2.StatsRequest) (*taskv2.StatsResponse, error) {
	s.mu.Lock()
	t, err := s.getTask(req.ID)
	s.mu.Unlock()
	if err != nil {
		return nil, grpcErr(err)
	}
	s.record(t.bundle, standin.Record{Call: standin.CallStats, ID: req.ID, Bundle: t.bundle})
	a, err := typeurl.MarshalAny(&runhcsstats.Statistics{})
	if err != nil {
		return nil, grpcErr(err)
	}
	return &taskv2.StatsResponse{Stats: typeurl.MarshalProto(a)}, nil
}

func (s *service) Connect(ctx context.Context, req *taskv2.ConnectRequest) (*taskv2.ConnectResponse, error) {
	pid := uint32(os.Getpid())
	return &taskv2.ConnectResponse{ShimPid: pid, TaskPid: pid}, nil
}

// Shutdown is shutdownInternal: only the init task's id ends the shim.
func (s *service) Shutdown(ctx context.Context, req *taskv2.ShutdownRequest) (*emptypb.Empty, error) {
	s.record("", standin.Record{Call: standin.CallShutdown, ID: req.ID})
	if req.ID != s.tid {
		return &emptypb.Empty{}, nil
	}
	s.once.Do(func() { close(s.shutdown) })
	return &emptypb.Empty{}, nil
}
