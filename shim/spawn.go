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
	"time"

	"github.com/containerd/errdefs"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/proc"
	"github.com/isoguard/isoguard/shim/internal/relay"
)

// daemonReadyTimeout bounds how long `start` waits for its daemon; the delegate's own start
// is bounded by delegateStartTimeout inside it.
const daemonReadyTimeout = delegateStartTimeout + relay.ConnectTimeout + 10*time.Second

// readiness is what the daemon tells `start` on its stdout pipe, as one JSON object.
type readiness struct {
	Address string `json:"address,omitempty"`
	Error   string `json:"error,omitempty"`
}

// spawnDaemon starts the wrapper daemon fully detached (own session, no handle on start's
// stdout/stderr, which containerd waits on) and waits for its readiness report.
func spawnDaemon(f Flags, bundleDir string, stdin []byte, socket string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	logf, err := os.OpenFile(filepath.Join(bundleDir, bundle.DaemonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
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
	cmd.Dir = bundleDir
	cmd.Env = daemonEnv(os.Environ())
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = w
	cmd.Stderr = logf
	cmd.SysProcAttr = proc.Detached()
	if err := cmd.Start(); err != nil {
		w.Close()
		return "", fmt.Errorf("start wrapper daemon: %w", err)
	}
	w.Close()
	rd, err := awaitReadiness(r)
	if err != nil {
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("%w (the daemon's log: %s)", err, filepath.Join(bundleDir, bundle.DaemonLog))
	}
	if rd.Error != "" {
		// The daemon's own error, which it reported and then exited with.
		return "", errors.New(rd.Error)
	}
	if rd.Address != socket {
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("wrapper daemon reported address %q, expected %q: %w", rd.Address, socket, errdefs.ErrInternal)
	}
	return socket, nil
}

// awaitReadiness reads the daemon's one report, within daemonReadyTimeout.
func awaitReadiness(r io.Reader) (readiness, error) {
	type result struct {
		rd  readiness
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
			return readiness{}, fmt.Errorf("wrapper daemon exited before it was ready: %w: %w", res.err, errdefs.ErrUnavailable)
		}
		return res.rd, nil
	case <-time.After(daemonReadyTimeout):
		return readiness{}, fmt.Errorf("wrapper daemon was not ready within %s: %w", daemonReadyTimeout, context.DeadlineExceeded)
	}
}

// report sends the daemon's readiness to `start`, once, and closes the pipe.
type reporter struct {
	w    io.WriteCloser
	done bool
}

func (r *reporter) report(rd readiness) {
	if r.done {
		return
	}
	r.done = true
	_ = json.NewEncoder(r.w).Encode(rd)
	r.w.Close()
}

// containerdGOMAXPROCS is the GOMAXPROCS containerd puts into every shim's environment
// (core/runtime/v2/command.go in 2.x, pkg/shim/util.go Command in 1.x): its generic choice
// for all shims, not an operator's for this one.
const containerdGOMAXPROCS = "GOMAXPROCS=2"

// daemonEnv is the daemon's environment: start's own, without containerd's generic
// GOMAXPROCS, so that the daemon runs on its own default of one P unless an operator set
// another value (containerd 2.x: [plugins."io.containerd.shim.v1.manager"] env, which
// containerd appends after its own; docs/shim.md).
func daemonEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if kv != containerdGOMAXPROCS {
			out = append(out, kv)
		}
	}
	return out
}
