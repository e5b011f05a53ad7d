package shim

import (
	"bufio"
	"bytes"
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

// daemonReadyTimeout bounds how long `start` waits for its daemon; the delegate's own start
// is bounded by delegateStartTimeout inside it.
const daemonReadyTimeout = delegateStartTimeout + connectTimeout + 10*time.Second

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
	data, in, bundle, role := sc.data, sc.in, sc.bundle, sc.role
	var address string
	if role.IsWorkload() {
		address, err = joinPod(ctx, f, bundle, role, hooks)
	} else {
		address, err = spawnDaemon(f, bundle, data, wrapperAddress(f, in.SocketDir()))
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
	sb, err := siblingBundle(bundle, role.SandboxID)
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

// spawnDaemon starts the wrapper daemon fully detached (own session, no handle on start's
// stdout/stderr, which containerd waits on) and waits for its readiness report.
func spawnDaemon(f Flags, bundle string, stdin []byte, socket string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	logf, err := os.OpenFile(filepath.Join(bundle, DaemonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	cmd := exec.Command(self, f.serveArgs(socket)...)
	cmd.Dir = bundle
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = w
	cmd.Stderr = logf
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		w.Close()
		return "", fmt.Errorf("start wrapper daemon: %w", err)
	}
	w.Close()

	type result struct {
		r   readiness
		err error
	}
	got := make(chan result, 1)
	go func() {
		var rd readiness
		line, err := bufio.NewReader(io.LimitReader(r, 1<<20)).ReadBytes('\n')
		if err == nil || (errors.Is(err, io.EOF) && len(line) > 0) {
			err = json.Unmarshal(line, &rd)
		}
		got <- result{rd, err}
	}()
	select {
	case res := <-got:
		if res.err != nil {
			_ = cmd.Process.Kill()
			return "", fmt.Errorf("isoguard wrapper daemon exited before it was ready (see %s): %w: %w", filepath.Join(bundle, DaemonLog), res.err, errdefs.ErrUnavailable)
		}
		if res.r.Error != "" {
			// The daemon's error, as text (its first line names isoguard when it is ours).
			msg := res.r.Error
			if !strings.HasPrefix(msg, "isoguard") {
				msg = "isoguard: " + msg
			}
			return "", errors.New(msg)
		}
		if res.r.Address != socket {
			_ = cmd.Process.Kill()
			return "", fmt.Errorf("isoguard wrapper daemon reported address %q, expected %q: %w", res.r.Address, socket, errdefs.ErrInternal)
		}
		return socket, nil
	case <-time.After(daemonReadyTimeout):
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("isoguard wrapper daemon was not ready within %s: %w", daemonReadyTimeout, context.DeadlineExceeded)
	}
}

// startContext is what both `start` and `serve` read first: stdin (raw and decoded), the
// bundle (the working directory containerd chose) and the container's role in a pod.
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
