package relay

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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
