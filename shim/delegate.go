package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/logfields"
	"github.com/isoguard/isoguard/internal/proc"
	"github.com/isoguard/isoguard/shim/internal/bootstrap"
)

// Bounds on the delegate's own commands. waitDelay bounds how long a command's output
// pipes are read after it exited or was killed: a grandchild that inherited them (a
// delegate's daemon, say) must not keep the wrapper waiting past the timeout.
const (
	delegateStartBound    = 2 * time.Minute
	delegateDeleteTimeout = 2 * time.Minute
	delegateInfoTimeout   = 10 * time.Second
	waitDelay             = 2 * time.Second
)

// delegateStartTimeout bounds the delegate's `start`: delegateStartBound, or less in a
// build for tests only (testknobs.go).
var delegateStartTimeout = delegateStartBound

// findDelegate resolves the delegate shim binary: the configured path if any, else the OS
// default (defaultDelegate in delegate_<os>.go). The wrapper never delegates to itself.
func findDelegate(configured string, f Flags) (string, error) {
	var (
		path string
		err  error
	)
	if configured != "" {
		if !filepath.IsAbs(configured) {
			return "", fmt.Errorf("delegate path %q in the node configuration is not absolute: %w", configured, errdefs.ErrInvalidArgument)
		}
		path = configured
	} else if path, err = defaultDelegate(f); err != nil {
		return "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("delegate shim %s: %w: %w", path, err, errdefs.ErrNotFound)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("delegate shim %s is a directory: %w", path, errdefs.ErrInvalidArgument)
	}
	if self, err := os.Executable(); err == nil && sameFile(self, path) {
		return "", fmt.Errorf("delegate shim %s is isoguard itself: configure the real shim (containerd-shim-runhcs-v1 or containerd-shim-runc-v2): %w", path, errdefs.ErrInvalidArgument)
	}
	return path, nil
}

func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(sa, sb)
}

// lookPath finds the default delegate name on PATH, as an absolute path.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("delegate shim %s not found on PATH (%s); set delegate.path in the node configuration: %w",
			name, strings.TrimSpace(os.Getenv("PATH")), errdefs.ErrNotFound)
	}
	return filepath.Abs(p)
}

// delegateCommand is one of the delegate's short-lived commands, bounded by timeout. The
// returned func ends the bound and names it in err, the command's error, if the command
// was killed at it (its exit status alone would read "signal: killed").
func delegateCommand(ctx context.Context, timeout time.Duration, path string, args ...string) (*exec.Cmd, func(err error) error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = waitDelay
	return cmd, func(err error) error {
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil && timedOut {
			return fmt.Errorf("did not answer within %s: %w: %w", timeout, err, context.DeadlineExceeded)
		}
		return err
	}
}

// runDelegateStart runs the delegate's `start` with containerd's argv, in the bundle.
func runDelegateStart(ctx context.Context, path string, f Flags, bundleDir string, stdin []byte) (bootstrap.Answer, error) {
	cmd, done := delegateCommand(ctx, delegateStartTimeout, path, f.delegateArgs(ActionStart)...)
	cmd.Dir = bundleDir
	cmd.Stdin = bytes.NewReader(stdin)
	// A wrapper daemon killed while it waits must not leave this start running (it would
	// go on to spawn a delegate daemon nobody cleans up): see cleanupAbandonedDaemon.
	cmd.SysProcAttr = proc.DiesWithParent()
	out, err := cmd.CombinedOutput()
	if err = done(err); err != nil {
		return bootstrap.Answer{}, fmt.Errorf("delegate %s start failed: %w: %w: %s", path, err, errdefs.ErrUnavailable, bootstrap.Truncate(string(bytes.TrimSpace(out)), 4096))
	}
	a, err := bootstrap.ParseAnswer(out)
	if err != nil {
		return bootstrap.Answer{}, fmt.Errorf("delegate %s: %w", path, err)
	}
	if a.Address == f.Socket {
		return bootstrap.Answer{}, fmt.Errorf("delegate %s answered the wrapper's own address %s: %w", path, a.Address, errdefs.ErrInvalidArgument)
	}
	return a, nil
}

// runDelegateDelete runs `<delegate> ... delete` with containerd's argv in the current
// directory (containerd chose it). The delegate's stderr is relayed to stderr (containerd
// logs it as warnings).
func runDelegateDelete(ctx context.Context, path string, f Flags, stderr io.Writer) ([]byte, error) {
	cmd, done := delegateCommand(ctx, delegateDeleteTimeout, path, f.delegateArgs(ActionDelete)...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := done(cmd.Run())
	if errb.Len() > 0 {
		_, _ = stderr.Write(errb.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("delegate %s delete failed: %w: %w", path, err, errdefs.ErrUnavailable)
	}
	return out.Bytes(), nil
}

// runDelegateInfo runs `<delegate> -info` (shims built on containerd's pkg/shim support it;
// runhcs does not, which is fine: the wrapper then answers for itself).
func runDelegateInfo(ctx context.Context, path string, options []byte) (*apitypes.RuntimeInfo, error) {
	cmd, done := delegateCommand(ctx, delegateInfoTimeout, path, "-info")
	cmd.Stdin = bytes.NewReader(options)
	out, err := cmd.Output()
	if err = done(err); err != nil {
		return nil, fmt.Errorf("%s -info: %w", path, err)
	}
	var ri apitypes.RuntimeInfo
	if err := proto.Unmarshal(out, &ri); err != nil {
		return nil, fmt.Errorf("%s -info printed no RuntimeInfo: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return &ri, nil
}

// cleanupStartedDelegate ends a delegate started for rec's instance that will not be
// served: its `delete` (which also cleans what it created), then its processes
// (terminateDelegate), then its socket once it is gone (removeDelegateSocket: a delegate
// that died or was killed removes nothing; containerd may run `delete` only once the
// bundle, and with it the wrapper's record, is gone).
func cleanupStartedDelegate(ctx context.Context, f Flags, bundleDir string, rec *bundle.Record) {
	f.Bundle = bundleDir
	if _, err := runDelegateDelete(ctx, rec.Delegate.Path, f, io.Discard); err != nil {
		log.G(ctx).WithError(err).Warn("delegate delete during cleanup")
	}
	terminateDelegate(ctx, rec, f.Address)
	removeDelegateSocket(ctx, rec)
}

// terminateDelegate ends the delegate processes of rec's instance: its recorded pid, or,
// when nobody told the wrapper its pid (containerd's runc shims write no shim.pid, and a
// delegate that never answered Connect never said), the shim processes of the delegate's
// binary for this instance of the containerd at containerdAddress (proc.Shims; Linux).
// Each is verified by its command line before it is signalled.
func terminateDelegate(ctx context.Context, rec *bundle.Record, containerdAddress string) {
	if rec.Delegate.Path == "" {
		return // no delegate was ever chosen (a denied start)
	}
	pids := []int{rec.Delegate.Pid}
	if rec.Delegate.Pid == 0 {
		pids = proc.Shims(rec.Delegate.Path, rec.Namespace, rec.ID, containerdAddress)
	}
	for _, pid := range pids {
		if proc.Matches(pid, rec.Delegate.Path, rec.ID) {
			log.G(ctx).WithField(logfields.Pid, pid).Info("terminating delegate shim")
			if err := proc.Terminate(pid, 2*time.Second); err != nil {
				log.G(ctx).WithError(err).WithField(logfields.Pid, pid).Warn("terminate delegate shim")
			}
		}
	}
}
