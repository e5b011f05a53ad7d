package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/cri"
	"github.com/isoguard/isoguard/internal/logfields"
	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
	"github.com/isoguard/isoguard/shim/internal/relay"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// shutdownTimeout bounds how long the daemon waits for calls in flight when it ends.
const shutdownTimeout = 10 * time.Second

// daemon is one wrapper instance: a pod sandbox's or a standalone container's.
type daemon struct {
	f      Flags
	hooks  hooks.Hooks
	bundle string
	rec    *bundle.Record // what the wrapper records in the bundle
	inst   *hooks.Instance

	delegateGone chan struct{} // closed when the delegate's connection closes
	goneOnce     sync.Once
	// denial is the start hook's denial: no delegate is started, and containerd's Create
	// gets the denial (serveRefusal).
	denial error
}

func (d *daemon) gone() { d.goneOnce.Do(func() { close(d.delegateGone) }) }

// serve is the wrapper daemon: it decides the instance's start, runs the delegate's start,
// connects to it, serves containerd's task API on f.Socket and relays it, until the
// delegate goes away or the daemon is signalled. ready receives the readiness report,
// which `start` waits for.
func serve(ctx context.Context, f Flags, stdin io.Reader, ready io.WriteCloser, h hooks.Hooks) (retErr error) {
	rep := &reporter{w: ready}
	defer func() {
		if retErr != nil {
			rep.report(readiness{Error: retErr.Error()})
		}
	}()
	// From here on a SIGTERM ends the daemon in order: a delegate it started is cleaned up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	if f.Socket == "" {
		return fmt.Errorf("serve needs -socket: %w", errdefs.ErrInvalidArgument)
	}
	began := time.Now()
	d, delegateStdin, err := decideStart(ctx, f, stdin, h)
	if err != nil {
		return err
	}
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{logfields.ID: f.ID, logfields.Namespace: f.Namespace}))
	decided := time.Now()

	// Listen before starting the delegate: a wrapper that cannot serve must not leave a
	// delegate running.
	l, closeListener, err := listen(ctx, f.Socket)
	if err != nil {
		return err
	}
	defer closeListener()
	if d.denial != nil {
		return d.serveRefusal(ctx, l, rep, sigs)
	}
	if s, ok := signalled(sigs); ok {
		return fmt.Errorf("stopped by %s before the delegate started: %w", s, errdefs.ErrAborted)
	}
	// `start` cleans up after a daemon killed from here on: it must know the delegate.
	rep.progress(readiness{Delegate: d.rec.Delegate.Path})
	answer, err := d.startDelegate(ctx, delegateStdin)
	if err != nil {
		return err
	}
	if s, ok := signalled(sigs); ok {
		d.cleanupDelegate(ctx)
		return fmt.Errorf("stopped by %s while the delegate started: %w", s, errdefs.ErrAborted)
	}
	delegateStarted := time.Now()
	dc := relay.Dial(ctx, answer.Address, answer.Version, d.gone)
	defer dc.Close()
	if err := d.recordStart(ctx, dc, delegateStarted); err != nil {
		return err
	}
	srv, proxy, err := d.newServer(dc, answer.Version)
	if err != nil {
		return err
	}
	defer srv.Close()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	rep.report(readiness{Address: f.Socket, Version: d.rec.TaskAPI})
	go freeMemory()
	log.G(ctx).WithFields(log.Fields{
		logfields.Address: f.Socket, logfields.Pid: os.Getpid(),
		logfields.Decide:        decided.Sub(began).String(),
		logfields.DelegateStart: delegateStarted.Sub(decided).String(),
	}).Info("wrapper serving")
	err = d.awaitEnd(ctx, served, sigs)
	shutdown(ctx, srv, proxy)
	return err
}

// listen opens the wrapper's address; the returned func closes it and removes what it
// leaves.
func listen(ctx context.Context, address string) (net.Listener, func(), error) {
	l, err := transport.Listen(address)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	return l, func() {
		l.Close()
		if err := transport.RemoveAddress(address); err != nil {
			log.G(ctx).WithError(err).Warn("remove wrapper socket")
		}
	}, nil
}

// decideStart reads what containerd gave the daemon, runs the start hook (which may
// choose the delegate and change its options) and resolves the delegate. It returns the
// instance and what the delegate gets on stdin.
func decideStart(ctx context.Context, f Flags, stdin io.Reader, h hooks.Hooks) (*daemon, []byte, error) {
	sc, err := readStartContext(f, stdin)
	if err == nil && sc.role.IsWorkload() {
		err = fmt.Errorf("container %s joins pod %s and gets no wrapper of its own: %w", f.ID, sc.sandboxID, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		h.Refused(ctx, hooks.Refusal{Call: "start", Namespace: f.Namespace, ID: f.ID, SandboxID: sc.sandboxID, Cause: err})
		return nil, nil, err
	}
	d := &daemon{
		f: f, hooks: h, bundle: sc.bundle, delegateGone: make(chan struct{}),
		inst: &hooks.Instance{Namespace: f.Namespace, ID: f.ID, Bundle: sc.bundle, Sandbox: sc.role == cri.RoleSandbox},
	}
	self, _ := os.Executable()
	d.rec = &bundle.Record{ID: f.ID, Namespace: f.Namespace, Sandbox: d.inst.Sandbox, Address: f.Socket, TaskAPI: bootstrap.AnswerVersion(sc.in), Pid: os.Getpid(), Binary: self}
	req := &hooks.StartRequest{Options: sc.in.Options}
	if err := relay.RunHook(ctx, "start", func() error { return h.Start(ctx, d.inst, req) }); err != nil {
		if errdefs.IsPermissionDenied(err) {
			// A denial is answered at Create, where containerd passes its code on.
			d.denial, d.rec.Denied = err, err.Error()
			return d, nil, nil
		}
		return nil, nil, err
	}
	path, err := findDelegate(req.Delegate.Path, f)
	if err != nil {
		return nil, nil, err
	}
	format, err := bootstrap.DelegateFormat(req.Delegate.StdinFormat, path, sc.in.Format)
	if err != nil {
		return nil, nil, err
	}
	d.inst.Delegate = hooks.Delegate{Path: path, StdinFormat: format}
	d.rec.Delegate = bundle.Delegate{Path: path, StdinFormat: format}
	d.rec.Pins = d.inst.Pins
	sc.in.Options = req.Options
	delegateStdin, err := sc.in.Encode(format, f.launch())
	return d, delegateStdin, err
}

// serveRefusal serves a wrapper whose start was denied until containerd, having had the
// denial as the answer to its Create, shuts it down. No delegate runs.
func (d *daemon) serveRefusal(ctx context.Context, l net.Listener, rep *reporter, sigs <-chan os.Signal) error {
	if err := bundle.WriteRecord(d.bundle, d.rec); err != nil {
		return fmt.Errorf("write isoguard record: %w", err)
	}
	if err := bundle.WriteRestoreFiles(d.bundle, d.rec.Address, d.rec.Pid, d.rec.TaskAPI); err != nil {
		return err
	}
	srv, err := ttrpc.NewServer(transport.ServerOptions()...)
	if err != nil {
		return err
	}
	defer srv.Close()
	relay.RegisterRefusal(srv, d.denial, os.Getpid(), d.gone)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	rep.report(readiness{Address: d.f.Socket, Version: d.rec.TaskAPI})
	log.G(ctx).WithError(d.denial).Info("start denied; the denial answers containerd's Create")
	err = d.awaitEnd(ctx, served, sigs)
	// Let Shutdown's answer reach containerd before the connection closes.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Millisecond)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return err
}

// startDelegate runs the delegate's start; a delegate whose start failed (or was killed at
// its timeout) may have spawned its daemon already, which is cleaned up.
func (d *daemon) startDelegate(ctx context.Context, stdin []byte) (bootstrap.Answer, error) {
	answer, err := runDelegateStart(ctx, d.rec.Delegate.Path, d.f, d.bundle, stdin)
	if err != nil {
		d.rec.Delegate.Pid = bundle.ReadPid(filepath.Join(d.bundle, bundle.PidFile))
		d.cleanupDelegate(ctx)
		return answer, err
	}
	d.rec.Delegate.Address, d.rec.Delegate.Version = answer.Address, answer.Version
	log.G(ctx).WithFields(log.Fields{logfields.Delegate: d.rec.Delegate.Path, logfields.Address: answer.Address, logfields.Version: answer.Version}).Info("delegate started")
	return answer, nil
}

// recordStart writes the wrapper's record and the files containerd restores from, all
// naming the wrapper, once the delegate's start wrote its own. The delegate's pid is added
// once its first handshake succeeded; a delegate that started but cannot be reached is
// cleaned up and ends the wrapper (containerd then runs `delete`).
func (d *daemon) recordStart(ctx context.Context, dc *relay.Delegate, started time.Time) error {
	err := bundle.WriteRecord(d.bundle, d.rec)
	if err != nil {
		err = fmt.Errorf("write isoguard record: %w", err)
	} else {
		err = bundle.WriteRestoreFiles(d.bundle, d.rec.Address, d.rec.Pid, d.rec.TaskAPI)
	}
	if err != nil {
		_ = dc.Wait(ctx)
		d.rec.Delegate.Pid = dc.Pid()
		d.cleanupDelegate(ctx)
		return err
	}
	go func() {
		if err := dc.Wait(ctx); err != nil {
			log.G(ctx).WithError(err).Error("delegate not reachable; wrapper exits")
			d.cleanupDelegate(ctx)
			d.gone()
			return
		}
		rec := *d.rec
		rec.Delegate.Pid = dc.Pid()
		if err := bundle.WriteRecord(d.bundle, &rec); err != nil {
			log.G(ctx).WithError(err).Error("record the delegate's pid")
		}
		log.G(ctx).WithFields(log.Fields{logfields.Pid: rec.Delegate.Pid, logfields.Connect: time.Since(started).String()}).Debug("delegate connected")
	}()
	return nil
}

// newServer is the ttrpc server containerd talks to, with the relay registered.
func (d *daemon) newServer(dc *relay.Delegate, version int) (*ttrpc.Server, *relay.Proxy, error) {
	proxy, err := relay.New(dc, version, joiner{Hooks: d.hooks}, d.inst)
	if err != nil {
		return nil, nil, err
	}
	srv, err := ttrpc.NewServer(transport.ServerOptions()...)
	if err != nil {
		return nil, nil, err
	}
	proxy.Register(srv)
	return srv, proxy, nil
}

// awaitEnd waits for what ends the daemon: the delegate's connection closing (its normal
// end, after Shutdown), the server failing, or a signal.
func (d *daemon) awaitEnd(ctx context.Context, served <-chan error, sigs <-chan os.Signal) error {
	select {
	case <-d.delegateGone:
		log.G(ctx).Info("delegate connection closed; wrapper exits")
	case err := <-served:
		if err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			log.G(ctx).WithError(err).Error("ttrpc server failed")
			return fmt.Errorf("serve on %s: %w", d.f.Socket, err)
		}
	case s := <-sigs:
		log.G(ctx).WithField(logfields.Signal, s.String()).Info("wrapper stopped by signal")
	}
	return nil
}

// shutdown lets answers in flight (notably the Shutdown that made the delegate exit) reach
// containerd before the connection closes: it waits for the handlers, then closes the
// (now idle) connections. ttrpc's Shutdown re-checks idleness only every 200 ms, so it
// gets a short deadline and Close finishes the job; containerd takes a connection closed
// while it awaits Shutdown's answer as success (core/runtime/v2/shim.go).
func shutdown(ctx context.Context, srv *ttrpc.Server, proxy *relay.Proxy) {
	proxy.WaitIdle(shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.G(ctx).WithError(err).Warn("ttrpc server shutdown")
	}
	_ = srv.Close()
}

// cleanupDelegate ends a delegate this wrapper started (cleanupStartedDelegate).
func (d *daemon) cleanupDelegate(ctx context.Context) {
	cleanupStartedDelegate(ctx, d.f, d.bundle, d.rec)
}

// signalled reports a signal already received, without waiting.
func signalled(sigs <-chan os.Signal) (os.Signal, bool) {
	select {
	case s := <-sigs:
		return s, true
	default:
		return nil, false
	}
}
