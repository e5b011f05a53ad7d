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
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/proc"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
	"github.com/isoguard/isoguard/shim/internal/relay"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// daemonReadyTimeout bounds how long `start` waits for its daemon; the delegate's own start
// is bounded by delegateStartTimeout inside it.
const daemonReadyTimeout = delegateStartTimeout + relay.ConnectTimeout + 10*time.Second

// readiness is what the daemon tells `start` on its stdout pipe, as JSON objects, one a
// line: progress (the delegate it is about to start), then one with the address it serves
// or its error.
type readiness struct {
	Address string `json:"address,omitempty"`
	Version int    `json:"version,omitempty"` // the task API version to answer containerd with
	Error   string `json:"error,omitempty"`
	// Delegate is progress: the delegate the daemon starts next.
	Delegate string `json:"delegate,omitempty"`
}

func (rd readiness) final() bool { return rd.Address != "" || rd.Error != "" }

// spawnDaemon starts the wrapper daemon fully detached (own session, no handle on start's
// stdout/stderr, which containerd waits on) and waits for its readiness report: the
// answer to give containerd.
func spawnDaemon(f Flags, bundleDir string, stdin []byte, socket string) (bootstrap.Answer, error) {
	self, err := os.Executable()
	if err != nil {
		return bootstrap.Answer{}, err
	}
	logf, err := os.OpenFile(filepath.Join(bundleDir, bundle.DaemonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return bootstrap.Answer{}, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return bootstrap.Answer{}, err
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
		return bootstrap.Answer{}, fmt.Errorf("start wrapper daemon: %w", err)
	}
	w.Close()
	rd, delegate, err := awaitReadiness(r)
	if err != nil {
		// Killed, or not ready in time: its own cleanup did not run, and containerd runs no
		// `delete` after a failed start (it removes the bundle).
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		cleanupAbandonedDaemon(context.Background(), f, bundleDir, socket, delegate)
		return bootstrap.Answer{}, fmt.Errorf("%w (the daemon's log: %s)", err, filepath.Join(bundleDir, bundle.DaemonLog))
	}
	if rd.Error != "" {
		// The daemon's own error, which it reported and then exited with.
		return bootstrap.Answer{}, errors.New(rd.Error)
	}
	if rd.Address != socket {
		_ = cmd.Process.Kill()
		return bootstrap.Answer{}, fmt.Errorf("wrapper daemon reported address %q, expected %q: %w", rd.Address, socket, errdefs.ErrInternal)
	}
	return bootstrap.Answer{Address: socket, Version: rd.Version}, nil
}

// awaitReadiness reads the daemon's reports until its final one, within
// daemonReadyTimeout. It also returns the delegate the daemon said it starts ("" if none).
func awaitReadiness(r io.Reader) (readiness, string, error) {
	type result struct {
		rd  readiness
		err error
	}
	got := make(chan result, 1)
	var mu sync.Mutex
	delegate := ""
	go func() {
		br := bufio.NewReader(io.LimitReader(r, 1<<20))
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				var rd readiness
				if jerr := json.Unmarshal(line, &rd); jerr != nil {
					got <- result{err: jerr}
					return
				}
				if rd.final() {
					got <- result{rd: rd}
					return
				}
				mu.Lock()
				delegate = rd.Delegate
				mu.Unlock()
			}
			if err != nil {
				got <- result{err: err}
				return
			}
		}
	}()
	var res result
	select {
	case res = <-got:
		if res.err != nil {
			res.err = fmt.Errorf("wrapper daemon exited before it was ready: %w: %w", res.err, errdefs.ErrUnavailable)
		}
	case <-time.After(daemonReadyTimeout):
		res.err = fmt.Errorf("wrapper daemon was not ready within %s: %w", daemonReadyTimeout, context.DeadlineExceeded)
	}
	mu.Lock()
	defer mu.Unlock()
	return res.rd, delegate, res.err
}

// cleanupAbandonedDaemon removes what a wrapper daemon that ended without its report may
// have left, once it is gone (its own cleanup did not run): its socket if nothing serves
// it, and the delegate it was starting -- whose start died with it (proc.DiesWithParent)
// but may have spawned the delegate's daemon, found by its command line.
func cleanupAbandonedDaemon(ctx context.Context, f Flags, bundleDir, socket, delegate string) {
	if err := transport.RemoveDeadSocket(socket); err != nil {
		log.G(ctx).WithError(err).Warn("remove wrapper socket")
	}
	if delegate != "" {
		cleanupStartedDelegate(ctx, f, bundleDir, &bundle.Record{ID: f.ID, Namespace: f.Namespace, Address: socket, Delegate: bundle.Delegate{Path: delegate}})
	}
}

// report sends the daemon's readiness to `start`, once, and closes the pipe.
type reporter struct {
	w    io.WriteCloser
	done bool
}

// progress sends a report that is not the last one.
func (r *reporter) progress(rd readiness) {
	if !r.done {
		_ = json.NewEncoder(r.w).Encode(rd)
	}
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
