package shim

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
)

// caller is what the proxy needs of its delegate: a ttrpc client.
type caller interface {
	Call(ctx context.Context, service, method string, req, resp any) error
}

// delegateConn is the wrapper's connection to its delegate, made in the background: the
// wrapper tells containerd its own address as soon as the delegate's `start` has answered,
// and every relayed call first waits (within the call's own deadline) for the first
// handshake with the delegate -- just as a call to a freshly started shim waits for that
// shim to finish starting. The delegate's start-up thus overlaps containerd's own work
// after `start` instead of adding to it.
type delegateConn struct {
	ready  chan struct{}
	client *ttrpc.Client
	pid    int
	err    error
}

// dialDelegate starts connecting; onClose runs when an established connection closes.
func dialDelegate(ctx context.Context, a Answer, onClose func()) *delegateConn {
	d := &delegateConn{ready: make(chan struct{})}
	go func() {
		d.client, d.pid, d.err = connectDelegate(ctx, a, onClose)
		close(d.ready)
	}()
	return d
}

// wait blocks until the handshake has succeeded or failed, or ctx ends.
func (d *delegateConn) wait(ctx context.Context) error {
	select {
	case <-d.ready:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Call relays one call once the delegate is connected.
func (d *delegateConn) Call(ctx context.Context, service, method string, req, resp any) error {
	if err := d.wait(ctx); err != nil {
		return fmt.Errorf("isoguard: %s: delegate shim not reachable: %w: %w", method, err, errdefs.ErrUnavailable)
	}
	return d.client.Call(ctx, service, method, req, resp)
}

// Close closes an established connection.
func (d *delegateConn) Close() {
	select {
	case <-d.ready:
		if d.client != nil {
			d.client.Close()
		}
	default:
	}
}
