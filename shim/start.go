package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// daemonReadyTimeout bounds how long `start` waits for its daemon after the handoff (the
// daemon only writes its files and starts serving then).
const daemonReadyTimeout = 30 * time.Second

// DaemonLog is the file in the bundle that takes the wrapper daemon's stderr (panics,
// and logs when containerd's log fifo is not available), like runhcs's panic.log.
const DaemonLog = "isoguard-shim.log"

// start is `start`. It prints nothing but the answer (containerd reads stdout and stderr
// combined) and answers a plain address: task API version 2 over ttrpc.
func start(ctx context.Context, f Flags, stdin io.Reader, stdout io.Writer, hooks Hooks) error {
	if err := f.validate(); err != nil {
		return err
	}
	sc, err := readStartContext(f, stdin)
	if err != nil {
		return err
	}
	var address string
	if sc.role.IsWorkload() {
		address, err = joinPod(ctx, f, sc.bundle, sc.role, hooks)
	} else {
		address, err = startInstance(ctx, f, sc, hooks)
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, address)
	return err
}

// joinPod answers the pod's wrapper address for a workload container, and only for a pod
// this wrapper started and recorded (threats T4). It never answers the delegate's address:
// containerd would then talk to the delegate directly for this container.
func joinPod(ctx context.Context, f Flags, bundle string, role PodRole, hooks Hooks) (string, error) {
	sb, err := sandboxBundle(bundle, role.SandboxID)
	if err != nil {
		return "", err
	}
	st, err := readState(sb)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("isoguard: container %s names pod sandbox %s, which isoguard did not start in namespace %s: %w",
				f.ID, role.SandboxID, f.Namespace, errdefs.ErrPermissionDenied)
		}
		return "", fmt.Errorf("isoguard: container %s: pod sandbox %s: %w", f.ID, role.SandboxID, err)
	}
	if !st.Sandbox || st.ID != role.SandboxID || st.Namespace != f.Namespace {
		return "", fmt.Errorf("isoguard: container %s names %s, which isoguard started as a %s in namespace %s, not as a pod sandbox in namespace %s: %w",
			f.ID, role.SandboxID, kindOf(st), st.Namespace, f.Namespace, errdefs.ErrPermissionDenied)
	}
	conn, err := dial(st.Address, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("isoguard: pod sandbox %s's wrapper at %s is not running: %w: %w", role.SandboxID, st.Address, err, errdefs.ErrUnavailable)
	}
	conn.Close()
	inst := &Instance{Namespace: f.Namespace, Bundle: sb, State: st}
	if err := runHook(ctx, "join", func() error { return hooks.Join(ctx, inst, bundle) }); err != nil {
		return "", err
	}
	// containerd 1.x restores this container's connection from its own bundle's address.
	if err := writeRestoreFiles(bundle, st.Address, st.Pid); err != nil {
		return "", err
	}
	return st.Address, nil
}

func kindOf(st *State) string {
	if st.Sandbox {
		return "pod sandbox"
	}
	return "standalone container"
}

// startInstance starts the wrapper of a sandbox or standalone container. The decision
// (policy) comes first: a denied start starts nothing. Then the wrapper daemon is spawned
// and boots (and listens) while this process runs the delegate's `start`; the daemon gets
// the result as a handoff, connects to the delegate and reports ready.
func startInstance(ctx context.Context, f Flags, sc startContext, hooks Hooks) (string, error) {
	socket := wrapperAddress(f, sc.in.SocketDir())
	began := time.Now()
	inst, delegateStdin, err := decideStart(ctx, f, sc, socket, hooks)
	if err != nil {
		return "", err
	}
	decided := time.Now()
	d, err := spawnDaemon(f, sc.bundle, socket)
	if err != nil {
		return "", err
	}
	inst.State.Pid = d.pid
	path := inst.State.Delegate.Path
	answer, err := startDelegate(ctx, path, f, sc.bundle, socket, delegateStdin)
	if err != nil {
		d.abort()
		// A delegate whose start failed (or was killed at its timeout) may have spawned
		// its daemon already: clean it up.
		inst.State.Delegate.Pid = readPidFile(filepath.Join(sc.bundle, "shim.pid"))
		cleanupDelegate(ctx, f, inst.State, sc.bundle)
		return "", err
	}
	inst.State.Delegate.Address, inst.State.Delegate.Version = answer.Address, answer.Version
	h := handoff{State: *inst.State, Decide: decided.Sub(began), DelegateStart: time.Since(decided)}
	if err := d.handoff(h); err == nil {
		err = d.waitReady(socket)
	}
	if err != nil {
		// The daemon could not listen or serve: do not leave the delegate running.
		d.abort()
		cleanupDelegate(ctx, f, inst.State, sc.bundle)
		return "", err
	}
	return socket, nil
}

// decideStart resolves the delegate and runs the start hook: what the delegate gets on
// stdin, config.json and the pod's pins. A policy file that cannot be read decides
// nothing: the hook records and denies (fail closed); without a hook that does, the error
// itself denies.
func decideStart(ctx context.Context, f Flags, sc startContext, socket string, hooks Hooks) (*Instance, []byte, error) {
	settings, settingsErr := delegateSettings()
	delegatePath, err := findDelegate(settings.Path, f)
	inst := &Instance{Namespace: f.Namespace, Bundle: sc.bundle, State: &State{
		ID: f.ID, Namespace: f.Namespace, Sandbox: sc.role.Type == ContainerTypeSandbox, Address: socket,
		Delegate: DelegateState{Path: delegatePath},
	}}
	in := sc.in
	if settingsErr != nil {
		if herr := runHook(ctx, "start", func() error { return hooks.Start(ctx, inst, &in) }); herr != nil {
			return nil, nil, herr
		}
		return nil, nil, settingsErr
	}
	if err != nil {
		return nil, nil, err
	}
	format, err := delegateStdinFormat(StdinFormat(settings.StdinFormat), delegatePath, in.Format)
	if err != nil {
		return nil, nil, err
	}
	inst.State.Delegate.StdinFormat = format
	if err := runHook(ctx, "start", func() error { return hooks.Start(ctx, inst, &in) }); err != nil {
		return nil, nil, err
	}
	delegateStdin, err := in.Encode(format, f, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	return inst, delegateStdin, nil
}

// daemon is a spawned wrapper daemon, before it reported ready.
type daemon struct {
	pid     int
	cmd     *exec.Cmd
	handIn  io.WriteCloser // the daemon's stdin: the handoff
	readyR  *os.File       // the daemon's stdout: its readiness report
	bundle  string
	aborted bool
}

// spawnDaemon starts the wrapper daemon fully detached (own session, no handle on start's
// stdout/stderr, which containerd waits on).
func spawnDaemon(f Flags, bundle, socket string) (*daemon, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(bundle, DaemonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, f.serveArgs(socket)...)
	cmd.Dir = bundle
	cmd.Stdout = w
	cmd.Stderr = logf
	cmd.SysProcAttr = detached()
	in, err := cmd.StdinPipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start wrapper daemon: %w", err)
	}
	w.Close()
	return &daemon{pid: cmd.Process.Pid, cmd: cmd, handIn: in, readyR: r, bundle: bundle}, nil
}

// handoff sends the daemon its instance.
func (d *daemon) handoff(h handoff) error {
	err := json.NewEncoder(d.handIn).Encode(h)
	if cerr := d.handIn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("hand the instance to the wrapper daemon: %w", err)
	}
	return nil
}

// abort ends a daemon that will not serve: no handoff, and the process is killed.
func (d *daemon) abort() {
	if d.aborted {
		return
	}
	d.aborted = true
	d.handIn.Close()
	d.readyR.Close()
	_ = d.cmd.Process.Kill()
}

// waitReady waits for the daemon's readiness report.
func (d *daemon) waitReady(socket string) error {
	type result struct {
		r   readiness
		err error
	}
	got := make(chan result, 1)
	go func() {
		var rd readiness
		line, err := bufio.NewReader(io.LimitReader(d.readyR, 1<<20)).ReadBytes('\n')
		if err == nil || (errors.Is(err, io.EOF) && len(line) > 0) {
			err = json.Unmarshal(line, &rd)
		}
		got <- result{rd, err}
	}()
	select {
	case res := <-got:
		d.readyR.Close()
		if res.err != nil {
			return fmt.Errorf("isoguard wrapper daemon exited before it was ready (see %s): %w: %w", filepath.Join(d.bundle, DaemonLog), res.err, errdefs.ErrUnavailable)
		}
		if res.r.Error != "" {
			// The daemon's error, as text (its first line names isoguard when it is ours).
			msg := res.r.Error
			if !strings.HasPrefix(msg, "isoguard") {
				msg = "isoguard: " + msg
			}
			return errors.New(msg)
		}
		if res.r.Address != socket {
			return fmt.Errorf("isoguard wrapper daemon reported address %q, expected %q: %w", res.r.Address, socket, errdefs.ErrInternal)
		}
		return nil
	case <-time.After(daemonReadyTimeout):
		return fmt.Errorf("isoguard wrapper daemon was not ready within %s: %w", daemonReadyTimeout, context.DeadlineExceeded)
	}
}

// startContext is what `start` reads first: stdin (raw and decoded), the bundle (the
// working directory containerd chose) and the container's role in a pod.
type startContext struct {
	data   []byte
	in     StartInput
	bundle string
	role   PodRole
}

func readStartContext(f Flags, stdin io.Reader) (startContext, error) {
	var sc startContext
	var err error
	if sc.data, err = io.ReadAll(io.LimitReader(stdin, maxStdin+1)); err != nil {
		return sc, fmt.Errorf("read options from stdin: %w", err)
	}
	if sc.in, err = ParseStartInput(sc.data, f.ID, f.Namespace); err != nil {
		return sc, err
	}
	if sc.bundle, err = os.Getwd(); err != nil {
		return sc, err
	}
	spec, err := readSpecFile(sc.bundle)
	if err != nil {
		return sc, err
	}
	sc.role, err = podRole(spec)
	return sc, err
}
