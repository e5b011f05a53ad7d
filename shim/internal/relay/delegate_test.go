package relay

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// TestDelegateConnWaitsForHandshake: calls relayed before the delegate answers its first
// handshake wait for it (like calls to a shim that is still starting), then go through.
func TestDelegateConnWaitsForHandshake(t *testing.T) {
	d := &fakeDelegate{received: map[string][]byte{}, metadata: map[string]ttrpc.MD{}, fail: map[string]error{}}
	late := "unix://" + filepath.Join(t.TempDir(), "late.sock")
	dc := Dial(context.Background(), late, 3, func() {})
	defer dc.Close()
	p, err := New(dc, 3, hooks.PassThrough{}, &hooks.Instance{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		started := startFakeDelegate(t, TaskServiceV3)
		// Serve the fake on the late address.
		l, err := transport.Listen(late)
		if err != nil {
			t.Error(err)
			return
		}
		go started.srv.Serve(context.Background(), trackingListener{l, d})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := p.call(ctx, TaskServiceV3, "State", marker("x")); err != nil {
		t.Fatalf("call before the delegate was up: %v", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("the call returned after %v, before the delegate existed", el)
	}
}

// TestDelegateConnUnreachable: a delegate that never answers makes relayed calls fail as
// unavailable, naming the cause.
func TestDelegateConnUnreachable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dc := Dial(ctx, "unix://"+filepath.Join(t.TempDir(), "never.sock"), 2, func() {})
	p, err := New(dc, 2, hooks.PassThrough{}, &hooks.Instance{})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = p.call(context.Background(), TaskServiceV2, "State", &emptypb.Empty{})
	if err = errgrpc.ToNative(err); !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v, want unavailable", err)
	}
}

// closeFirstListener closes the first connection it accepts, unread, as a delegate that
// drops its first client does; later connections are served and kept.
type closeFirstListener struct {
	net.Listener
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

func (l *closeFirstListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		first := !l.closed
		l.closed = true
		if !first {
			l.conns = append(l.conns, c)
		}
		l.mu.Unlock()
		if !first {
			return c, nil
		}
		c.Close()
	}
}

// dropAll closes the connections served so far, as a delegate that exits does.
func (l *closeFirstListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

// serveConnect serves Connect of task API v3 on l, answering pid 42 once answer is closed
// (nil: at once); entered is closed when the first Connect arrives (if not nil).
func serveConnect(t *testing.T, l net.Listener, entered, answer chan struct{}) {
	t.Helper()
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	srv.Register(TaskServiceV3, map[string]ttrpc.Method{
		"Connect": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req taskv2.ConnectRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			if entered != nil {
				once.Do(func() { close(entered) })
			}
			if answer != nil {
				<-answer
			}
			return &taskv2.ConnectResponse{ShimPid: 42}, nil
		},
	})
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() { srv.Close() })
}

// TestConnectFirstConnectionClosed (defect: a failed first Connect attempt ended a healthy
// wrapper): the delegate closes the first connection while the wrapper's first handshake
// waits on it; the next attempt succeeds. The closing of the failed attempt's connection
// must not be reported as the delegate's end -- on one P (the daemon's setting) ttrpc ran
// that close callback before the attempt was given up -- while the established
// connection's closing must be, once.
func TestConnectFirstConnectionClosed(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	addr := "unix://" + filepath.Join(t.TempDir(), "d.sock")
	inner, err := transport.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &closeFirstListener{Listener: inner}
	serveConnect(t, l, nil, nil)
	var closes atomic.Int32
	client, pid, err := Connect(context.Background(), addr, 3, func() { closes.Add(1) })
	if err != nil {
		t.Fatalf("Connect after a closed first connection: %v", err)
	}
	defer client.Close()
	if pid != 42 {
		t.Fatalf("pid %d", pid)
	}
	// The failed attempt's client is closed by now; give its callback every chance to run.
	time.Sleep(200 * time.Millisecond)
	if n := closes.Load(); n != 0 {
		t.Fatalf("the failed first attempt was reported as the delegate's end (%d close callbacks)", n)
	}
	l.dropAll()
	deadline := time.Now().Add(5 * time.Second)
	for closes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := closes.Load(); n != 1 {
		t.Fatalf("the established connection's end was reported %d times, want once", n)
	}
}

// eofListener tells when a served connection was closed by its client.
type eofListener struct {
	net.Listener
	eof chan struct{}
}

type eofConn struct {
	net.Conn
	once *sync.Once
	eof  chan struct{}
}

func (c eofConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.once.Do(func() { close(c.eof) })
	}
	return n, err
}

func (l eofListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return eofConn{Conn: c, once: &sync.Once{}, eof: l.eof}, nil
}

// TestDelegateCloseWhileConnecting (defect: Close closed only a connection already made):
// Close is called while the first handshake waits for the delegate's answer; the
// connection made afterwards must be closed too (the delegate sees its client go) and
// relayed calls must fail instead of reaching the delegate.
func TestDelegateCloseWhileConnecting(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "d.sock")
	inner, err := transport.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	l := eofListener{Listener: inner, eof: make(chan struct{})}
	entered, answer := make(chan struct{}), make(chan struct{})
	serveConnect(t, l, entered, answer)
	dc := Dial(context.Background(), addr, 3, func() {})
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the handshake did not reach the delegate")
	}
	dc.Close()
	close(answer)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.Wait(ctx); err == nil {
		t.Error("a connection made after Close is usable")
	}
	if err := dc.Call(ctx, TaskServiceV3, "Connect", &taskv2.ConnectRequest{}, &taskv2.ConnectResponse{}); err == nil {
		t.Error("a call after Close reached the delegate")
	}
	select {
	case <-l.eof:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection made after Close was left open")
	}
}
