package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// TestTaskMethodsClassified classifies every method of the generated task service
// interface. A method added upstream fails here until someone decides what the wrapper
// does with it (and is refused at run time meanwhile).
func TestTaskMethodsClassified(t *testing.T) {
	iface := reflect.TypeFor[taskv2.TTRPCTaskService]()
	classes := TaskMethods()
	var fromIface []string
	for i := 0; i < iface.NumMethod(); i++ {
		name := iface.Method(i).Name
		fromIface = append(fromIface, name)
		if _, ok := classes[name]; !ok {
			t.Errorf("task method %s is not classified in TaskMethods()", name)
		}
	}
	for name := range classes {
		if !slices.Contains(fromIface, name) {
			t.Errorf("TaskMethods() classifies %s, which the task service does not have", name)
		}
	}
	fromDesc := taskServiceMethodNames()
	sort.Strings(fromIface)
	sort.Strings(fromDesc)
	if !slices.Equal(fromIface, fromDesc) {
		t.Errorf("descriptor methods %v differ from interface methods %v", fromDesc, fromIface)
	}
	// The calls that decide isolation and identity must be intercepted.
	for _, m := range []string{"Create", "Exec", "Update"} {
		if classes[m] != Intercept {
			t.Errorf("%s must be intercepted, is %q", m, classes[m])
		}
	}
	for _, m := range []string{"Delete", "Shutdown"} {
		if classes[m] != Track {
			t.Errorf("%s must be tracked (the pod's tasks decide when the delegate shuts down), is %q", m, classes[m])
		}
	}
	if OtherServices()[ShimDiagService]["DiagExecInHost"] != Refuse {
		t.Error("shimdiag DiagExecInHost must be refused (threats T12)")
	}
}

// fakeDelegate is a test double of the shim task API (not of runhcs or runc): it serves
// every task method, records what it received byte for byte and answers with a marker.
type fakeDelegate struct {
	srv  *ttrpc.Server
	addr string

	mu       sync.Mutex
	received map[string][]byte
	metadata map[string]ttrpc.MD
	fail     map[string]error
	conns    []net.Conn
}

// trackingListener records accepted connections so the fake can drop them at once, as a
// process that exits does.
type trackingListener struct {
	net.Listener
	d *fakeDelegate
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.d.mu.Lock()
		l.d.conns = append(l.d.conns, c)
		l.d.mu.Unlock()
	}
	return c, err
}

func (d *fakeDelegate) got(method string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.received[method]
	return b, ok
}

func startFakeDelegate(t testing.TB, service string) *fakeDelegate {
	t.Helper()
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDelegate{srv: srv, received: map[string][]byte{}, metadata: map[string]ttrpc.MD{}, fail: map[string]error{}}
	methods := map[string]ttrpc.Method{}
	for _, name := range taskServiceMethodNames() {
		methods[name] = func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req emptypb.Empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			raw, _ := proto.Marshal(&req)
			d.mu.Lock()
			d.received[name] = raw
			if md, ok := ttrpc.GetMetadata(ctx); ok {
				d.metadata[name] = md
			}
			ferr := d.fail[name]
			d.mu.Unlock()
			if name == "Shutdown" {
				// A delegate that exits on Shutdown: the connection drops before the answer.
				d.mu.Lock()
				for _, c := range d.conns {
					c.Close()
				}
				d.mu.Unlock()
				srv.Close()
				return nil, errors.New("exited")
			}
			if ferr != nil {
				return nil, errgrpc.ToGRPC(ferr)
			}
			return marker("answer-" + name), nil
		}
	}
	srv.Register(service, methods)
	srv.Register(ExtendedTaskService, map[string]ttrpc.Method{
		"ComputeProcessorInfo": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req emptypb.Empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			d.mu.Lock()
			d.received["ComputeProcessorInfo"], _ = proto.Marshal(&req)
			d.mu.Unlock()
			return marker("answer-cpi"), nil
		},
	})
	srv.Register(ShimDiagService, map[string]ttrpc.Method{
		"DiagExecInHost": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			d.mu.Lock()
			d.received["DiagExecInHost"] = nil
			d.mu.Unlock()
			return &emptypb.Empty{}, nil
		},
	})
	d.addr = "unix://" + filepath.Join(t.TempDir(), "delegate.sock")
	l, err := transport.Listen(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), trackingListener{l, d})
	t.Cleanup(func() { srv.Close() })
	return d
}

// marker is a message whose field 1 (the id field of every task request) is s, carried
// as an unknown field of Empty, exactly as the proxy carries real messages.
func marker(s string) *emptypb.Empty {
	m := &emptypb.Empty{}
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, s)
	m.ProtoReflect().SetUnknown(b)
	return m
}

type recordingHooks struct {
	hooks.PassThrough
	create func(*hooks.CreateRequest) error
	exec   func(*hooks.ExecRequest) error
	update func(*hooks.UpdateRequest) error
}

func (h recordingHooks) Create(_ context.Context, _ *hooks.Instance, r *hooks.CreateRequest) error {
	return h.create(r)
}
func (h recordingHooks) Exec(_ context.Context, _ *hooks.Instance, r *hooks.ExecRequest) error {
	return h.exec(r)
}
func (h recordingHooks) Update(_ context.Context, _ *hooks.Instance, r *hooks.UpdateRequest) error {
	return h.update(r)
}

// proxyUnderTest wires containerd-side client -> wrapper server -> proxy -> fake delegate,
// all over real unix sockets.
func proxyUnderTest(t testing.TB, version int, h hooks.Hooks) (*ttrpc.Client, *fakeDelegate, <-chan struct{}) {
	t.Helper()
	service := TaskServiceV2
	if version == 3 {
		service = TaskServiceV3
	}
	d := startFakeDelegate(t, service)
	gone := make(chan struct{})
	var once sync.Once
	client, _, err := Connect(context.Background(), d.addr, version, func() { once.Do(func() { close(gone) }) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	p, err := New(client, version, h, &hooks.Instance{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer(transport.ServerOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	p.Register(srv)
	addr := "unix://" + filepath.Join(t.TempDir(), "wrapper.sock")
	l, err := transport.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
	conn, err := transport.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cc := ttrpc.NewClient(conn)
	t.Cleanup(func() { cc.Close() })
	return cc, d, gone
}

func TestProxyForwardsEveryMethodByteForByte(t *testing.T) {
	for _, c := range []struct {
		version int
		served  string // what containerd speaks to the wrapper
	}{{2, TaskServiceV2}, {3, TaskServiceV2}, {2, TaskServiceV3}, {3, TaskServiceV3}} {
		version := c.version
		t.Run(fmt.Sprintf("delegate v%d, containerd %s", version, c.served), func(t *testing.T) {
			cc, d, _ := proxyUnderTest(t, version, hooks.PassThrough{})
			for name := range TaskMethods() {
				if name == "Shutdown" {
					continue
				}
				req := marker("req-" + name)
				// An unknown field beyond the schema must survive as well.
				req.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(req.ProtoReflect().GetUnknown(), 999, protowire.VarintType), 7))
				want, _ := proto.Marshal(req)
				resp := &emptypb.Empty{}
				ctx := ttrpc.WithMetadata(context.Background(), ttrpc.MD{"trace": []string{name}})
				if err := cc.Call(ctx, c.served, name, req, resp); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, ok := d.got(name)
				if !ok {
					t.Fatalf("%s did not reach the delegate", name)
				}
				if string(got) != string(want) {
					t.Fatalf("%s: delegate got %x, want %x", name, got, want)
				}
				gotResp, _ := proto.Marshal(resp)
				wantResp, _ := proto.Marshal(marker("answer-" + name))
				if string(gotResp) != string(wantResp) {
					t.Fatalf("%s: containerd got %x, want %x", name, gotResp, wantResp)
				}
				d.mu.Lock()
				md := d.metadata[name]
				d.mu.Unlock()
				if v, _ := md.Get("trace"); len(v) != 1 || v[0] != name {
					t.Fatalf("%s: metadata not forwarded: %v", name, md)
				}
			}
		})
	}
}

func TestProxyInterceptsAndDenies(t *testing.T) {
	denied := fmt.Errorf("denied by rule test.rule: mount /etc is not allowed (tenant %q): %w", "default", errdefs.ErrPermissionDenied)
	var sawUpdate *hooks.UpdateRequest
	h := recordingHooks{
		create: func(r *hooks.CreateRequest) error {
			if r.ID == "deny" {
				return denied
			}
			if r.ID == "panic" {
				panic("boom")
			}
			if r.Bundle != "/orig" || r.Options.GetTypeUrl() != "orig.Options" {
				return fmt.Errorf("hook saw %+v", r)
			}
			r.Options = &anypb.Any{TypeUrl: "rewritten.Options"}
			return nil
		},
		exec: func(r *hooks.ExecRequest) error {
			if r.ExecID == "deny" {
				return denied
			}
			r.Spec = &anypb.Any{TypeUrl: "rewritten.Process", Value: []byte(`{"cwd":"/"}`)}
			return nil
		},
		update: func(r *hooks.UpdateRequest) error {
			if r.ID == "deny" {
				return denied
			}
			sawUpdate = r
			return nil
		},
	}
	cc, d, _ := proxyUnderTest(t, 3, h)
	ctx := context.Background()
	task := taskv2.NewTTRPCTaskClient(cc)

	// Allowed calls reach the delegate with the hook's changes.
	if _, err := task.Create(ctx, &taskv2.CreateTaskRequest{ID: "ok", Bundle: "/orig", Options: &anypb.Any{TypeUrl: "orig.Options"}, Terminal: true}); err != nil {
		t.Fatal(err)
	}
	var cr taskv2.CreateTaskRequest
	raw, _ := d.got("Create")
	if err := proto.Unmarshal(raw, &cr); err != nil || cr.Options.GetTypeUrl() != "rewritten.Options" || cr.ID != "ok" || cr.Bundle != "/orig" || !cr.Terminal {
		t.Fatalf("delegate got Create %v (%v), want the rewritten options and every other field", &cr, err)
	}
	if _, err := task.Exec(ctx, &taskv2.ExecProcessRequest{ID: "ok", ExecID: "e1", Terminal: true}); err != nil {
		t.Fatal(err)
	}
	var er taskv2.ExecProcessRequest
	raw, _ = d.got("Exec")
	if err := proto.Unmarshal(raw, &er); err != nil || er.Spec.GetTypeUrl() != "rewritten.Process" || !er.Terminal || er.ExecID != "e1" {
		t.Fatalf("delegate got Exec %v", &er)
	}
	if _, err := task.Update(ctx, &taskv2.UpdateTaskRequest{ID: "ok", Annotations: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	var ur taskv2.UpdateTaskRequest
	raw, _ = d.got("Update")
	if err := proto.Unmarshal(raw, &ur); err != nil || ur.Annotations["a"] != "b" || sawUpdate == nil || sawUpdate.Annotations["a"] != "b" {
		t.Fatalf("delegate got Update %v, hook saw %+v", &ur, sawUpdate)
	}

	// Denials never reach the delegate and arrive as PermissionDenied with the reason.
	d.mu.Lock()
	d.received = map[string][]byte{}
	d.mu.Unlock()
	for name, call := range map[string]func() error{
		"Create": func() error { _, err := task.Create(ctx, &taskv2.CreateTaskRequest{ID: "deny"}); return err },
		"Exec": func() error {
			_, err := task.Exec(ctx, &taskv2.ExecProcessRequest{ID: "x", ExecID: "deny"})
			return err
		},
		"Update": func() error { _, err := task.Update(ctx, &taskv2.UpdateTaskRequest{ID: "deny"}); return err },
	} {
		err := errgrpc.ToNative(call())
		if !errdefs.IsPermissionDenied(err) || !strings.HasPrefix(err.Error(), "isoguard: denied by rule test.rule") || strings.Count(err.Error(), "isoguard") != 1 || strings.Count(err.Error(), "permission denied") > 1 {
			t.Errorf("%s: got %v, want permission denied naming the rule, the program once", name, err)
		}
		if _, ok := d.got(name); ok {
			t.Errorf("%s: a denied call reached the delegate", name)
		}
	}
	// A hook that panics denies (fail closed).
	_, err := task.Create(ctx, &taskv2.CreateTaskRequest{ID: "panic"})
	if err = errgrpc.ToNative(err); !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "check failed") {
		t.Fatalf("panicking hook: got %v", err)
	}
	if _, ok := d.got("Create"); ok {
		t.Fatal("a Create whose check panicked reached the delegate")
	}
}

func TestProxyDelegateErrorsPassThrough(t *testing.T) {
	cc, d, _ := proxyUnderTest(t, 2, hooks.PassThrough{})
	d.mu.Lock()
	d.fail["State"] = fmt.Errorf("container c9 does not exist: %w", errdefs.ErrNotFound)
	d.mu.Unlock()
	_, err := taskv2.NewTTRPCTaskClient(cc).State(context.Background(), &taskv2.StateRequest{ID: "c9"})
	err = errgrpc.ToNative(err)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "container c9 does not exist") {
		t.Fatalf("got %v, want the delegate's not-found error intact", err)
	}
}

func TestProxyOtherServices(t *testing.T) {
	cc, d, _ := proxyUnderTest(t, 2, hooks.PassThrough{})
	ctx := context.Background()
	err := errgrpc.ToNative(cc.Call(ctx, ShimDiagService, "DiagExecInHost", &emptypb.Empty{}, &emptypb.Empty{}))
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "not forwarded") {
		t.Fatalf("shimdiag: got %v, want permission denied", err)
	}
	if _, ok := d.got("DiagExecInHost"); ok {
		t.Fatal("shimdiag reached the delegate")
	}
	resp := &emptypb.Empty{}
	if err := cc.Call(ctx, ExtendedTaskService, "ComputeProcessorInfo", marker("pod"), resp); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.got("ComputeProcessorInfo"); !ok {
		t.Fatal("ExtendedTask was not forwarded")
	}
	err = cc.Call(ctx, "containerd.some.Other", "Method", &emptypb.Empty{}, &emptypb.Empty{})
	if err == nil || !strings.Contains(err.Error(), "not implemented") && !strings.Contains(strings.ToLower(err.Error()), "unimplemented") {
		t.Fatalf("unknown service: got %v", err)
	}
}

func TestProxyShutdownWhenDelegateExits(t *testing.T) {
	cc, _, gone := proxyUnderTest(t, 3, hooks.PassThrough{})
	_, err := taskv2.NewTTRPCTaskClient(cc).Shutdown(context.Background(), &taskv2.ShutdownRequest{ID: "x"})
	if err != nil {
		t.Fatalf("Shutdown that made the delegate exit must succeed, got %v", err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the wrapper was not told that the delegate connection closed")
	}
	// Later calls say the delegate is gone.
	_, err = taskv2.NewTTRPCTaskClient(cc).State(context.Background(), &taskv2.StateRequest{ID: "x"})
	if err = errgrpc.ToNative(err); !errdefs.IsUnavailable(err) {
		t.Fatalf("after delegate exit: got %v, want unavailable", err)
	}
}

// BenchmarkState compares a cheap call made directly to a delegate with the same call
// through the proxy; the difference is the wrapper's added latency (one extra hop).
func BenchmarkState(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		d := startFakeDelegate(b, TaskServiceV3)
		conn, err := transport.Dial(d.addr, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c := ttrpc.NewClient(conn)
		defer c.Close()
		benchCalls(b, c, TaskServiceV3)
	})
	b.Run("via-proxy", func(b *testing.B) {
		cc, _, _ := proxyUnderTest(b, 3, hooks.PassThrough{})
		benchCalls(b, cc, TaskServiceV2)
	})
}

func benchCalls(b *testing.B, c *ttrpc.Client, service string) {
	req := marker("bench")
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Call(context.Background(), service, "State", req, &emptypb.Empty{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestShutdownWaitsForThePodsTasks: a Shutdown while the pod still has tasks (a container's
// own Shutdown after its deletion) is answered by the wrapper and never reaches the
// delegate; once the last task is deleted, Shutdown is relayed. An exec's delete does not
// end its task.
func TestShutdownWaitsForThePodsTasks(t *testing.T) {
	cc, d, gone := proxyUnderTest(t, 2, hooks.PassThrough{})
	task := taskv2.NewTTRPCTaskClient(cc)
	ctx := context.Background()
	for _, id := range []string{"sandbox", "app"} {
		if _, err := task.Create(ctx, &taskv2.CreateTaskRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	shutdownReached := func() bool { _, ok := d.got("Shutdown"); return ok }
	del := func(id, execID string) {
		t.Helper()
		if _, err := task.Delete(ctx, &taskv2.DeleteRequest{ID: id, ExecID: execID}); err != nil {
			t.Fatal(err)
		}
	}
	del("app", "e1") // an exec of app
	del("app", "")
	if _, err := task.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "app"}); err != nil || shutdownReached() {
		t.Fatalf("Shutdown with the sandbox task left: err %v, reached the delegate %v", err, shutdownReached())
	}
	del("sandbox", "")
	if _, err := task.Shutdown(ctx, &taskv2.ShutdownRequest{ID: "sandbox"}); err != nil || !shutdownReached() {
		t.Fatalf("Shutdown with no task left: err %v, reached the delegate %v", err, shutdownReached())
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the delegate did not go away after the relayed Shutdown")
	}
}

// TestEdgeCarriesNoDetails: an error with several wrapped sentinels reaches containerd as
// one status with its class and text: no status details, which containerd would join into
// the message (kubelet read "permission denied" three times).
func TestEdgeCarriesNoDetails(t *testing.T) {
	inner := fmt.Errorf("denied by rule r: x (tenant %q): %w", "t", errdefs.ErrPermissionDenied)
	err := edge(fmt.Errorf("create c1 denied: %w: %w", inner, errdefs.ErrPermissionDenied))
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.PermissionDenied || len(st.Details()) != 0 {
		t.Fatalf("status %v: want PermissionDenied without details", st)
	}
	native := errgrpc.ToNative(err).Error()
	if !strings.HasPrefix(native, "isoguard: create c1 denied: denied by rule r") || strings.Count(native, "permission denied") > 1 || strings.Count(native, "isoguard") != 1 || !errdefs.IsPermissionDenied(errgrpc.ToNative(err)) {
		t.Fatalf("containerd reads %q", native)
	}
}
