package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

const delegateDeleteTimeout = 2 * time.Minute

// deleteAction is `delete`: containerd calls it after a shim disconnects (and after every
// `ctr run --rm`) and parses stdout as a containerd.task.v2.DeleteResponse. The wrapper runs
// its delegate's `delete` with the same argv and relays its answer byte for byte; for the
// instance that owns a wrapper (sandbox or standalone container) it also removes what a
// killed wrapper may have left: the wrapper and delegate processes and the socket. Where
// the OS can (Linux), the delegate's delete replaces this process once that is done;
// elsewhere (Windows, or stdio that is not this process's own) it runs as a child.
func deleteAction(ctx context.Context, f Flags, stdout, stderr io.Writer) error {
	if err := f.validate(); err != nil {
		return err
	}
	st, owner, err := recordFor(f.Bundle)
	if err != nil && !errdefs.IsNotFound(err) {
		// A corrupt record must not stop containerd's cleanup: fall back to the configured
		// delegate, but say so.
		log.G(ctx).WithError(err).Warn("isoguard record unreadable; using the configured delegate")
	}
	delegatePath := ""
	if st != nil {
		delegatePath = st.Delegate.Path
	} else {
		settings, err := delegateSettings()
		if err != nil {
			return err
		}
		if delegatePath, err = findDelegate(settings.Path, f); err != nil {
			return err
		}
	}
	if ownStdio(stdout, stderr) && canReplaceProcess {
		// The delegate's delete becomes this process (same argv, directory, environment and
		// stdio): containerd reads its DeleteResponse and stderr directly and waits for one
		// process instead of two. What a killed wrapper left is removed first, as nothing
		// runs after the exec.
		if owner {
			cleanupOwner(ctx, st)
		}
		err := replaceProcess(delegatePath, f.delegateArgs(ActionDelete))
		return fmt.Errorf("delegate %s delete: %w: %w", delegatePath, err, errdefs.ErrUnavailable)
	}
	out, err := runDelegateDelete(ctx, delegatePath, f, stderr)
	if owner {
		cleanupOwner(ctx, st)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// recordFor finds the record that governs a bundle: its own (owner == true) or, for a
// workload container, its pod sandbox's.
func recordFor(bundle string) (st *State, owner bool, err error) {
	st, err = readState(bundle)
	if err == nil {
		return st, true, nil
	}
	if !errdefs.IsNotFound(err) {
		return nil, false, err
	}
	spec, serr := readSpecFile(bundle)
	if serr != nil {
		return nil, false, err
	}
	role, rerr := podRole(spec)
	if rerr != nil || !role.IsWorkload() {
		return nil, false, err
	}
	sb, perr := siblingBundle(bundle, role.SandboxID)
	if perr != nil {
		return nil, false, perr
	}
	st, err = readState(sb)
	return st, false, err
}

// runDelegateDelete runs `<delegate> ... delete` with containerd's argv in the current
// directory (containerd chose it). The delegate's stderr is relayed to stderr (containerd
// logs it as warnings).
func runDelegateDelete(ctx context.Context, path string, f Flags, stderr io.Writer) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, delegateDeleteTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, path, f.delegateArgs(ActionDelete)...)
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	if errb.Len() > 0 {
		_, _ = stderr.Write(errb.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("delegate %s delete failed: %w: %w", path, err, errdefs.ErrUnavailable)
	}
	return out.Bytes(), nil
}

// cleanupOwner removes a wrapper instance's leftovers after the delegate's delete: the
// wrapper daemon (if containerd deletes while it still runs), the delegate daemon (the
// wrapper may have been killed before it could Shutdown it) and the wrapper socket. Each
// process is verified before it is signalled, so a reused pid is never hit.
func cleanupOwner(ctx context.Context, st *State) {
	self := ""
	if exe, err := os.Executable(); err == nil {
		self = exe
	}
	if st.Pid != 0 && self != "" && processMatches(st.Pid, self, st.ID) {
		log.G(ctx).WithField(logPid, st.Pid).Info("terminating wrapper daemon")
		_ = terminate(st.Pid, 2*time.Second)
	}
	if st.Delegate.Pid == 0 && st.Delegate.Address != "" {
		// The wrapper was killed before it recorded the delegate's pid: ask the delegate.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if c, pid, err := connectDelegate(ctx, Answer{Address: st.Delegate.Address, Protocol: "ttrpc", Version: st.Delegate.Version}, func() {}); err == nil {
			st.Delegate.Pid = pid
			c.Close()
		}
		cancel()
	}
	if processMatches(st.Delegate.Pid, st.Delegate.Path, st.ID) {
		log.G(ctx).WithField(logPid, st.Delegate.Pid).Info("terminating delegate shim left behind")
		_ = terminate(st.Delegate.Pid, 2*time.Second)
	}
	if err := removeAddress(st.Address); err != nil {
		log.G(ctx).WithError(err).Warn("remove wrapper socket")
	}
	// A delegate that finds its socket's name in the bundle's `address` file when it exits
	// removes the WRAPPER's socket there, not its own (containerd 1.6/1.7 runtime/v2/shim
	// shim.go run; 2.x also removes the one it computes, pkg/shim/util_unix.go
	// cleanupSockets), and a killed delegate removes nothing. Remove the delegate's socket
	// once its process is gone -- judged by the process, not by whether a connection still
	// succeeds: right after terminate that can still happen (seen with the runc shims of
	// containerd 1.6/1.7, whose sockets the wrapper-killed test then found left behind).
	// With the delegate's pid unknown, only a socket that refuses connections is removed.
	if st.Delegate.Address != "" && st.Delegate.Address != st.Address {
		var err error
		if st.Delegate.Pid != 0 {
			if !processMatches(st.Delegate.Pid, st.Delegate.Path, st.ID) {
				err = removeAddress(st.Delegate.Address)
			}
		} else {
			err = removeDeadSocket(st.Delegate.Address)
		}
		if err != nil {
			log.G(ctx).WithError(err).Warn("remove delegate socket")
		}
	}
}

// ownStdio reports whether stdout and stderr are this process's own: only then can a
// replacing process write containerd's answer in their place.
func ownStdio(stdout, stderr io.Writer) bool {
	return stdout == io.Writer(os.Stdout) && stderr == io.Writer(os.Stderr)
}
