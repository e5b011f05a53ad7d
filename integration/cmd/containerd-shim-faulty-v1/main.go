//go:build linux

// Command containerd-shim-faulty-v1 is a TEST PROGRAM: containerd's runc shim (the manager
// and task service of github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2, the
// version in go.mod) with faults injected on request. It is the delegate of isoguard's
// fault-injection tests (integration/fault_test.go) and must never run real workloads.
// It follows containerd's own fault-injection shim
// (integration/failpoint/cmd/containerd-shim-runc-fp-v1: the runc shim's manager and task
// service plus one unary ttrpc interceptor keyed by method name), with its own small
// fault spec, because containerd's internal/failpoint cannot be imported.
//
// Faults are OCI annotations of the task's config.json, read from the bundle (the working
// directory of `start` and of the daemon), so each container of one containerd chooses its
// own:
//
//	test.isoguard.dev/fault.start   exit              exit 1 before doing anything
//	                                exit-after-spawn  spawn the daemon, then exit 1 without answering
//	                                delay:DUR         spawn the daemon, then answer DUR after the
//	                                                  daemon answered a Connect
//	test.isoguard.dev/fault.serve   exit              the daemon exits at once, serving nothing
//	                                                  (after `start` has answered)
//	test.isoguard.dev/fault.accept  close-first       the daemon accepts the first connection and
//	                                                  closes it unread, then serves normally
//	test.isoguard.dev/fault.METHOD  exit              exit 1 when METHOD is called, without answering
//	                                exit-after        exit 1 after METHOD was done, without answering
//	                                hang              never answer METHOD
//	                                delay:DUR         answer METHOD after DUR, every call
//	                                delay-once:DUR    the first call only
//
// METHOD is a task API method (Connect, Create, Exec, Start, Kill, Shutdown, ...). Every
// fault reached is appended as one line "POINT ACTION pid=PID" to faulty.log in the bundle
// before it acts, so a test can wait for it. `delete` and `-info` never fail.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/containerd/ttrpc"
)

// AnnotationPrefix starts every fault annotation; the rest is the fault point.
const AnnotationPrefix = "test.isoguard.dev/fault."

// LogFile is the file in the bundle that records every fault reached.
const LogFile = "faulty.log"

// faults are the annotations of ./config.json: fault point -> action. A missing or
// unreadable config.json means no faults.
func readFaults() map[string]string {
	data, err := os.ReadFile("config.json")
	if err != nil {
		return nil
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return nil
	}
	faults := map[string]string{}
	for k, v := range spec.Annotations {
		if point, ok := strings.CutPrefix(k, AnnotationPrefix); ok {
			faults[point] = v
		}
	}
	return faults
}

// note records that a fault point was reached, before the fault acts.
func note(point, action string) {
	line := fmt.Sprintf("%s %s pid=%d\n", point, action, os.Getpid())
	if f, err := os.OpenFile(LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		_, _ = f.WriteString(line)
		f.Close()
	}
}

// die ends the process at a fault, saying so on stderr (the caller of `start` shows it).
func die(point, action string) {
	fmt.Fprintf(os.Stderr, "containerd-shim-faulty-v1: injected fault %s=%s: exiting\n", point, action)
	os.Exit(1)
}

// parseAction splits "delay:1s" into ("delay", 1s).
func parseAction(v string) (string, time.Duration) {
	name, arg, _ := strings.Cut(v, ":")
	d, _ := time.ParseDuration(arg)
	return name, d
}

// action is the command line's action: the last argument for start and delete; none for
// the daemon (the runc manager runs it with flags only).
func action(args []string) string {
	if len(args) > 1 {
		switch a := args[len(args)-1]; a {
		case "start", "delete":
			return a
		}
	}
	for _, a := range args[1:] {
		if a == "-info" || a == "--info" || a == "-v" || a == "--version" {
			return "info"
		}
	}
	return ""
}

func main() {
	var faults map[string]string
	switch action(os.Args) {
	case "start":
		faults = readFaults()
	case "":
		faults = readFaults()
		daemonFaults(faults)
	}
	methodFaults = faults
	shim.RunShim(context.Background(), &faultyManager{Shim: manager.NewShimManager("io.containerd.runc.v2"), faults: faults})
}

// daemonFaults act before the daemon serves.
func daemonFaults(faults map[string]string) {
	if a := faults["serve"]; a == "exit" {
		note("serve", a)
		die("serve", a)
	}
	if a := faults["accept"]; a == "close-first" {
		// The runc manager passes the listening socket as fd 3. Work on a duplicate, so
		// that fd 3 stays open for the shim's own server.
		fd, err := syscall.Dup(3)
		if err != nil {
			fmt.Fprintf(os.Stderr, "containerd-shim-faulty-v1: dup listener: %v\n", err)
			os.Exit(1)
		}
		f := os.NewFile(uintptr(fd), "listener")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "containerd-shim-faulty-v1: listener: %v\n", err)
			os.Exit(1)
		}
		c, err := l.Accept()
		if err == nil {
			note("accept", a)
			c.Close()
		}
		l.Close()
	}
}

// faultyManager is the runc shim's manager with the start faults.
type faultyManager struct {
	shim.Shim
	faults map[string]string
}

func (m *faultyManager) Start(ctx context.Context, params *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	a, d := parseAction(m.faults["start"])
	if a == "exit" {
		note("start", a)
		die("start", a)
	}
	res, err := m.Shim.Start(ctx, params)
	if err != nil {
		return res, err
	}
	switch a {
	case "exit-after-spawn":
		note("start", a)
		die("start", a)
	case "delay":
		// Only once the daemon serves: a test that acts during this delay finds the
		// delegate's daemon up, not still starting.
		if err := awaitServing(ctx, res.GetAddress()); err != nil {
			return nil, err
		}
		note("start", m.faults["start"])
		time.Sleep(d)
	}
	return res, nil
}

// awaitServing waits until the daemon at address answers Connect.
func awaitServing(ctx context.Context, address string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(address, "unix://"))
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	_, err = taskapi.NewTTRPCTaskClient(client).Connect(ctx, &taskapi.ConnectRequest{})
	return err
}

// methodFaults are the daemon's faults; the task plugin reads them when it is created.
var methodFaults map[string]string

func init() {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			service, err := task.NewTaskService(ic.Context, pp.(shim.Publisher), ss.(shutdown.Service))
			if err != nil {
				return nil, err
			}
			return &faultyService{local: service, faults: methodFaults, seen: map[string]int{}}, nil
		},
	})
}

var _ shim.TTRPCServerUnaryOptioner = (*faultyService)(nil)

// faultyService is the runc shim's task service behind one interceptor that injects the
// method faults.
type faultyService struct {
	local  taskapi.TTRPCTaskService
	faults map[string]string

	mu   sync.Mutex
	seen map[string]int // calls per method
}

func (s *faultyService) RegisterTTRPC(server *ttrpc.Server) error {
	taskapi.RegisterTTRPCTaskService(server, s.local)
	return nil
}

func (s *faultyService) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		name := path.Base(info.FullMethod)
		v, ok := s.faults[name]
		if !ok {
			return method(ctx, unmarshal)
		}
		s.mu.Lock()
		s.seen[name]++
		first := s.seen[name] == 1
		s.mu.Unlock()
		a, d := parseAction(v)
		switch a {
		case "exit":
			note(name, v)
			die(name, v)
		case "exit-after":
			_, _ = method(ctx, unmarshal)
			note(name, v)
			die(name, v)
		case "hang":
			note(name, v)
			select {}
		case "delay":
			note(name, v)
			time.Sleep(d)
		case "delay-once":
			if first {
				note(name, v)
				time.Sleep(d)
			}
		}
		return method(ctx, unmarshal)
	}
}
