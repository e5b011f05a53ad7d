package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
)

const (
	// delegateStartTimeout bounds the delegate's `start`.
	delegateStartTimeout = 2 * time.Minute
	// connectTimeout bounds connecting to the delegate after its start answered. Each
	// attempt has its own short deadline: a first handshake that hangs is retried
	// (correct on Windows too; needed under wine, see docs/windows-wine.md).
	connectTimeout  = 30 * time.Second
	connectAttempt  = 2 * time.Second
	shutdownTimeout = 10 * time.Second
	// freeMemoryInterval: how often the idle daemon returns freed memory to the OS
	// (containerd's shims: every 30 s; a forced collection of this small heap costs ~1 ms).
	freeMemoryInterval = 10 * time.Second
	firstFreeMemory    = time.Second
)

// readiness is what the daemon tells `start` on its stdout pipe, as one JSON object.
type readiness struct {
	Address string `json:"address,omitempty"`
	Error   string `json:"error,omitempty"`
}

// serve is the wrapper daemon: it runs the delegate's start, connects to it, serves
// containerd's task API on f.Socket and relays it, until the delegate goes away.
// ready receives the readiness report and is closed before serving.
func serve(ctx context.Context, f Flags, stdin io.Reader, ready io.WriteCloser, hooks Hooks) (retErr error) {
	reported := false
	report := func(r readiness) {
		if reported {
			return
		}
		reported = true
		_ = json.NewEncoder(ready).Encode(r)
		ready.Close()
	}
	defer func() {
		if retErr != nil {
			report(readiness{Error: retErr.Error()})
		}
	}()
	if f.Socket == "" {
		return fmt.Errorf("serve needs -socket: %w", errdefs.ErrInvalidArgument)
	}
	began := time.Now()
	sc, err := readStartContext(f, stdin)
	if err != nil {
		return err
	}
	in, bundle, role := sc.in, sc.bundle, sc.role
	if role.IsWorkload() {
		return fmt.Errorf("serve: container %s joins pod %s and must not get a wrapper of its own: %w", f.ID, role.SandboxID, errdefs.ErrInvalidArgument)
	}
	settings, settingsErr := delegateSettings()
	delegatePath, err := findDelegate(settings.Path, f)
	if settingsErr != nil {
		// A policy file that cannot be read decides nothing: the start hook records and
		// denies (fail closed); without a hook that does, the error itself denies.
		inst := &Instance{Namespace: f.Namespace, Bundle: bundle, State: &State{ID: f.ID, Namespace: f.Namespace, Delegate: DelegateState{Path: delegatePath}}}
		if herr := runHook(ctx, "start", func() error { return hooks.Start(ctx, inst, &in) }); herr != nil {
			return herr
		}
		return settingsErr
	}
	if err != nil {
		return err
	}
	format, err := delegateStdinFormat(StdinFormat(settings.StdinFormat), delegatePath, in.Format)
	if err != nil {
		return err
	}
	inst := &Instance{
		Namespace: f.Namespace,
		Bundle:    bundle,
		State: &State{
			ID:        f.ID,
			Namespace: f.Namespace,
			Sandbox:   role.Type == ContainerTypeSandbox,
			Address:   f.Socket,
			Pid:       os.Getpid(),
			Delegate:  DelegateState{Path: delegatePath, StdinFormat: format},
		},
	}
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{logID: f.ID, logNamespace: f.Namespace}))
	if err := runHook(ctx, "start", func() error { return hooks.Start(ctx, inst, &in) }); err != nil {
		return err
	}
	decided := time.Now()
	delegateStdin, err := in.Encode(format, f, os.Getenv)
	if err != nil {
		return err
	}

	// Listen before starting the delegate: a wrapper that cannot serve must not leave a
	// delegate running.
	l, err := listen(f.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.Socket, err)
	}
	defer func() {
		l.Close()
		if err := removeAddress(f.Socket); err != nil {
			log.G(ctx).WithError(err).Warn("remove wrapper socket")
		}
	}()

	answer, err := startDelegate(ctx, delegatePath, f, bundle, delegateStdin)
	if err != nil {
		// A delegate whose start failed (or was killed at its timeout) may have spawned its
		// daemon already: clean it up like one that cannot be reached.
		inst.State.Delegate.Pid = readPidFile(filepath.Join(bundle, "shim.pid"))
		cleanupDelegate(ctx, f, inst.State, bundle)
		return err
	}
	delegateStarted := time.Now()
	inst.State.Delegate.Address = answer.Address
	inst.State.Delegate.Version = answer.Version
	log.G(ctx).WithFields(log.Fields{logDelegate: delegatePath, logAddress: answer.Address, logVersion: answer.Version}).Info("delegate started")

	delegateGone := make(chan struct{})
	var goneOnce sync.Once
	gone := func() { goneOnce.Do(func() { close(delegateGone) }) }
	dc := dialDelegate(ctx, answer, gone)
	defer dc.Close()

	if err := writeBundleFiles(bundle, inst.State); err != nil {
		_ = dc.wait(ctx)
		inst.State.Delegate.Pid = dc.pid
		cleanupDelegate(ctx, f, inst.State, bundle)
		return err
	}
	// Record the delegate's pid once its handshake succeeded; a delegate that started but
	// cannot be reached is cleaned up and ends the wrapper (containerd then runs `delete`).
	go func() {
		if err := dc.wait(ctx); err != nil {
			log.G(ctx).WithError(err).Error("delegate not reachable; wrapper exits")
			cleanupDelegate(ctx, f, inst.State, bundle)
			gone()
			return
		}
		st := *inst.State
		st.Delegate.Pid = dc.pid
		if err := writeState(bundle, &st); err != nil {
			log.G(ctx).WithError(err).Error("record the delegate's pid")
		}
		log.G(ctx).WithFields(log.Fields{logPid: dc.pid, logConnect: time.Since(delegateStarted).String()}).Debug("delegate connected")
	}()

	proxy, err := NewProxy(dc, answer.Version, hooks, inst)
	if err != nil {
		return err
	}
	srv, err := ttrpc.NewServer(serverOptions()...)
	if err != nil {
		return err
	}
	defer srv.Close()
	proxy.Register(srv)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	report(readiness{Address: f.Socket})
	// Give start-up's garbage (policy, spec, delegate start) back to the OS once containerd
	// has created and started the task -- a forced collection right now would compete with
	// containerd's Create for the CPU -- and then keep the daemon small like containerd's
	// shims do (pkg/shim/shim.go setRuntime).
	go func() {
		time.Sleep(firstFreeMemory)
		for {
			debug.FreeOSMemory()
			time.Sleep(freeMemoryInterval)
		}
	}()
	log.G(ctx).WithFields(log.Fields{
		logAddress: f.Socket, logPid: os.Getpid(),
		logDecide:        decided.Sub(began).String(),
		logDelegateStart: delegateStarted.Sub(decided).String(),
	}).Info("isoguard wrapper serving")

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	select {
	case <-delegateGone:
		log.G(ctx).Info("delegate connection closed; wrapper exits")
	case err := <-served:
		if err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			log.G(ctx).WithError(err).Error("ttrpc server failed")
		}
	case s := <-sigs:
		log.G(ctx).WithField(logSignal, s.String()).Info("wrapper stopped by signal")
	}
	// Let answers in flight (notably the Shutdown that made the delegate exit) reach
	// containerd before the connection closes: wait for the handlers, then close the
	// (now idle) connections. ttrpc's Shutdown re-checks idleness only every 200 ms, so
	// it gets a short deadline and Close finishes the job; containerd takes a connection
	// closed while it awaits Shutdown's answer as success (core/runtime/v2/shim.go).
	proxy.waitIdle(shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.G(ctx).WithError(err).Warn("ttrpc server shutdown")
	}
	_ = srv.Close()
	return nil
}

// startDelegate runs the delegate's `start` with containerd's argv, in the bundle.
func startDelegate(ctx context.Context, path string, f Flags, bundle string, stdin []byte) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, delegateStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, f.delegateArgs(ActionStart)...)
	cmd.Dir = bundle
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Answer{}, fmt.Errorf("delegate %s start failed: %w: %w: %s", path, err, errdefs.ErrUnavailable, truncate(string(bytes.TrimSpace(out)), 4096))
	}
	a, err := ParseAnswer(out)
	if err != nil {
		return Answer{}, fmt.Errorf("delegate %s: %w", path, err)
	}
	if a.Address == f.Socket {
		return Answer{}, fmt.Errorf("delegate %s answered the wrapper's own address %s: %w", path, a.Address, errdefs.ErrInvalidArgument)
	}
	return a, nil
}

// connectDelegate dials the delegate and checks it answers Connect, retrying the first
// handshake under a deadline. It returns the client and the delegate's shim pid.
func connectDelegate(ctx context.Context, a Answer, onClose func()) (*ttrpc.Client, int, error) {
	service := TaskServiceV2
	if a.Version == 3 {
		service = TaskServiceV3
	}
	deadline := time.Now().Add(connectTimeout)
	var lastErr error
	for attempt := 0; time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			time.Sleep(min(time.Duration(attempt)*20*time.Millisecond, 500*time.Millisecond))
		}
		conn, err := dial(a.Address, connectAttempt)
		if err != nil {
			lastErr = err
			continue
		}
		closed := make(chan struct{})
		client := ttrpc.NewClient(conn, ttrpc.WithOnClose(func() {
			select {
			case <-closed:
				return // a discarded attempt
			default:
			}
			onClose()
		}))
		// The attempt's deadline must bound the request's write too: ttrpc honours the
		// context only while awaiting the answer, and a pipe instance nobody reads (go-winio's
		// placeholder under wine; any delegate that accepts but does not read) blocks the
		// write forever.
		_ = conn.SetWriteDeadline(time.Now().Add(connectAttempt))
		actx, cancel := context.WithTimeout(ctx, connectAttempt)
		var resp taskv2.ConnectResponse
		err = client.Call(actx, service, "Connect", &taskv2.ConnectRequest{}, &resp)
		cancel()
		if err == nil {
			err = conn.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			lastErr = err
			close(closed)
			client.Close()
			continue
		}
		return client, int(resp.GetShimPid()), nil
	}
	return nil, 0, fmt.Errorf("delegate at %s did not answer Connect within %s: %w: %w", a.Address, connectTimeout, lastErr, errdefs.ErrUnavailable)
}

// writeBundleFiles records the wrapper in the bundle after the delegate's start wrote its
// own files: isoguard's record, then the files containerd restores from (`address` for
// containerd 1.x, `bootstrap.json` for 2.x, and `shim.pid`), all naming the WRAPPER.
func writeBundleFiles(bundle string, st *State) error {
	if err := writeState(bundle, st); err != nil {
		return fmt.Errorf("write isoguard record: %w", err)
	}
	return writeRestoreFiles(bundle, st.Address, st.Pid)
}

func writeRestoreFiles(bundle, address string, pid int) error {
	if err := writeFileAtomic(filepath.Join(bundle, "address"), []byte(address), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(bundle, "shim.pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return err
	}
	bj, err := json.Marshal(map[string]any{"version": 2, "address": address, "protocol": "ttrpc"})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(bundle, "bootstrap.json"), bj, 0o644)
}

// cleanupDelegate ends a delegate this wrapper started: its `delete` (which also cleans
// what it created), then its process if still there.
func cleanupDelegate(ctx context.Context, f Flags, st *State, bundle string) {
	f.Bundle = bundle
	if _, err := runDelegateDelete(ctx, st.Delegate.Path, f, io.Discard); err != nil {
		log.G(ctx).WithError(err).Warn("delegate delete during cleanup")
	}
	if processMatches(st.Delegate.Pid, st.Delegate.Path, st.ID) {
		_ = terminate(st.Delegate.Pid, 2*time.Second)
	}
}

// readPidFile reads a pid file the delegate's start wrote (0 if there is none).
func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}
