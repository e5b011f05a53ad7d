package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/isoguard/isoguard/internal/bundle"
	"github.com/isoguard/isoguard/internal/logfields"
	"github.com/isoguard/isoguard/internal/proc"
	"github.com/isoguard/isoguard/shim/hooks"
	"github.com/isoguard/isoguard/shim/internal/relay"
	"github.com/isoguard/isoguard/shim/internal/transport"
)

// deleteAction is `delete`: containerd calls it after a shim disconnects (and after every
// `ctr run --rm`) and parses stdout as a containerd.task.v2.DeleteResponse. The wrapper runs
// its delegate's `delete` with the same argv and relays its answer byte for byte; for the
// instance that owns a wrapper (sandbox or standalone container) it also removes what a
// killed wrapper may have left: the wrapper and delegate processes and the socket. Where
// the OS can (Linux), the delegate's delete replaces this process once that is done;
// elsewhere (Windows, or stdio that is not this process's own) it runs as a child.
func deleteAction(ctx context.Context, f Flags, stdout, stderr io.Writer, h hooks.Hooks) error {
	if err := f.validate(); err != nil {
		return err
	}
	rec, owner, err := recordFor(f.Bundle)
	if err != nil && !errdefs.IsNotFound(err) {
		// A corrupt record must not stop containerd's cleanup: fall back to the configured
		// delegate, but say so.
		log.G(ctx).WithError(err).Warn("isoguard record unreadable; using the configured delegate")
	}
	if rec != nil && rec.Denied != "" {
		// The wrapper's start was denied and no delegate ever ran: nothing but the wrapper
		// itself to clean up, and containerd's answer comes from here.
		if owner {
			cleanupOwner(ctx, rec, f.Address)
		}
		return writeDeleteResponse(stdout)
	}
	delegatePath := ""
	if rec != nil {
		delegatePath = rec.Delegate.Path
	} else {
		d, err := h.Delegate(ctx)
		if err != nil {
			return err
		}
		if delegatePath, err = findDelegate(d.Path, f); err != nil {
			return err
		}
	}
	if ownStdio(stdout, stderr) && proc.CanReplace {
		// The delegate's delete becomes this process (same argv, directory, environment and
		// stdio): containerd reads its DeleteResponse and stderr directly and waits for one
		// process instead of two. What a killed wrapper left is removed first, as nothing
		// runs after the exec.
		if owner {
			cleanupOwner(ctx, rec, f.Address)
		}
		err := proc.Replace(delegatePath, f.delegateArgs(ActionDelete))
		return fmt.Errorf("delegate %s delete: %w: %w", delegatePath, err, errdefs.ErrUnavailable)
	}
	out, err := runDelegateDelete(ctx, delegatePath, f, stderr)
	if owner {
		cleanupOwner(ctx, rec, f.Address)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// recordFor finds the record that governs a bundle: its own (owner == true) or, for a
// workload container, its pod sandbox's.
func recordFor(dir string) (rec *bundle.Record, owner bool, err error) {
	rec, err = bundle.ReadRecord(dir)
	if err == nil {
		return rec, true, nil
	}
	if !errdefs.IsNotFound(err) {
		return nil, false, err
	}
	spec, serr := bundle.ReadSpecFile(dir)
	if serr != nil {
		return nil, false, err
	}
	role, sandboxID, rerr := bundle.Role(spec)
	if rerr != nil || !role.IsWorkload() {
		return nil, false, err
	}
	sb, perr := bundle.Sibling(dir, sandboxID)
	if perr != nil {
		return nil, false, perr
	}
	rec, err = bundle.ReadRecord(sb)
	return rec, false, err
}

// cleanupOwner removes a wrapper instance's leftovers after the delegate's delete: the
// wrapper daemon (if containerd deletes while it still runs), the delegate daemon (the
// wrapper may have been killed before it could Shutdown it) and the wrapper socket. Each
// process is verified before it is signalled, so a reused pid is never hit.
func cleanupOwner(ctx context.Context, rec *bundle.Record, address string) {
	self := ""
	if exe, err := os.Executable(); err == nil {
		self = exe
	}
	if rec.Pid != 0 && self != "" && proc.Matches(rec.Pid, self, rec.ID) {
		log.G(ctx).WithField(logfields.Pid, rec.Pid).Info("terminating wrapper daemon")
		_ = proc.Terminate(rec.Pid, 2*time.Second)
	}
	if rec.Delegate.Pid == 0 && rec.Delegate.Address != "" && len(proc.Shims(rec.Delegate.Path, rec.Namespace, rec.ID, address)) == 0 {
		// The wrapper was killed before it recorded the delegate's pid, and no command line
		// tells (Windows): ask the delegate.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if c, pid, err := relay.Connect(ctx, rec.Delegate.Address, rec.Delegate.Version, func() {}); err == nil {
			rec.Delegate.Pid = pid
			c.Close()
		}
		cancel()
	}
	terminateDelegate(ctx, rec, address)
	if err := transport.RemoveAddress(rec.Address); err != nil {
		log.G(ctx).WithError(err).Warn("remove wrapper socket")
	}
	removeDelegateSocket(ctx, rec)
}

// removeDelegateSocket removes the delegate's socket once its process is gone. A delegate
// that finds its socket's name in the bundle's `address` file when it exits removes the
// WRAPPER's socket there, not its own (containerd 1.6/1.7 runtime/v2/shim shim.go run; 2.x
// also removes the one it computes, pkg/shim/util_unix.go cleanupSockets), and a killed
// delegate removes nothing. Whether the delegate is gone is judged by its process, not by
// whether a connection still succeeds: right after terminate that can still happen (seen
// with the runc shims of containerd 1.6/1.7). With the delegate's pid unknown, only a
// socket that refuses connections is removed.
func removeDelegateSocket(ctx context.Context, rec *bundle.Record) {
	if rec.Delegate.Address == "" || rec.Delegate.Address == rec.Address {
		return
	}
	var err error
	if rec.Delegate.Pid != 0 {
		if !proc.Matches(rec.Delegate.Pid, rec.Delegate.Path, rec.ID) {
			err = transport.RemoveAddress(rec.Delegate.Address)
		}
	} else {
		err = transport.RemoveDeadSocket(rec.Delegate.Address)
	}
	if err != nil {
		log.G(ctx).WithError(err).Warn("remove delegate socket")
	}
}

// deniedExitStatus is what `delete` reports for a task that never ran: the status runhcs
// reports for a task it cannot find (cmd/containerd-shim-runhcs-v1/delete.go).
const deniedExitStatus = 255

// writeDeleteResponse answers `delete` for a wrapper that started no delegate, as a shim
// answers for a task that is gone: a DeleteResponse exited now.
func writeDeleteResponse(stdout io.Writer) error {
	data, err := proto.Marshal(&taskv2.DeleteResponse{ExitStatus: deniedExitStatus, ExitedAt: timestamppb.Now()})
	if err != nil {
		return err
	}
	_, err = stdout.Write(data)
	return err
}

// ownStdio reports whether stdout and stderr are this process's own: only then can a
// replacing process write containerd's answer in their place.
func ownStdio(stdout, stderr io.Writer) bool {
	return stdout == io.Writer(os.Stdout) && stderr == io.Writer(os.Stderr)
}
