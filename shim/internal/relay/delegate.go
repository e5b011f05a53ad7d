package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/isoguard/isoguard/shim/internal/transport"
)

const (
	// ConnectTimeout bounds connecting to the delegate after its start answered. Each
	// attempt has its own short deadline: a first handshake that hangs is retried (correct
	// on Windows too; needed under wine, see docs/windows-wine.md).
	ConnectTimeout = 30 * time.Second
	connectAttempt = 2 * time.Second
)

// connectTimeout is ConnectTimeout; only a build for tests changes it (testknobs.go).
var connectTimeout = ConnectTimeout

// errNotReachable marks the wrapper's own failure to reach its delegate, as opposed to an
// error the delegate answered.
var errNotReachable = errors.New("delegate shim not reachable")

// Delegate is the wrapper's connection to its delegate, made in the background: the
// wrapper tells containerd its own address as soon as the delegate's `start` has answered,
// and every relayed call first waits (within the call's own deadline) for the first
// handshake with the delegate -- just as a call to a freshly started shim waits for that
// shim to finish starting. The delegate's start-up thus overlaps containerd's own work
// after `start` instead of adding to it.
type Delegate struct {
	ready chan struct{}
	pid   int
	err   error

	mu     sync.Mutex
	client *ttrpc.Client
	closed bool
}

// Dial starts connecting to the delegate at address, which speaks task API version
// (2 or 3). onClose runs once when the established connection closes (never for a failed
// attempt).
func Dial(ctx context.Context, address string, version int, onClose func()) *Delegate {
	d := &Delegate{ready: make(chan struct{})}
	go func() {
		client, pid, err := Connect(ctx, address, version, onClose)
		d.mu.Lock()
		if err == nil && d.closed {
			// Close was called while connecting: this connection is nobody's.
			client.Close()
			err = fmt.Errorf("connection closed while connecting: %w", ttrpc.ErrClosed)
			client = nil
		}
		d.client, d.pid, d.err = client, pid, err
		d.mu.Unlock()
		close(d.ready)
	}()
	return d
}

// Wait blocks until the handshake has succeeded or failed, or ctx ends.
func (d *Delegate) Wait(ctx context.Context) error {
	select {
	case <-d.ready:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pid is the delegate's shim pid from its Connect answer (0 before Wait succeeded).
func (d *Delegate) Pid() int {
	select {
	case <-d.ready:
		return d.pid
	default:
		return 0
	}
}

// Call relays one call once the delegate is connected.
func (d *Delegate) Call(ctx context.Context, service, method string, req, resp any) error {
	if err := d.Wait(ctx); err != nil {
		return fmt.Errorf("%s: %w: %w: %w", method, errNotReachable, err, errdefs.ErrUnavailable)
	}
	return d.client.Call(ctx, service, method, req, resp)
}

// Close closes the connection, including one still being made.
func (d *Delegate) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.client != nil {
		d.client.Close()
	}
}

// Connect dials the delegate and checks it answers Connect, retrying the first handshake
// under a deadline. It returns the client and the delegate's shim pid. onClose runs when
// the returned client's connection closes, never for an attempt that was given up.
func Connect(ctx context.Context, address string, version int, onClose func()) (*ttrpc.Client, int, error) {
	service := TaskService(version)
	if service == "" {
		return nil, 0, fmt.Errorf("delegate speaks task API version %d; isoguard speaks 2 and 3: %w", version, errdefs.ErrNotImplemented)
	}
	deadline := time.Now().Add(connectTimeout)
	var lastErr error
	for attempt := 0; time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			time.Sleep(min(time.Duration(attempt)*20*time.Millisecond, 500*time.Millisecond))
		}
		client, pid, err := connectOnce(ctx, address, service, onClose)
		if err == nil {
			return client, pid, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	return nil, 0, fmt.Errorf("delegate at %s did not answer Connect within %s: %w: %w", address, connectTimeout, lastErr, errdefs.ErrUnavailable)
}

// connectOnce is one attempt. Its client reports its closing to onClose only once the
// attempt has succeeded: a connection that closes while (or because) the attempt fails is
// the attempt's business, and must not end a wrapper whose next attempt succeeds.
func connectOnce(ctx context.Context, address, service string, onClose func()) (*ttrpc.Client, int, error) {
	conn, err := transport.Dial(address, connectAttempt)
	if err != nil {
		return nil, 0, err
	}
	a := &attempt{onClose: onClose}
	client := ttrpc.NewClient(conn, ttrpc.WithOnClose(a.closed))
	// The attempt's deadline must bound the request's write too: ttrpc honours the context
	// only while awaiting the answer, and a pipe instance nobody reads (go-winio's
	// placeholder under wine; any delegate that accepts but does not read) blocks the write
	// forever.
	_ = conn.SetWriteDeadline(time.Now().Add(connectAttempt))
	actx, cancel := context.WithTimeout(ctx, connectAttempt)
	var resp taskv2.ConnectResponse
	err = client.Call(actx, service, "Connect", &taskv2.ConnectRequest{}, &resp)
	cancel()
	if err == nil {
		err = conn.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		a.settle(false)
		client.Close()
		return nil, 0, err
	}
	if !a.settle(true) {
		// The connection closed between the answer and now: the delegate went away.
		onClose()
	}
	return client, int(resp.GetShimPid()), nil
}

// attempt decides who hears of a connection's closing: nobody while the attempt is
// pending or after it was given up, onClose once it succeeded.
type attempt struct {
	mu        sync.Mutex
	onClose   func()
	done      bool // settled
	succeeded bool
	gone      bool // closed while pending
}

func (a *attempt) closed() {
	a.mu.Lock()
	if !a.done {
		a.gone = true
		a.mu.Unlock()
		return
	}
	ok := a.succeeded
	a.mu.Unlock()
	if ok {
		a.onClose()
	}
}

// settle records the attempt's outcome; for a success it reports whether the connection
// is still open.
func (a *attempt) settle(succeeded bool) (open bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done, a.succeeded = true, succeeded
	return !a.gone
}
